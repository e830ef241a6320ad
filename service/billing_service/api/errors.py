"""The one table from domain errors to gRPC status codes, and the rich
google.rpc.Status each error is sent as (AIP-193): an ErrorInfo with the
error's stable reason and metadata, plus BadRequest or QuotaFailure where
they apply."""

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..domain import errors as e

ERROR_DOMAIN = "billing.v1"

STATUS_BY_ERROR: dict[type[e.DomainError], grpc.StatusCode] = {
    e.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    e.NotFound: grpc.StatusCode.NOT_FOUND,
    e.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    e.IdempotencyKeyReused: grpc.StatusCode.ALREADY_EXISTS,
    e.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    e.PlanArchived: grpc.StatusCode.FAILED_PRECONDITION,
    e.ProjectOwnerChanged: grpc.StatusCode.FAILED_PRECONDITION,
    e.SubscriptionInactive: grpc.StatusCode.FAILED_PRECONDITION,
    e.PrimitiveNotPermitted: grpc.StatusCode.PERMISSION_DENIED,
    e.ScopeNotGranted: grpc.StatusCode.PERMISSION_DENIED,
    e.QuotaExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.StorageUnavailable: grpc.StatusCode.UNAVAILABLE,
    e.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    e.StripeUnavailable: grpc.StatusCode.UNAVAILABLE,
    e.WrongPassword: grpc.StatusCode.PERMISSION_DENIED,
    e.Throttled: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_code(error: e.DomainError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return grpc.StatusCode.INTERNAL


def to_status(error: e.DomainError) -> grpc.Status:
    code = status_code(error)
    details = [
        error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
        )
    ]
    if isinstance(error, e.InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=error.field, description=error.description
                    )
                ]
            )
        )
    if isinstance(error, e.QuotaExceeded):
        details.append(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=f"primitive:{error.primitive}",
                        description=error.message,
                    )
                ]
            )
        )
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=error.message, details=packed)
    )


def internal_status() -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.INTERNAL, message="internal error"))
