"""Serving the gateway with uvicorn, beside the gRPC server in `billing-service
serve` or alone, as a sidecar would, in `billing-service gateway`."""

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import uvicorn
from starlette.applications import Starlette

from .. import tracing
from ..app import CannotListen
from .app import DEFAULT_DEADLINE_SECONDS, create_app
from .protocol import JsonErrorsH11Protocol
from .routes import api_files, load_bindings

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    # The process's owner handles SIGTERM and SIGINT and stops the gateway; by
    # default uvicorn would take the signals over while it runs.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningGateway:
    app: Starlette
    server: uvicorn.Server
    task: asyncio.Task[None]
    channel: grpc.aio.Channel
    port: int

    async def stop(self) -> None:
        """Finish the requests in flight (up to 5 s), then close the channel."""
        self.server.should_exit = True
        await self.task
        await self.channel.close()


def parse_http_addr(http_addr: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) -> (host, port)."""
    host, sep, port = http_addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"HTTP address '{http_addr}' is not host:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _listening_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    # The protocol must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on
    # such sockets, and without it every keep-alive response waits ~40 ms for
    # the client's delayed ACK.
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def start_gateway(
    http_addr: str,
    grpc_target: str,
    *,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    access_log: bool = False,
) -> RunningGateway:
    """Serve the gateway on `http_addr` (port 0 picks a free one), calling the
    gRPC server at `grpc_target`; uvicorn's access log only if asked, and its
    own start-up lines (logged as "uvicorn.error") only when they warn."""
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    host, port = parse_http_addr(http_addr)
    bindings = load_bindings(api_files())
    channel = grpc.aio.insecure_channel(grpc_target)
    app = create_app(
        channel,
        bindings,
        deadline_seconds=deadline_seconds,
        trace_context=tracing.trace_context_headers(),
    )
    try:
        sock = _listening_socket(host, port)
    except OSError as error:
        await channel.close()
        raise CannotListen(
            f"cannot listen on {http_addr} (BILLING_HTTP_ADDR): {error.strerror or error}"
        ) from None
    config = uvicorn.Config(
        tracing.traced_asgi(app),
        lifespan="off",
        ws="none",
        log_config=None,
        access_log=access_log,
        http=JsonErrorsH11Protocol,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await channel.close()
            sock.close()
            await task  # raises why it could not start
            raise RuntimeError(f"the gateway could not listen on {http_addr}")
        await asyncio.sleep(0.01)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    log.info(
        "REST gateway serving http://%s:%d, calling gRPC at %s", shown_host, bound_port, grpc_target
    )
    return RunningGateway(app, server, task, channel, bound_port)


async def serve_gateway_until_signalled(
    http_addr: str, grpc_target: str, access_log: bool = False
) -> None:
    """Run the gateway alone until SIGTERM or SIGINT."""
    gateway = await start_gateway(http_addr, grpc_target, access_log=access_log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down the REST gateway")
        await gateway.stop()
