"""The gRPC server: servicers, health, reflection, graceful shutdown."""

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from billing.v1 import (
    account_kit_pb2,
    account_kit_pb2_grpc,
    billing_pb2,
    billing_pb2_grpc,
    meter_pb2,
    meter_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    plan_pb2,
    plan_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
    settings_pb2,
    settings_pb2_grpc,
    stripe_pb2,
    stripe_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .. import tracing
from ..app import App, CannotListen
from ..forwarding import proxy_networks
from ..orphans import until_stopped
from .billing_servicers import BillingServicer, MeterServicer, ProjectServicer
from .call_log import Observer, log_call, recorded
from .envoy_servicer import RateLimitServicer
from .guard import guard, user_guard
from .reflection import reflection_handlers
from .servicers import AccountKitServicer, PlanServicer, SubscriptionServicer, UsageServicer
from .stripe_servicers import StripeServicer, StripeWebhookServicer
from .user_servicers import (
    NotificationServicer,
    SettingsServicer,
    UsageAlertServicer,
    UserServicer,
)

log = logging.getLogger(__name__)

METRICS_DEPTHS_SECONDS = 10.0  # how often the outbox gauges are refreshed


def _service(module: Any, name: str) -> ServiceDescriptor:
    descriptor: ServiceDescriptor = module.DESCRIPTOR.services_by_name[name]
    return descriptor


SERVICE_NAMES = (
    _service(account_kit_pb2, "AccountKitService").full_name,
    _service(plan_pb2, "PlanService").full_name,
    _service(subscription_pb2, "SubscriptionService").full_name,
    _service(usage_pb2, "UsageService").full_name,
    _service(project_pb2, "ProjectService").full_name,
    _service(meter_pb2, "MeterService").full_name,
    _service(billing_pb2, "BillingService").full_name,
    _service(stripe_pb2, "StripeService").full_name,
    _service(stripe_pb2, "StripeWebhookService").full_name,
    _service(rls_pb2, "RateLimitService").full_name,
    _service(user_pb2, "UserService").full_name,
    _service(settings_pb2, "SettingsService").full_name,
    _service(notification_pb2, "NotificationService").full_name,
    _service(notification_pb2, "UsageAlertService").full_name,
)


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
    auth = app.authenticator
    # The metered calls' service first: a call's method is looked up in the
    # services in the order they were added.
    usage_pb2_grpc.add_UsageServiceServicer_to_server(
        guard(UsageServicer(app.engine), _service(usage_pb2, "UsageService"), auth),
        handlers,
    )
    account_kit_pb2_grpc.add_AccountKitServiceServicer_to_server(
        guard(
            AccountKitServicer(app.catalog),
            _service(account_kit_pb2, "AccountKitService"),
            auth,
        ),
        handlers,
    )
    plan_pb2_grpc.add_PlanServiceServicer_to_server(
        guard(PlanServicer(app.catalog), _service(plan_pb2, "PlanService"), auth),
        handlers,
    )
    subscription_pb2_grpc.add_SubscriptionServiceServicer_to_server(
        guard(
            SubscriptionServicer(app.subscriptions, app.clock),
            _service(subscription_pb2, "SubscriptionService"),
            auth,
        ),
        handlers,
    )
    project_pb2_grpc.add_ProjectServiceServicer_to_server(
        guard(ProjectServicer(app.projects), _service(project_pb2, "ProjectService"), auth),
        handlers,
    )
    meter_pb2_grpc.add_MeterServiceServicer_to_server(
        guard(MeterServicer(app.meters), _service(meter_pb2, "MeterService"), auth),
        handlers,
    )
    billing_pb2_grpc.add_BillingServiceServicer_to_server(
        guard(BillingServicer(app.billing), _service(billing_pb2, "BillingService"), auth),
        handlers,
    )
    stripe_pb2_grpc.add_StripeServiceServicer_to_server(
        guard(StripeServicer(app.payments, app.clock), _service(stripe_pb2, "StripeService"), auth),
        handlers,
    )
    # Authenticated by the payload's Stripe signature, not by an API key.
    stripe_pb2_grpc.add_StripeWebhookServiceServicer_to_server(
        guard(
            StripeWebhookServicer(app.webhooks),
            _service(stripe_pb2, "StripeWebhookService"),
            None,
        ),
        handlers,
    )
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(
        guard(
            RateLimitServicer(app.engine, app.clock),
            _service(rls_pb2, "RateLimitService"),
            auth,
        ),
        handlers,
    )
    _add_end_user_services(app, handlers)

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


def _add_end_user_services(app: App, handlers: "_GenericHandlersOnly") -> None:
    user_pb2_grpc.add_UserServiceServicer_to_server(
        guard(
            UserServicer(app.end_users, proxy_networks(app.settings.trusted_proxies)),
            _service(user_pb2, "UserService"),
            app.authenticator,
        ),
        handlers,
    )
    notification_pb2_grpc.add_UsageAlertServiceServicer_to_server(
        guard(
            UsageAlertServicer(app.notifications),
            _service(notification_pb2, "UsageAlertService"),
            app.authenticator,
        ),
        handlers,
    )
    # Called with an end user's session token, not an API key.
    settings_pb2_grpc.add_SettingsServiceServicer_to_server(
        user_guard(
            SettingsServicer(app.end_users), _service(settings_pb2, "SettingsService"), app.sessions
        ),
        handlers,
    )
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(
        user_guard(
            NotificationServicer(app.notifications),
            _service(notification_pb2, "NotificationService"),
            app.sessions,
        ),
        handlers,
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


async def serve_until_signalled(
    app: App, reuse_port: bool = False, serves_metrics: bool = True, parent: int | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, or until `parent` (the `serve` that
    started this process) is gone, then shut down gracefully."""
    try:
        running = await start_server(
            app,
            app.settings.grpc_addr,
            reuse_port,
            serves_metrics,
            background=app.settings.background_jobs == "inline",
        )
    except BaseException:
        await app.close()
        raise
    # gRPC core's experiments change how it does I/O (grpc_core.py): say which ran.
    log.info(
        "gRPC listening on %s (GRPC_EXPERIMENTS=%r)",
        app.settings.grpc_addr,
        os.environ.get("GRPC_EXPERIMENTS", ""),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gateway = None
    try:
        if app.settings.http_addr:
            from ..gateway.server import start_gateway

            gateway = await start_gateway(
                app.settings.http_addr,
                f"127.0.0.1:{running.port}",
                access_log=app.settings.http_access_log,
            )
        await until_stopped(stop, parent, "this server")
    finally:
        log.info(
            "shutting down: NOT_SERVING, draining for %ss", app.settings.shutdown_grace_seconds
        )
        if gateway is not None:
            await gateway.stop()
        await running.stop(app.settings.shutdown_grace_seconds)
        await app.close()
