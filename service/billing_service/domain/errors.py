"""Domain errors. Each carries a stable upper-case reason and metadata; the API
layer maps them to status codes from one table (api/errors.py)."""

from collections.abc import Mapping
from datetime import datetime

from . import quantities


class DomainError(Exception):
    """Base of every error a client is meant to see."""

    reason = "ERROR"

    def __init__(self, message: str, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata or {})


class InvalidArgument(DomainError):
    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", {"field": field})
        self.field = field
        self.description = message


class NotFound(DomainError):
    reason = "NOT_FOUND"

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(f"{resource} '{name}' not found", {"resource": resource, "name": name})


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"


class ScopeNotGranted(DomainError):
    """The key authenticates, but none of its scopes admits this RPC."""

    reason = "SCOPE_NOT_GRANTED"

    def __init__(self, rpc: str, needed: str) -> None:
        super().__init__(
            f"this API key's scopes do not admit {rpc}: it needs a key of scope '{needed}'",
            {"rpc": rpc, "scope_needed": needed},
        )


class PlanArchived(DomainError):
    reason = "PLAN_ARCHIVED"

    def __init__(self, plan_key: str) -> None:
        super().__init__(f"plan '{plan_key}' is archived", {"plan_key": plan_key})


class IdempotencyKeyReused(DomainError):
    reason = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency_key '{key}' was already used for a different request",
            {"idempotency_key": key},
        )


class QuotaExceeded(DomainError):
    """`used` and `limit` in micro-units (domain/quantities.py); the message
    and metadata show them in units."""

    reason = "RATE_LIMITED"

    def __init__(
        self, primitive: str, used: int, limit: int, resets_at: datetime | None = None
    ) -> None:
        used_text, limit_text = quantities.display(used), quantities.display(limit)
        metadata = {"primitive": primitive, "used": used_text, "limit": limit_text}
        if resets_at is not None:  # the period's end, in RFC 3339 (a REST Retry-After)
            metadata["resets_at"] = resets_at.isoformat().replace("+00:00", "Z")
        super().__init__(
            f"Plan quota exceeded for '{primitive}' ({used_text}/{limit_text} this period)",
            metadata,
        )
        self.primitive = primitive
        self.used = used
        self.limit = limit


class SubscriptionInactive(DomainError):
    reason = "SUBSCRIPTION_INACTIVE"

    def __init__(self, tenant_id: str, status: str) -> None:
        super().__init__(
            f"subscription of tenant '{tenant_id}' is {status}: metered calls are refused",
            {"tenant_id": tenant_id, "status": status},
        )


class PrimitiveNotPermitted(DomainError):
    reason = "PRIMITIVE_NOT_PERMITTED"

    def __init__(self, primitive: str, account_kit_id: str) -> None:
        super().__init__(
            f"account kit '{account_kit_id}' does not grant '{primitive}'",
            {"primitive": primitive, "account_kit_id": account_kit_id},
        )


class StorageUnavailable(DomainError):
    reason = "STORAGE_UNAVAILABLE"


class AlreadyExists(DomainError):
    reason = "ALREADY_EXISTS"

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(
            f"{resource} '{name}' already exists", {"resource": resource, "name": name}
        )


class ProjectOwnerChanged(DomainError):
    reason = "PROJECT_OWNER_CHANGED"

    def __init__(self, project_id: str) -> None:
        super().__init__(
            f"project '{project_id}' belongs to another owner: a project keeps its owner",
            {"project_id": project_id},
        )


class FailedPrecondition(DomainError):
    """The operator's setup does not allow the call yet (each subclass says
    what to do)."""

    reason = "FAILED_PRECONDITION"


class StripePriceLinked(FailedPrecondition):
    """A Stripe price links to one plan: webhooks name the plan by its price."""

    reason = "STRIPE_PRICE_LINKED"

    def __init__(self, price_id: str, plan_key: str) -> None:
        super().__init__(
            f"Stripe price '{price_id}' is already the price of plan '{plan_key}':"
            " clear it there first",
            {"stripe_price_id": price_id, "plan_key": plan_key},
        )


class SecretsKeyMissing(FailedPrecondition):
    reason = "SECRETS_KEY_MISSING"

    def __init__(self) -> None:
        super().__init__(
            "this service has no BILLING_SECRETS_KEY to encrypt secrets with (Stripe keys,"
            " webhook signing secrets, mailed email-change codes):"
            " set it (a Fernet key) and restart"
        )


class StripeNotConnected(FailedPrecondition):
    reason = "STRIPE_NOT_CONNECTED"

    def __init__(self) -> None:
        super().__init__("no Stripe account is connected: call ConnectStripeAccount first")


class StripeRefused(FailedPrecondition):
    """Stripe refused the call (an invalid request, a card error): its
    message, request id and error code are passed on."""

    reason = "STRIPE_REFUSED"

    def __init__(self, message: str, request_id: str, code: str) -> None:
        super().__init__(
            f"Stripe refused the call: {message}",
            {"stripe_request_id": request_id, "stripe_code": code},
        )


class StripeKeyRejected(FailedPrecondition):
    reason = "STRIPE_KEY_REJECTED"

    def __init__(self, request_id: str) -> None:
        super().__init__(
            "Stripe key rejected: connect the account again with a valid key",
            {"stripe_request_id": request_id},
        )


class StripeUnavailable(DomainError):
    reason = "STRIPE_UNAVAILABLE"


# -- end users ----------------------------------------------------------------


class InvalidCredentials(Unauthenticated):
    """A sign-in's email or password is wrong (the same answer for both)."""

    reason = "INVALID_CREDENTIALS"

    def __init__(self) -> None:
        super().__init__("wrong email or password")


class WrongPassword(DomainError):
    """A signed-in user's password, asked again, is wrong."""

    reason = "WRONG_PASSWORD"

    def __init__(self, field: str) -> None:
        super().__init__(f"{field}: wrong password", {"field": field})


class Throttled(DomainError):
    """Too many recent failures at a password: refused, whatever the
    password, until `until` (metadata `resets_at`, a REST Retry-After)."""

    reason = "THROTTLED"

    def __init__(self, message: str, until: datetime) -> None:
        super().__init__(message, {"resets_at": until.isoformat().replace("+00:00", "Z")})


class SignInThrottled(Throttled):
    reason = "SIGN_IN_THROTTLED"

    def __init__(self, until: datetime, *, by_address: bool = False) -> None:
        whose = "from this client address" if by_address else "for this email"
        super().__init__(f"too many failed sign-ins {whose}: try again later", until)


class PasswordCheckThrottled(Throttled):
    """A signed-in user's password, asked again, was wrong too often lately."""

    reason = "PASSWORD_CHECK_THROTTLED"

    def __init__(self, until: datetime) -> None:
        super().__init__("too many wrong passwords for this account: try again later", until)
