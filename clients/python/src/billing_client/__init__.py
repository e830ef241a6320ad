"""Python client of the customer billing service (billing.v1 over gRPC)."""

from ._client import AsyncBillingClient, BillingClient, RetryPolicy
from ._proto.billing.v1 import (
    account_kit_pb2,
    billing_pb2,
    meter_pb2,
    notification_pb2,
    plan_pb2,
    project_pb2,
    settings_pb2,
    stripe_pb2,
    subscription_pb2,
    usage_pb2,
    user_pb2,
)
from .errors import (
    AlreadyExists,
    BillingError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ResourceExhausted,
    Throttled,
    Unauthenticated,
    Unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "AsyncBillingClient",
    "BillingClient",
    "BillingError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "ResourceExhausted",
    "RetryPolicy",
    "Throttled",
    "Unauthenticated",
    "Unavailable",
    "__version__",
    "account_kit_pb2",
    "billing_pb2",
    "meter_pb2",
    "notification_pb2",
    "plan_pb2",
    "project_pb2",
    "settings_pb2",
    "stripe_pb2",
    "subscription_pb2",
    "usage_pb2",
    "user_pb2",
]
