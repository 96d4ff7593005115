#!/usr/bin/env bash
# Regenerates everything under gen/ from proto/ (the one command: `make gen`).
#   gen/python      protobuf messages, gRPC stubs and .pyi type stubs (grpcio-tools, mypy-protobuf)
#   gen/ts          TypeScript messages and service descriptors (protoc-gen-es via buf)
#   gen/descriptor  the descriptor set Envoy's gRPC-JSON transcoder loads
#   gen/openapi     the OpenAPI document of the REST API (protoc-gen-swagger), served by Envoy
#   clients/python/exness_client/contracts
#                   the Python client's typed messages and async stubs (betterproto2), inside
#                   its own distribution (clients/python/pyproject.toml)
# Python goes through grpcio-tools directly because its gRPC generator is built into its protoc
# and buf cannot call it as a plugin. The Google API protos proto/ imports are vendored in
# third_party/googleapis (a module of the buf workspace): nothing is fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BUF=node_modules/.bin/buf
deps=third_party/googleapis

# Generate into a scratch directory and swap it in at the end: a failed run leaves gen/ intact.
out=build/gen.new
rm -rf "$out" && mkdir -p "$out/python" "$out/descriptor"
mapfile -t protos < <(cd proto && find exness -name '*.proto' | sort)
"$PY" -m grpc_tools.protoc -Iproto -I"$deps" \
  --python_out="$out/python" --grpc_python_out="$out/python" \
  --plugin=protoc-gen-mypy="$(dirname "$PY")/protoc-gen-mypy" --plugin=protoc-gen-mypy_grpc="$(dirname "$PY")/protoc-gen-mypy_grpc" \
  --mypy_out=quiet:"$out/python" --mypy_grpc_out=quiet:"$out/python" \
  "${protos[@]}"
# Make every generated directory a regular package (mypy and setuptools both want that).
find "$out/python/exness" -type d -exec touch {}/__init__.py \;

# TypeScript for our contracts plus google.rpc Status and its error details (ErrorInfo,
# BadRequest), which clients decode from grpc-status-details-bin.
"$BUF" generate --path proto/exness \
  --path "$deps/google/rpc/status.proto" --path "$deps/google/rpc/error_details.proto" -o "$out"
# Our services plus google.rpc error details, so the transcoder can render Status.details.
"$BUF" build -o "$out/descriptor/exness.binpb"

# The OpenAPI (Swagger 2.0) document Envoy serves at /openapi.json: protoc-gen-swagger (Debian
# golang-grpc-gateway) per service file (it refuses files of several Go packages at once), then
# merged, with each operation's token requirement taken from its declared access.
mkdir -p "$out/openapi" build/openapi.new
services=()
for proto in "${protos[@]}"; do
  grep -q '^service ' "proto/$proto" || continue
  "$PY" -m grpc_tools.protoc -Iproto -I"$deps" --plugin=protoc-gen-swagger="$(command -v protoc-gen-swagger)" \
    --swagger_out=json_names_for_fields=true:build/openapi.new "$proto"
  services+=("build/openapi.new/${proto%.proto}.swagger.json")
done
PYTHONPATH=.:"$out/python":${PYTHONPATH:-} "$PY" -m gateway.openapi \
  "$out/descriptor/exness.binpb" "$out/openapi/exness.swagger.json" "${services[@]}"
rm -rf build/openapi.new

# The Python client distribution: betterproto2 dataclasses and asyncio stubs (grpclib), plus
# google.rpc Status and error details so it decodes errors without protobuf.
client=clients/python/exness_client/contracts
rm -rf build/client.new && mkdir -p build/client.new
"$PY" -m grpc_tools.protoc -Iproto -I"$deps" \
  --plugin=protoc-gen-python_betterproto2="$(dirname "$PY")/protoc-gen-python_betterproto2" \
  --python_betterproto2_out=build/client.new \
  --python_betterproto2_opt=client_generation=async,server_generation=none \
  "${protos[@]}" "$deps/google/rpc/status.proto" "$deps/google/rpc/error_details.proto" \
  2>build/client-gen.log || { cat build/client-gen.log >&2; exit 1; }

rm -rf gen && mv "$out" gen
rm -rf "$client" && mv build/client.new "$client"
echo "generated: $(find gen -type f | wc -l) files"
