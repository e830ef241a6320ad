"""OpenTelemetry traces of the gRPC server and the REST gateway, off unless
the standard OTEL_* variables turn them on: OTEL_TRACES_EXPORTER (other than
`none`) or an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and not OTEL_SDK_DISABLED=true.

When on, the SDK configures itself from those variables (exporters by their
entry points: `console` ships with the SDK, `otlp` with
opentelemetry-exporter-otlp), unless the process already set a tracer
provider of its own. The spans come from opentelemetry-instrumentation-grpc's
server interceptor and the ASGI middleware, and the gateway passes its span's
context (W3C `traceparent`) to the server with each call, so that one REST
call is one trace; off, none of it is installed."""

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

_configured = False


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter and exporter != "none":
        return True
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _configure() -> None:
    """The SDK from the OTEL_* variables, once per process, unless a tracer
    provider is set already."""
    global _configured
    if _configured:
        return
    _configured = True
    from opentelemetry import trace
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    os.environ.setdefault("OTEL_SERVICE_NAME", "billing-service")
    try:
        _OTelSDKConfigurator().configure()  # type: ignore[no-untyped-call]
    except Exception as error:  # e.g. an exporter that is not installed
        log.error("OpenTelemetry not configured: %s", error)


def server_interceptors() -> list[Any] | None:
    """The gRPC server's tracing interceptor, when traces are on (None:
    the server is made exactly as without this module)."""
    if not enabled():
        return None
    _configure()
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def traced_asgi(app: Any) -> Any:
    """The gateway's ASGI app, wrapped in OpenTelemetry's middleware when
    traces are on."""
    if not enabled():
        return app
    _configure()
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app)


def trace_context_headers() -> Callable[[], Iterable[tuple[str, str]]] | None:
    """When traces are on, a function giving the current span's context as
    metadata (`traceparent`, `tracestate`, `baggage`: the configured
    propagators'), for the gateway's gRPC calls; None when they are off."""
    if not enabled():
        return None
    _configure()
    from opentelemetry.propagate import inject

    def headers() -> Iterable[tuple[str, str]]:
        carrier: dict[str, str] = {}
        inject(carrier)
        return carrier.items()

    return headers
