"""Who may call a method, as its .proto declares with `option (exness.common.v1.access)`.

The services' request pipeline and the edge's token rules both read it from descriptors, so a
method's access is written once, next to its definition, and nothing else keeps a copy.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterator

from exness.common.v1 import access_pb2
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool

# gRPC's own services (health, reflection) are operators' tools and declare nothing.
_ALWAYS_PUBLIC = ("/grpc.health.v1.", "/grpc.reflection.")


class Access(enum.Enum):
    PUBLIC = access_pb2.ACCESS_PUBLIC
    USER = access_pb2.ACCESS_USER
    SERVICE = access_pb2.ACCESS_SERVICE
    OPERATOR = access_pb2.ACCESS_OPERATOR

    @classmethod
    def declared(cls, options: descriptor_pb2.MethodOptions) -> Access:
        """The access in a method's options; undeclared means USER (deny by default)."""
        value = options.Extensions[access_pb2.access]
        return cls.USER if value == access_pb2.ACCESS_UNSPECIFIED else cls(value)


@functools.cache
def access_of(method_path: str) -> Access:
    """The access of a gRPC method path (`/package.Service/Method`), looked up in the
    descriptors of the generated modules the process has imported. Unknown methods need a USER
    token: the server answers them UNIMPLEMENTED only after the caller has proved who they are."""
    if method_path.startswith(_ALWAYS_PUBLIC):
        return Access.PUBLIC
    service_name, _, method_name = method_path.lstrip("/").partition("/")
    try:
        service = descriptor_pool.Default().FindServiceByName(service_name)
    except KeyError:
        return Access.USER
    method: descriptor.MethodDescriptor | None = service.methods_by_name.get(method_name)
    if method is None:
        return Access.USER
    return Access.declared(method.GetOptions())


def declared_methods(
    files: descriptor_pb2.FileDescriptorSet, services: frozenset[str] | None = None
) -> Iterator[tuple[str, Access]]:
    """Every method path of a descriptor set with its declared access (for the edge config),
    limited to `services` (full names) when given."""
    for file in files.file:
        for service in file.service:
            full_name = f"{file.package}.{service.name}" if file.package else service.name
            if services is not None and full_name not in services:
                continue
            for method in service.method:
                yield f"/{full_name}/{method.name}", Access.declared(method.options)
