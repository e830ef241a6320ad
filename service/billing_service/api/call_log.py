"""What every RPC leaves behind when asked: one log line (BILLING_RPC_LOG)
and its metrics (BILLING_METRICS_ADDR), with the caller's operator id (never
a key), the status code, the duration and the `x-request-id` the client sent.

The wrapper goes around each method handler (api/server.py), outside the
guard; the guard writes the caller it authenticated into the call's record.
Off, it costs nothing: the handlers are not wrapped."""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ..call_context import CALL, MAX_REQUEST_ID, CallRecord

log = logging.getLogger("billing_service.rpc")


Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Observer = Callable[[CallRecord, grpc.StatusCode, float], None]


def current_call() -> CallRecord | None:
    """The record of the call being served, when calls are recorded."""
    return CALL.get()


def note_operator(operator_id: int) -> None:
    """The guard's report of whom it authenticated."""
    record = CALL.get()
    if record is not None:
        record.operator_id = operator_id


def note_error(reason: str) -> None:
    """The guard's report of the domain error it answered."""
    record = CALL.get()
    if record is not None:
        record.error_reason = reason


def recorded(behaviour: Behaviour, rpc: str, observers: list[Observer]) -> Behaviour:
    """`behaviour`, telling each observer of every call once it ends."""

    async def serve(request: Any, context: grpc.aio.ServicerContext) -> Any:
        record = CallRecord(rpc, _request_id(context.invocation_metadata() or ()))
        token = CALL.set(record)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except BaseException:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            seconds = time.perf_counter() - started
            CALL.reset(token)
            for observe in observers:
                observe(record, code, seconds)

    return serve


def log_call(record: CallRecord, code: grpc.StatusCode, seconds: float) -> None:
    log.info(
        "%s %s %.1f ms",
        record.rpc,
        code.name,
        seconds * 1000,
        extra={
            "rpc": record.rpc,
            "code": code.name,
            "duration_ms": round(seconds * 1000, 3),
            "operator_id": record.operator_id,
            "request_id": record.request_id,
        },
    )


def _request_id(metadata: Any) -> str | None:
    for name, value in metadata:
        if name == "x-request-id":
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            return text[:MAX_REQUEST_ID].strip() or None
    return None
