"""Reading a refused RPC the way a client does: the status code, and the
google.rpc.Status details (ErrorInfo, BadRequest) sent in the trailers."""

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "billing.v1"


@dataclass(frozen=True)
class Failure:
    code: grpc.StatusCode
    message: str
    # From the ErrorInfo detail; empty when the status carried none.
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # The fields named by the BadRequest detail, if any.
    fields: tuple[str, ...] = ()
    # The subjects of the QuotaFailure detail, if any.
    quota_subjects: tuple[str, ...] = ()


def failure_of(error: grpc.aio.AioRpcError) -> Failure:
    status = rpc_status.from_call(error)
    reason, domain = "", ""
    metadata: dict[str, str] = {}
    fields: list[str] = []
    quota_subjects: list[str] = []
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields.extend(v.field for v in bad_request.field_violations)
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            quota_failure = error_details_pb2.QuotaFailure()
            detail.Unpack(quota_failure)
            quota_subjects.extend(v.subject for v in quota_failure.violations)
    return Failure(
        code=error.code(),
        message=error.details() or "",
        reason=reason,
        domain=domain,
        metadata=metadata,
        fields=tuple(fields),
        quota_subjects=tuple(quota_subjects),
    )


async def refused(call: Awaitable[Any]) -> Failure:
    """Await an RPC that must fail, and return how it failed."""
    try:
        response = await call
    except grpc.aio.AioRpcError as error:
        return failure_of(error)
    raise AssertionError(f"the RPC succeeded: {response}")


async def assert_invalid_argument(call: Awaitable[Any], field_name: str) -> Failure:
    """The RPC is refused as INVALID_ARGUMENT, naming `field_name`."""
    failure = await refused(call)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, failure
    assert failure.reason == "INVALID_ARGUMENT", failure
    assert failure.domain == ERROR_DOMAIN, failure
    assert failure.fields == (field_name,), failure
    return failure


async def assert_not_found(call: Awaitable[Any]) -> Failure:
    failure = await refused(call)
    assert failure.code == grpc.StatusCode.NOT_FOUND, failure
    assert failure.reason == "NOT_FOUND", failure
    assert failure.domain == ERROR_DOMAIN, failure
    return failure
