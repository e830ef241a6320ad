"""Opaque page tokens (AIP-158): the last item's sort key, base64url-encoded.

Parsed strictly: a token the service could not have issued (too long, not
base64url, not the expected JSON object, a key that no item can have:
control characters, lone surrogates, over 255 characters) is
INVALID_ARGUMENT, before anything reaches storage."""

import base64
import binascii
import json

from .errors import InvalidArgument
from .validation import CONTROL_RE, MAX_EXTERNAL_ID

# A token of the longest key (255 characters of up to 4 UTF-8 bytes each).
MAX_TOKEN = 1_400


def encode(cursor: str | None) -> str:
    if cursor is None:
        return ""
    raw = json.dumps({"after": cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(field: str, token: str) -> str | None:
    if not token:
        return None
    if len(token) > MAX_TOKEN:
        raise _not_ours(field)
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        value = json.loads(raw.decode("utf-8"))
        after = value["after"] if isinstance(value, dict) and len(value) == 1 else None
        if not isinstance(after, str):
            raise _not_ours(field)
        after.encode("utf-8")  # no lone surrogates (\\ud800 escapes decode to them)
    except (binascii.Error, ValueError, KeyError, RecursionError):
        raise _not_ours(field) from None
    if not after or len(after) > MAX_EXTERNAL_ID or CONTROL_RE.search(after):
        raise _not_ours(field)
    return after


def _not_ours(field: str) -> InvalidArgument:
    return InvalidArgument(field, "is not a token returned by this service")
