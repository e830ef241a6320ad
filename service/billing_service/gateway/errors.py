"""The one table from gRPC status to HTTP status, and the JSON error body.

Every error body is `{"error": {"code": "<snake_case>", "message": "..."}}`:
`code` is the reason of the status's google.rpc.ErrorInfo lower-cased
("rate_limited", "subscription_inactive"), or the gRPC code's name lower-cased
when the status has none ("unavailable"); `message` is the status message.
A few reasons add fields from the ErrorInfo metadata, listed in
EXTRA_FIELDS_BY_REASON and nowhere else: "used" and "limit" (exact JSON
numbers, as every figure the gateway shows) for rate_limited, "field" for
invalid_argument, Stripe's request id (and error code) for stripe_refused and
stripe_key_rejected. Errors the gateway finds itself (malformed JSON, unknown
route, wrong method) have the same shape.
"""

import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from .jsonmap import ExactJSONResponse

log = logging.getLogger(__name__)

HTTP_STATUS_BY_GRPC_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# Reasons whose HTTP status is more precise than their gRPC code's.
HTTP_STATUS_BY_REASON: dict[str, int] = {
    "SUBSCRIPTION_INACTIVE": 402,
}


def _number(text: str) -> Decimal:
    """A figure of the ErrorInfo as an exact JSON number (`12.5`, `1000`)."""
    try:
        value = Decimal(text)
    except ArithmeticError:  # decimal's InvalidOperation: not a number at all
        raise ValueError(f"not a figure: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a figure: {text!r}")
    return value


EXTRA_FIELDS_BY_REASON: dict[str, dict[str, Callable[[str], Any]]] = {
    "RATE_LIMITED": {"used": _number, "limit": _number},
    "INVALID_ARGUMENT": {"field": str},
    "STRIPE_REFUSED": {"stripe_request_id": str, "stripe_code": str},
    "STRIPE_KEY_REJECTED": {"stripe_request_id": str},
}
# Statuses without an ErrorInfo that come from the transport, not the service:
# their messages name internal addresses, so a fixed message is shown instead.
_TRANSPORT_MESSAGES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "the billing service is unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the billing service did not answer in time",
    grpc.StatusCode.UNKNOWN: "internal error",
    grpc.StatusCode.INTERNAL: "internal error",
}


class GatewayError(Exception):
    """An error the gateway answers itself, before or instead of calling gRPC."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ExactJSONResponse:
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return ExactJSONResponse(
        {"error": {"code": code, "message": message, **(extra or {})}},
        status_code=status,
        headers=headers,
    )


def gateway_error_response(error: GatewayError) -> ExactJSONResponse:
    return error_response(error.status, error.code, error.message, headers=error.headers)


def rpc_error_response(error: grpc.aio.AioRpcError) -> ExactJSONResponse:
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    info = _error_info(error)
    if info is None:
        if code in _TRANSPORT_MESSAGES:
            log.warning("gRPC call failed: %s %s", code.name, message)
            message = _TRANSPORT_MESSAGES[code]
        return error_response(HTTP_STATUS_BY_GRPC_CODE.get(code, 500), code.name.lower(), message)
    status = HTTP_STATUS_BY_REASON.get(info.reason, HTTP_STATUS_BY_GRPC_CODE.get(code, 500))
    extra = {}
    for name, convert in EXTRA_FIELDS_BY_REASON.get(info.reason, {}).items():
        if name in info.metadata:
            try:
                extra[name] = convert(info.metadata[name])
            except ValueError:
                log.warning("ErrorInfo %s has a bad %s: %r", info.reason, name, info.metadata)
    headers = _retry_after(info) if status == 429 else None
    return error_response(status, info.reason.lower(), message, extra, headers)


def _retry_after(info: error_details_pb2.ErrorInfo) -> dict[str, str] | None:
    """Retry-After: the seconds until the quota's period ends."""
    try:
        resets_at = datetime.fromisoformat(info.metadata["resets_at"])
    except (KeyError, ValueError):
        return None
    seconds = math.ceil((resets_at - datetime.now(UTC)).total_seconds())
    return {"Retry-After": str(max(seconds, 1))}


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
    except ValueError:
        # The rich status disagrees with the call's code or message: ignore it.
        return None
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
            return info
    return None
