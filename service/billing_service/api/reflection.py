"""Server reflection, as grpc.reflection.v1 and as v1alpha (grpcurl, Postman,
grpcui), for `describe` of services, methods and messages from reflection
alone.

grpcio-reflection serves v1alpha only, finds no method by its full name
(`billing.v1.UsageService.CheckQuota`: "Symbol not found") and answers
descriptors without their comments. This servicer answers both versions,
finds a method through its service, and sends the billing.v1 files as
`make generate` wrote them with their source info (generated/billing/v1/
billing.binpb, which the gateway's OpenAPI document reads too), so that
clients show the protos' comments. v1's messages are v1alpha's field for
field (the protos differ only in their package), so one servicer and
v1alpha's message classes serve both.
"""

from collections.abc import AsyncIterator, Iterable
from functools import cache
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2 as messages

V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
V1 = "grpc.reflection.v1.ServerReflection"
SERVICE_NAMES = (V1, V1ALPHA)
DESCRIPTOR_SET = "billing.binpb"  # in the billing.v1 package, beside its stubs

_Response = messages.ServerReflectionResponse
# grpcio-reflection's messages are untyped: requests and responses are Any here.


def reflection_handlers(
    service_names: Iterable[str],
) -> dict[str, dict[str, grpc.RpcMethodHandler]]:
    """The method handlers of both reflection services, by service name, for
    a server whose other services are `service_names`."""
    servicer = Reflection((*service_names, *SERVICE_NAMES))
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=messages.ServerReflectionRequest.FromString,
        response_serializer=_Response.SerializeToString,
    )
    return {name: {"ServerReflectionInfo": method} for name in SERVICE_NAMES}


class Reflection:
    def __init__(self, service_names: Iterable[str]) -> None:
        self._service_names = sorted(set(service_names))
        self._pools = (descriptor_pool.Default(), _v1_pool())

    async def ServerReflectionInfo(
        self,
        requests: AsyncIterator[Any],
        _context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[Any]:
        async for request in requests:
            yield self._answer(request)

    def _answer(self, request: Any) -> Any:
        asked = request.WhichOneof("message_request")
        try:
            if asked == "list_services":
                services = [messages.ServiceResponse(name=n) for n in self._service_names]
                return _Response(
                    original_request=request,
                    list_services_response=messages.ListServiceResponse(service=services),
                )
            if asked == "file_by_filename":
                return self._files(request, self._find_file(request.file_by_filename))
            if asked == "file_containing_symbol":
                return self._files(request, self._file_of(request.file_containing_symbol))
            if asked == "file_containing_extension":
                asked_for = request.file_containing_extension
                file = self._extension_file(asked_for.containing_type, asked_for.extension_number)
                return self._files(request, file)
            if asked == "all_extension_numbers_of_type":
                return self._extension_numbers(request, request.all_extension_numbers_of_type)
        except KeyError:
            return _error(request, grpc.StatusCode.NOT_FOUND)
        return _error(request, grpc.StatusCode.INVALID_ARGUMENT)

    def _find_file(self, name: str) -> FileDescriptor:
        for pool in self._pools:
            try:
                return pool.FindFileByName(name)
            except KeyError:
                continue
        raise KeyError(name)

    def _file_of(self, symbol: str) -> FileDescriptor:
        """The file declaring `symbol`; a method's is its service's, which
        protobuf's pools only find by the service's name."""
        service, _, method = symbol.rpartition(".")
        for pool in self._pools:
            try:
                return pool.FindFileContainingSymbol(symbol)
            except KeyError:
                pass
            try:
                found = pool.FindServiceByName(service)
            except KeyError:
                continue
            if method in found.methods_by_name:
                return found.file
        raise KeyError(symbol)

    def _extension_file(self, containing_type: str, number: int) -> FileDescriptor:
        pool = self._pools[0]
        extension = pool.FindExtensionByNumber(pool.FindMessageTypeByName(containing_type), number)
        return pool.FindFileContainingSymbol(extension.full_name)

    def _extension_numbers(self, request: Any, containing_type: str) -> Any:
        pool = self._pools[0]
        message = pool.FindMessageTypeByName(containing_type)
        numbers = sorted(extension.number for extension in pool.FindAllExtensions(message))
        return _Response(
            original_request=request,
            all_extension_numbers_response=messages.ExtensionNumberResponse(
                base_type_name=message.full_name, extension_number=numbers
            ),
        )

    def _files(self, request: Any, file: FileDescriptor) -> Any:
        """`file` and every file it imports, transitively (as grpcio-reflection
        does: a client then needs no second request)."""
        files: dict[str, FileDescriptor] = {}
        pending = [file]
        while pending:
            current = pending.pop()
            if current.name not in files:
                files[current.name] = current
                pending.extend(current.dependencies)
        return _Response(
            original_request=request,
            file_descriptor_response=messages.FileDescriptorResponse(
                file_descriptor_proto=[_serialized(f) for f in files.values()]
            ),
        )


def _serialized(file: FileDescriptor) -> bytes:
    documented = _documented_files().get(file.name)
    if documented is not None:
        return documented
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    return proto.SerializeToString()


@cache
def _documented_files() -> dict[str, bytes]:
    """The billing.v1 files as protoc described them, comments included."""
    data = resources.files("billing.v1").joinpath(DESCRIPTOR_SET).read_bytes()
    return {
        file.name: file.SerializeToString()
        for file in descriptor_pb2.FileDescriptorSet.FromString(data).file
    }


@cache
def _v1_pool() -> descriptor_pool.DescriptorPool:
    """A pool of its own holding grpc/reflection/v1/reflection.proto, made
    from v1alpha's by renaming its package (no package ships v1's stubs)."""
    proto = descriptor_pb2.FileDescriptorProto()
    messages.DESCRIPTOR.CopyToProto(proto)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = "grpc.reflection.v1"
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):  # a message field's, not a string's
                field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool


def _error(request: Any, code: grpc.StatusCode) -> Any:
    number, text = code.value
    return _Response(
        original_request=request,
        error_response=messages.ErrorResponse(error_code=number, error_message=text),
    )
