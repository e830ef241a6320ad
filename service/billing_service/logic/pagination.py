"""Opaque page tokens (AIP-158): the last item's sort key, base64url-encoded."""

import base64
import binascii
import json

from ..domain.errors import InvalidArgument


def encode(cursor: str | None) -> str:
    if cursor is None:
        return ""
    raw = json.dumps({"after": cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(field: str, token: str) -> str | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        after = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument(field, "is not a token returned by this service") from None
    if not isinstance(after, str):
        raise InvalidArgument(field, "is not a token returned by this service")
    return after
