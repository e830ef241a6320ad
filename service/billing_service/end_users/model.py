"""End users: their accounts, preferences, sessions and push
tokens, the rules their input must follow, and what usage alerts say."""

import enum
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import langcodes
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from ..domain import quantities
from ..domain.errors import InvalidArgument
from ..stripe.model import EMAIL_RE, RETURN_URL_RE

MIN_PASSWORD = 10
MAX_PASSWORD = 256
MAX_EMAIL = 254
MAX_REASON = 1000
MAX_TOKEN = 512
MAX_DEVICE_ID = 200
MAX_URL = 2048
MAX_CLIENT_TEXT = 512  # a user agent; an IP address gets 64
PUSH_TOKENS_PER_USER = 20
DELETION_CONFIRM_TEXT = "DELETE MY ACCOUNT"
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class ProfileVisibility(enum.StrEnum):
    PUBLIC = "public"
    NETWORK = "network"
    PRIVATE = "private"


class Theme(enum.StrEnum):
    LIGHT = "light"
    DARK = "dark"
    SYSTEM = "system"


class PushPlatform(enum.StrEnum):
    EXPO = "expo"
    FCM = "fcm"
    APNS = "apns"


class Channel(enum.StrEnum):
    """How a delivery travels."""

    EMAIL = "email"
    PUSH = "push"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class Preferences:
    """Defaults as the second seed document shows them."""

    in_app: bool = True
    push: bool = True
    email: bool = True
    profile_visibility: ProfileVisibility = ProfileVisibility.PUBLIC
    show_email: bool = False
    show_location: bool = True
    theme: Theme = Theme.SYSTEM
    timezone: str | None = None
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class EndUser:
    operator_id: int
    id: str
    email: str
    created_at: datetime
    preferences: Preferences
    deletion_scheduled_at: datetime | None


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    operator_id: int
    user_id: str
    ip_address: str
    user_agent: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    created_at: datetime
    ip_address: str
    user_agent: str
    success: bool


@dataclass(frozen=True, slots=True)
class UsageAlert:
    id: int
    operator_id: int
    owner_key: str
    primitive: str
    threshold: int  # percent
    used: int  # micro-units
    limit: int
    period_start: datetime
    period_end: datetime
    created_at: datetime

    @property
    def title(self) -> str:
        if self.threshold >= 100:
            return f"Quota for '{self.primitive}' used up"
        return f"{self.threshold}% of the quota for '{self.primitive}' used"

    @property
    def text(self) -> str:
        used, limit = quantities.display(self.used), quantities.display(self.limit)
        ends = self.period_end.isoformat().replace("+00:00", "Z")
        return f"{used} of {limit} used this period, which ends {ends}."


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None
    alert: UsageAlert


# -- input rules --------------------------------------------------------------


def email(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_EMAIL or not EMAIL_RE.fullmatch(value):
        raise InvalidArgument(field, "must be an email address")
    return value


def email_key(value: str) -> str:
    """What two emails are compared by: case-insensitively."""
    return value.casefold()


def new_password(field: str, value: str, email_address: str) -> str:
    """The rules a new password follows (README, End users)."""
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise InvalidArgument(field, f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if value.casefold() in _common_passwords() or value.casefold() == email_address.casefold():
        raise InvalidArgument(field, "is too common or too easy to guess: choose another")
    return value


@cache
def _common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords of leaked lists, as zxcvbn ships them."""
    return frozenset(FREQUENCY_LISTS["passwords"])


def timezone(value: str) -> str | None:
    """An IANA zone name; empty clears it."""
    if not value:
        return None
    if len(value) > 64 or value not in _zones():
        raise InvalidArgument("timezone", f"'{value[:64]}' is not an IANA time zone")
    return value


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def locale(value: str) -> str | None:
    """A well-formed BCP 47 tag; empty clears it."""
    if not value:
        return None
    if len(value) > 64 or not langcodes.tag_is_valid(value):
        raise InvalidArgument("locale", f"'{value[:64]}' is not a BCP 47 language tag")
    return value


def client_text(field: str, value: str, limit: int) -> str:
    """An IP address or user agent as the operator's backend saw it."""
    if len(value) > limit or CONTROL_RE.search(value):
        raise InvalidArgument(field, f"must be at most {limit} characters, without controls")
    return value


def push_token(value: str) -> str:
    if not value:
        raise InvalidArgument("token", "is required")
    if len(value) > MAX_TOKEN or CONTROL_RE.search(value) or value != value.strip():
        raise InvalidArgument("token", f"must be at most {MAX_TOKEN} characters, without controls")
    return value


def webhook_url(value: str) -> str:
    if len(value) > MAX_URL or not RETURN_URL_RE.fullmatch(value):
        raise InvalidArgument(
            "url", f"must be an https URL (http only for localhost) of at most {MAX_URL} characters"
        )
    return value


def list_limit(value: int) -> int:
    if value == 0:
        return DEFAULT_LIST_LIMIT
    if not 1 <= value <= MAX_LIST_LIMIT:
        raise InvalidArgument("limit", f"must be 1 to {MAX_LIST_LIMIT}")
    return value
