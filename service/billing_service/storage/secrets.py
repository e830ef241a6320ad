"""Operators' Stripe secrets, encrypted at rest with BILLING_SECRETS_KEY:
Fernet (AES-128-CBC and HMAC-SHA256) from `cryptography`; several keys
rotate, the first encrypting and every one decrypting."""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from ..domain.errors import FailedPrecondition, SecretsKeyMissing


class SecretsKeyInvalid(Exception):
    """BILLING_SECRETS_KEY is set but is not a list of Fernet keys."""


class SecretsUnreadable(FailedPrecondition):
    """A stored secret was encrypted with a key no longer configured."""

    reason = "STRIPE_SECRETS_UNREADABLE"


class SecretBox:
    def __init__(self, setting: SecretStr | None) -> None:
        self._fernet: MultiFernet | None = None
        if setting is None or not setting.get_secret_value().strip():
            return
        try:
            keys = [Fernet(key.strip()) for key in setting.get_secret_value().split(",")]
        except ValueError:
            # Never the value itself: it is the secret.
            raise SecretsKeyInvalid(
                "BILLING_SECRETS_KEY must be Fernet keys (32 url-safe base64-encoded bytes),"
                " separated by commas"
            ) from None
        self._fernet = MultiFernet(keys)

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        if self._fernet is None:
            raise SecretsKeyMissing()
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, token: str) -> str:
        if self._fernet is None:
            raise SecretsKeyMissing()
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretsUnreadable(
                "a stored Stripe secret was encrypted with a key BILLING_SECRETS_KEY no longer"
                " lists: put that key back (after the first) or connect the account again"
            ) from None
