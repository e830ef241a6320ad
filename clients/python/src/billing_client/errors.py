"""Typed errors: every failed call raises a BillingError (or a subclass),
carrying the gRPC status, its message and the google.rpc.ErrorInfo the
service attaches (its stable `reason` and `metadata`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class BillingError(Exception):
    """A call the service (or the transport) refused. `reason` is the
    ErrorInfo's stable upper-case reason (empty when none was sent, e.g. a
    connection failure); `metadata` its key/value pairs."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        domain: str = "",
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})


class InvalidArgument(BillingError):
    pass


class NotFound(BillingError):
    pass


class AlreadyExists(BillingError):
    pass


class Unauthenticated(BillingError):
    pass


class PermissionDenied(BillingError):
    pass


class FailedPrecondition(BillingError):
    pass


class ResourceExhausted(BillingError):
    pass


class Unavailable(BillingError):
    """The service or its storage could not answer; retried by the client
    (with the same idempotency key) before this is raised."""


class DeadlineExceeded(BillingError):
    pass


def _resets_at(metadata: dict[str, str]) -> datetime | None:
    text = metadata.get("resets_at")
    return datetime.fromisoformat(text) if text else None


def _decimal(metadata: dict[str, str], key: str) -> Decimal | None:
    try:
        return Decimal(metadata[key])
    except (KeyError, InvalidOperation):
        return None


class QuotaExceeded(ResourceExhausted):
    """A plan's quota is spent (reason RATE_LIMITED): `used` and `limit` are
    exact figures of `primitive`, `resets_at` the period's end."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.primitive = self.metadata.get("primitive", "")
        self.used = _decimal(self.metadata, "used")
        self.limit = _decimal(self.metadata, "limit")
        self.resets_at = _resets_at(self.metadata)


class Throttled(ResourceExhausted):
    """Too many recent failures (sign-ins, password checks): refused until
    `resets_at`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.resets_at = _resets_at(self.metadata)


BY_REASON: dict[str, type[BillingError]] = {
    "RATE_LIMITED": QuotaExceeded,
    "THROTTLED": Throttled,
    "SIGN_IN_THROTTLED": Throttled,
    "PASSWORD_CHECK_THROTTLED": Throttled,
}

BY_CODE: dict[grpc.StatusCode, type[BillingError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def _error_info(error: grpc.Call) -> error_details_pb2.ErrorInfo | None:
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a status whose details contradict its code
        return None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def from_rpc_error(error: grpc.RpcError) -> BillingError:
    """The typed error of a failed call (sync or async)."""
    call: grpc.Call = error
    code, message = call.code(), call.details() or ""
    info = _error_info(call)
    reason = info.reason if info is not None else ""
    cls = BY_REASON.get(reason) or BY_CODE.get(code, BillingError)
    return cls(
        code,
        message,
        reason=reason,
        domain=info.domain if info is not None else "",
        metadata=dict(info.metadata) if info is not None else None,
    )
