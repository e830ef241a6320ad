"""The gRPC server: servicers, health, reflection, graceful shutdown."""

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .. import tracing
from ..app import App, CannotListen
from .call_log import Observer, log_call, recorded
from .reflection import reflection_handlers
from .services import SERVICE_NAMES, SERVICES

log = logging.getLogger(__name__)

METRICS_DEPTHS_SECONDS = 10.0  # how often the outbox gauges are refreshed


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    # /metrics, when BILLING_METRICS_ADDR asks for it.
    metrics_server: WSGIServer | None = None
    metrics_task: "asyncio.Task[None] | None" = None

    @property
    def metrics_port(self) -> int | None:
        return None if self.metrics_server is None else self.metrics_server.server_address[1]

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, then let in-flight RPCs finish within `grace`."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.metrics_task is not None:
            self.metrics_task.cancel()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()


async def start_server(
    app: App,
    address: str,
    reuse_port: bool = False,
    serves_metrics: bool = True,
    background: bool = True,
) -> RunningServer:
    """Start serving on `address`; with `reuse_port`, beside other processes
    listening on the same address (SO_REUSEPORT). With BILLING_METRICS_ADDR,
    every process records metrics and, `serves_metrics`, serves /metrics.
    With `background`, this process also runs the background jobs."""
    server = grpc.aio.server(
        options=_server_options(app, reuse_port), interceptors=tracing.server_interceptors()
    )
    # The generated add_*_to_server functions are handed the server through
    # _GenericHandlersOnly (see there why).
    handlers = _GenericHandlersOnly(server, _observers(app))
    for service in SERVICES:
        service.add_to_server(service.guarded(app), handlers)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, handlers)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    for name, methods in reflection_handlers((*SERVICE_NAMES, health.SERVICE_NAME)).items():
        handlers.add_registered_method_handlers(name, methods)
    if not reuse_port:
        _check_free(address)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise CannotListen(f"cannot listen on {address} (BILLING_GRPC_ADDR)") from error
    if port == 0:
        raise CannotListen(f"cannot listen on {address} (BILLING_GRPC_ADDR)")
    await server.start()
    if background:
        app.start_background_work()
    running = RunningServer(server, health_servicer, port)
    if app.settings.metrics_addr and serves_metrics:
        _serve_metrics(app, running)
    return running


def _observers(app: App) -> list[Observer]:
    """Who hears of every RPC: the RPC log and the metrics, when asked for."""
    observers: list[Observer] = []
    if app.settings.rpc_log:
        observers.append(log_call)
    if app.settings.metrics_addr:
        from .. import metrics  # imported once PROMETHEUS_MULTIPROC_DIR is settled

        observers.append(metrics.observe_call)
        app.batcher.on_batch = metrics.observe_batch
        app.batcher.on_decision = metrics.observe_decision
    return observers


def _serve_metrics(app: App, running: RunningServer) -> None:
    from .. import metrics

    try:
        running.metrics_server, _ = metrics.serve_metrics(app.settings.metrics_addr)
    except OSError as error:
        raise CannotListen(
            f"cannot listen on {app.settings.metrics_addr} (BILLING_METRICS_ADDR): {error}"
        ) from None
    running.metrics_task = asyncio.create_task(
        metrics.keep_depths(app.outbox_depths, METRICS_DEPTHS_SECONDS), name="outbox-depths"
    )


def _check_free(address: str) -> None:
    """Refuse an address another socket holds, as gRPC would, but before gRPC
    tries (its own refusal is a log line of gRPC core's and a RuntimeError)."""
    host, _, port = address.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host.strip("[]") or "0.0.0.0", int(port)))
    except OSError as error:
        raise CannotListen(
            f"cannot listen on {address} (BILLING_GRPC_ADDR): {error.strerror or error}"
        ) from None


class _GenericHandlersOnly:
    """Stands in for the server when handlers are added: serves each
    service's methods through one generic handler of its own, and not
    through per-method "registered" handlers, which would take precedence.

    grpc.aio's server waits for its next call with asyncio.wait over one
    pending request per registered method, plus one for all other methods,
    and sets that wait up again after every call: the more methods, the more
    every call costs (docs/performance.md, "Registered methods"), while a
    registered method saves nothing measurable on a call of its own.

    Its unary methods read their request leniently: bytes that are no valid
    message of the method's type are answered INVALID_ARGUMENT, not with
    gRPC's UNKNOWN and a traceback in the log (nor any log line: anyone can
    send them, with or without a key)."""

    def __init__(self, server: grpc.aio.Server, observers: list[Observer]) -> None:
        self._server = server
        self._observers = observers

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        """Dropped: add_registered_method_handlers, called with the same
        methods, adds their generic handler."""

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        lenient = {
            name: _lenient(handler, f"{service_name}/{name}", self._observers)
            for name, handler in method_handlers.items()
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service_name, lenient),)
        )


_UNDECODABLE = object()


def _lenient(
    handler: grpc.RpcMethodHandler, rpc: str, observers: list[Observer]
) -> grpc.RpcMethodHandler:
    """`handler`, for a unary call, with a request that fails to decode
    answered INVALID_ARGUMENT, and each call told to the `observers`."""
    decode, behaviour = handler.request_deserializer, handler.unary_unary
    if behaviour is None or decode is None:
        return handler
    if observers:
        behaviour = recorded(behaviour, rpc, observers)

    def read(data: bytes) -> Any:
        try:
            return decode(data)
        except DecodeError:
            return _UNDECODABLE

    async def serve(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request is _UNDECODABLE:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the request is not a valid message of its type"
            )
        return await behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler(
        serve, request_deserializer=read, response_serializer=handler.response_serializer
    )


def _server_options(app: App, reuse_port: bool) -> list[tuple[str, int]]:
    options = [("grpc.so_reuseport", int(reuse_port))]
    age = app.settings.grpc_max_connection_age_seconds
    if age > 0:
        options += [
            ("grpc.max_connection_age_ms", round(age * 1000)),
            ("grpc.max_connection_age_grace_ms", round(app.settings.shutdown_grace_seconds * 1000)),
        ]
    return options
