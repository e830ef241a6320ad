"""What the service keeps of the operators' Stripe accounts: the account's
settings, owners' customers, webhook events and meter events to send."""

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from ..domain.errors import InvalidArgument
from ..domain.models import SubscriptionStatus


class ApiKeyRule(enum.StrEnum):
    PAYMENT_METHOD = "payment_method"
    PAYMENT_METHOD_AND_SUBSCRIPTION = "payment_method_and_subscription"


class EventOutcome(enum.StrEnum):
    APPLIED = "applied"
    STALE = "stale"
    IGNORED = "ignored"
    UNKNOWN_PRICE = "unknown_price"
    UNKNOWN_CUSTOMER = "unknown_customer"
    HANDLING = "handling"  # claimed by a delivery whose handler is running


@dataclass(frozen=True, slots=True)
class StripeAccount:
    operator_id: int
    livemode: bool
    api_key_rule: ApiKeyRule
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SealedSecrets:
    """The account's secrets as stored: Fernet tokens (storage/secrets.py)."""

    secret_key: str
    webhook_secret: str


@dataclass(frozen=True, slots=True)
class Customer:
    owner_key: str
    customer_id: str
    default_payment_method: str | None


@dataclass(frozen=True, slots=True)
class StripeEventRecord:
    event_id: str
    type: str
    outcome: EventOutcome
    detail: str
    created_at: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class BillingStatus:
    customer_id: str | None
    has_payment_method: bool
    stripe_subscription_id: str | None
    status: SubscriptionStatus | None


def can_create_api_key(rule: ApiKeyRule, status: BillingStatus) -> tuple[bool, str]:
    """The operator's rule for API keys, and why not when it says no."""
    if not status.has_payment_method:
        return False, "Add a payment method to create API keys"
    if rule is ApiKeyRule.PAYMENT_METHOD_AND_SUBSCRIPTION and status.status not in (
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.TRIALING,
    ):
        return False, "Subscribe to a plan to create API keys"
    return True, ""


class OutboxAction(enum.StrEnum):
    REPORT = "report"  # a meter event
    CANCEL = "cancel"  # a refund: the meter event's cancel adjustment


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A meter event (or its cancel) to send, with what Stripe needs."""

    id: int
    operator_id: int
    event_id: int
    action: OutboxAction
    event_name: str
    attempts: int
    quantity: int  # micro-units
    occurred_at: datetime
    customer_id: str | None
    # A cancel's: when Stripe received its meter event, at the earliest.
    received_by_stripe: datetime | None = None
    report_failed: bool = False  # a cancel's: its report never reached Stripe

    @property
    def identifier(self) -> str:
        return meter_event_identifier(self.event_id)


def meter_event_identifier(event_id: int) -> str:
    """A usage event's identifier at Stripe, which Stripe dedupes on."""
    return f"usage_{event_id}"


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    identifier: str
    action: OutboxAction
    error: str

    @property
    def needs_credit(self) -> bool:
        """A refund Stripe did not cancel: Stripe bills the usage, which
        the operator credits to the customer."""
        return self.action is OutboxAction.CANCEL


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    pending: int
    oldest_pending: datetime | None
    failed: list[FailedDelivery]
    held: int = 0  # reports of owners without a Stripe customer yet


SECRET_KEY_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_")
# The characters after the prefix of a Stripe key or webhook secret.
SECRET_MIN, SECRET_MAX = 8, 240
SECRET_KEY_RE = re.compile(rf"(sk|rk)_(test|live)_[A-Za-z0-9]{{{SECRET_MIN},{SECRET_MAX}}}")
WEBHOOK_SECRET_RE = re.compile(rf"whsec_[A-Za-z0-9+/=_-]{{{SECRET_MIN},{SECRET_MAX}}}")
_EMAIL_CHAR = r"[^@\s\x00-\x1f\x7f]"
EMAIL_RE = re.compile(rf"{_EMAIL_CHAR}{{1,64}}@{_EMAIL_CHAR}{{1,189}}\.[^@\s\x00-\x1f\x7f.]+")
MAX_URL = 2048
# https anywhere, http only to this machine; a host, an optional port, then
# printable ASCII (a URL's characters, percent-encoded beyond them).
RETURN_URL_RE = re.compile(
    r"(https://[A-Za-z0-9][A-Za-z0-9.-]*|http://(localhost|127\.0\.0\.1|\[::1\]))"
    r"(:[0-9]{1,5})?([/?#][!-~]*)?"
)


def secret_key(value: str) -> str:
    """A Stripe secret or restricted key. Errors say the rule the value
    breaks, never the value (nor its length)."""
    if SECRET_KEY_RE.fullmatch(value):
        return value
    prefix = next((p for p in SECRET_KEY_PREFIXES if value.startswith(p)), None)
    if prefix is None:
        raise InvalidArgument(
            "secret_key",
            "must be a Stripe secret key (sk_live_ or sk_test_) or restricted key "
            "(rk_live_ or rk_test_), as the dashboard shows it (Developers, API keys)",
        )
    raise InvalidArgument(
        "secret_key",
        f"is not a whole Stripe key: after {prefix} a key has {SECRET_MIN} to "
        f"{SECRET_MAX} letters and digits; copy it again from the dashboard",
    )


def webhook_secret(value: str) -> str:
    if not WEBHOOK_SECRET_RE.fullmatch(value):
        raise InvalidArgument(
            "webhook_secret",
            f"must be a webhook signing secret as the dashboard shows it: whsec_, then "
            f"{SECRET_MIN} to {SECRET_MAX} letters, digits or + / = _ -",
        )
    return value


def email(value: str) -> str:
    if value and (len(value) > 254 or not EMAIL_RE.fullmatch(value)):
        raise InvalidArgument("email", "must be an email address")
    return value


def return_url(value: str) -> str:
    """Where Stripe sends the customer back: https, or http to this machine."""
    if not value:
        raise InvalidArgument("return_url", "is required")
    if len(value) > MAX_URL or not RETURN_URL_RE.fullmatch(value):
        raise InvalidArgument(
            "return_url",
            f"must be an https URL (http only for localhost) of at most {MAX_URL} characters",
        )
    return value
