"""A gRPC proxy on loopback in front of a real server that loses answers:
the first `lose` calls of a method reach the server, which acts on them, but
their client gets UNAVAILABLE, as when a connection drops after the server
committed; calls of a method in `hold` are never answered (a hung server,
for deadlines). Clients' retry tests go through it; it keeps every request's
bytes it received, per method."""

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc


@dataclass
class LossyProxy:
    port: int
    lose: dict[str, int]  # method path → answers still to lose
    hold: frozenset[str] = frozenset()
    forwarded: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))


class _Forwarder(grpc.GenericRpcHandler):
    def __init__(self, upstream: grpc.aio.Channel, proxy: LossyProxy) -> None:
        self.upstream, self.proxy = upstream, proxy

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        path: str = details.method
        forward = self.upstream.unary_unary(path)  # bytes in, bytes out

        async def handle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            self.proxy.forwarded[path].append(request)
            if path in self.proxy.hold:
                await asyncio.Event().wait()  # until the client gives up
            metadata = [(k, v) for k, v in context.invocation_metadata() or () if k[0] != ":"]
            try:
                answer: bytes = await forward(request, metadata=metadata, timeout=60)
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "", error.trailing_metadata())
            if self.proxy.lose.get(path, 0) > 0:
                self.proxy.lose[path] -= 1
                await context.abort(grpc.StatusCode.UNAVAILABLE, "connection lost (proxy)")
            return answer

        return grpc.unary_unary_rpc_method_handler(handle)


@asynccontextmanager
async def lossy_proxy(
    target: str, lose: dict[str, int], hold: frozenset[str] = frozenset()
) -> AsyncIterator[LossyProxy]:
    upstream = grpc.aio.insecure_channel(target)
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    proxy = LossyProxy(port, dict(lose), hold)
    server.add_generic_rpc_handlers([_Forwarder(upstream, proxy)])
    await server.start()
    try:
        yield proxy
    finally:
        await server.stop(0)
        await upstream.close()
