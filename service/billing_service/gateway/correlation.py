"""Request correlation over REST: every HTTP request has an `x-request-id`
(the client's, or one made here), answered back in the response's header and
forwarded with the trace context to the gRPC call, so that the RPC log, the
HTTP client and the trace all name the same call."""

import uuid
from collections.abc import Callable, Iterable

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..call_context import MAX_REQUEST_ID, REQUEST_ID_RE
from .errors import error_response

REQUEST_ID_HEADER = "x-request-id"
# The trace context of the call being served as (name, value) pairs
# (tracing.py's trace_context_headers), or None when traces are off.
TraceContext = Callable[[], Iterable[tuple[str, str]]] | None


class RequestIds:
    """ASGI middleware: the request's id, checked (or made) before the app
    sees the request, in `scope["state"]` for the app and echoed in every
    answer, the gateway's own errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, REQUEST_ID_HEADER.encode())
        if given is not None and not REQUEST_ID_RE.fullmatch(given):
            refusal = error_response(
                400,
                "invalid_argument",
                f"{REQUEST_ID_HEADER} must be 1 to {MAX_REQUEST_ID} visible ASCII characters",
            )
            await refusal(scope, receive, send)
            return
        request_id = given or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        echoed = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def forwarded_metadata(request: Request, trace_context: TraceContext) -> list[tuple[str, str]]:
    """What the gRPC call carries for correlation: the request id and,
    when traces are on, the W3C trace context of the gateway's span."""
    metadata = [(REQUEST_ID_HEADER, str(request.state.request_id))]
    if trace_context is not None:
        metadata.extend(trace_context())
    return metadata
