"""The request path shared by every gRPC service: errors as google.rpc.Status, declared-rule
validation, token verification, the interceptor pipeline, server start-up and health probes."""
