"""The call being served, as logs and metrics describe it: a context
variable the RPC wrapper (api/call_log.py) sets and the guard fills in. No
grpc here: the command's logging set-up reads it before grpc may load
(grpc_core.py)."""

import contextvars
import logging
import re
from dataclasses import dataclass

MAX_REQUEST_ID = 128
# What the gateway forwards as `x-request-id`: visible ASCII, as gRPC
# metadata carries it, without spaces.
REQUEST_ID_RE = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID}}}")


@dataclass(slots=True)
class CallRecord:
    """The call being served, as its log line and metrics show it."""

    rpc: str
    request_id: str | None
    operator_id: int | None = None
    error_reason: str | None = None  # the ErrorInfo reason of a refusal


CALL: contextvars.ContextVar["CallRecord | None"] = contextvars.ContextVar("call", default=None)


class RequestIdFilter(logging.Filter):
    """Adds the call's request id and operator id to every record logged
    while it is served (JSON logs show them as fields)."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = CALL.get()
        if call is not None:
            if not hasattr(record, "request_id"):
                record.request_id = call.request_id
            if not hasattr(record, "operator_id"):
                record.operator_id = call.operator_id
        return True
