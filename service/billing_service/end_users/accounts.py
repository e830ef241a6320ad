"""End users' accounts: creation, sign-in (with its throttle), and what a
signed-in user does to their own account (SettingsService)."""

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import (
    InvalidArgument,
    InvalidCredentials,
    PasswordCheckThrottled,
    SecretsKeyMissing,
    SignInThrottled,
    WrongPassword,
)
from ..storage.secrets import SecretBox
from . import model as u
from .alerts import NewDelivery, queue_delivery
from .attempts import Attempt, SignInTry
from .model import Channel, EndUser, LoginAttempt, Session
from .passwords import Passwords
from .sessions import hash_token, mint_session_token
from .store import UsersStore

log = logging.getLogger(__name__)

# Throttles: this many failures for one email (sign-in) or one account (its
# password asked again) within the window refuse its attempts until fewer
# lie in the window; the last one asked again also ends its session.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
EMAIL_CHANGE_VALID = timedelta(hours=24)
EMAIL_TOKEN_PREFIX = "bec_"


class EndUsers:
    def __init__(
        self,
        users: UsersStore,
        passwords: Passwords,
        clock: Clock,
        session_lifetime: timedelta,
        deletion_grace: timedelta,
        *,
        box: SecretBox,
        address_max_failures: int,
        mail_configured: bool,
    ) -> None:
        self._users = users
        self._passwords = passwords
        self._clock = clock
        self._session_lifetime = session_lifetime
        self._deletion_grace = deletion_grace
        self._box = box
        self._address_max_failures = address_max_failures
        self._mail_configured = mail_configured
        self._said_mail_is_queued = False

    # -- the operator's calls -------------------------------------------------

    async def create(self, operator_id: int, email: str, password: str, user_id: str) -> EndUser:
        email = u.email("email", email)
        u.new_password("password", password, email)
        user_id = v.tenant_id("user_id", user_id) if user_id else "usr_" + secrets.token_hex(12)
        password_hash = await self._passwords.hash(password)
        return await self._users.create_user(
            operator_id, user_id, email, u.email_key(email), password_hash, self._clock.now()
        )

    async def sign_in(
        self,
        operator_id: int,
        email: str,
        password: str,
        ip_address: str,
        user_agent: str,
        client_address: str,
    ) -> tuple[str, Session, EndUser]:
        """A new session token, shown once, with its session. The attempt is
        counted before the password is verified (end_users/attempts.py)."""
        client = (
            u.client_text("ip_address", ip_address, 64),
            u.client_text("user_agent", user_agent, u.MAX_CLIENT_TEXT),
        )
        if not email or len(email) > u.MAX_EMAIL:
            raise InvalidCredentials()
        key, now = u.email_key(email), self._clock.now()
        found = await self._users.user_by_email(operator_id, key)
        user_id = None if found is None else found[0].id
        attempt = await self._users.begin_sign_in(
            SignInTry(operator_id, key, user_id, *client, client_address[:64], now),
            now - FAILURE_WINDOW,
            MAX_FAILURES,
            self._address_max_failures,
        )
        self._refuse_throttled(attempt)
        if found is None or not await self._passwords.verify(found[1], password):
            if found is None:
                await self._passwords.verify(None, password)  # as long as a wrong password
            raise InvalidCredentials()  # the attempt stays a failure
        user, password_hash = found
        token = mint_session_token()
        session = Session(
            id="ses_" + secrets.token_hex(12),
            operator_id=operator_id,
            user_id=user.id,
            ip_address=client[0],
            user_agent=client[1],
            created_at=now,
            expires_at=now + self._session_lifetime,
        )
        rehash = None
        if self._passwords.needs_rehash(password_hash):
            rehash = await self._passwords.hash(password)
        await self._users.open_session(session, hash_token(token), attempt.id, rehash)
        return token, session, user

    def _refuse_throttled(self, attempt: Attempt) -> None:
        """Refuse an attempt counting more failures than a limit allows."""
        if len(attempt.failures) > MAX_FAILURES:
            raise SignInThrottled(attempt.failures[MAX_FAILURES - 1] + FAILURE_WINDOW)
        most = self._address_max_failures
        if most and len(attempt.address_failures) > most:
            until = attempt.address_failures[most - 1] + FAILURE_WINDOW
            raise SignInThrottled(until, by_address=True)

    # -- the signed-in user's calls -------------------------------------------

    async def me(self, session: Session) -> EndUser:
        return (await self._account(session))[0]

    async def update_preferences(self, session: Session, changes: dict[str, Any]) -> EndUser:
        if not changes:
            return await self.me(session)
        return await self._users.update_preferences(
            session.operator_id, session.user_id, changes, self._clock.now()
        )

    async def sessions(self, session: Session) -> list[Session]:
        return await self._users.sessions(session.operator_id, session.user_id, self._clock.now())

    async def revoke(self, session: Session, session_id: str) -> bool:
        revoked = await self._users.revoke_sessions(
            session.operator_id, session.user_id, self._clock.now(), only=session_id
        )
        return revoked > 0

    async def revoke_all(self, session: Session, include_current: bool) -> int:
        keep = None if include_current else session.id
        return await self._users.revoke_sessions(
            session.operator_id, session.user_id, self._clock.now(), keep=keep
        )

    async def change_password(self, session: Session, current: str, new: str) -> int:
        user = await self._verified(session, "current_password", current)
        u.new_password("new_password", new, user.email)
        password_hash = await self._passwords.hash(new)
        return await self._users.change_password(
            session.operator_id, session.user_id, password_hash, session.id, self._clock.now()
        )

    async def request_email_change(
        self, session: Session, new_email: str, password: str
    ) -> tuple[datetime, bool]:
        """When the mailed code expires, and whether a mail server sends it
        (without one it stays queued). The code is kept sealed in the
        outbox, only its hash in the change."""
        new_email = u.email("new_email", new_email)
        if not self._box.configured:
            raise SecretsKeyMissing()
        await self._verified(session, "password", password)
        token, now = EMAIL_TOKEN_PREFIX + secrets.token_urlsafe(24), self._clock.now()
        expires_at = now + EMAIL_CHANGE_VALID
        mail = NewDelivery(
            operator_id=session.operator_id,
            channel=Channel.EMAIL,
            target=new_email,
            subject="Confirm your new email address",
            body=self._box.seal(
                "Someone asked to use this address for their account.\n\n"
                f"To confirm, enter this code: {token}\n\n"
                f"It expires at {expires_at.isoformat()}. If it was not you, ignore this email.\n"
            ),
            sealed=True,
        )
        await self._users.add_email_change(
            session.operator_id, session.user_id, new_email, hash_token(token), now,
            expires_at, queue_delivery(mail, now),
        )  # fmt: skip
        if not self._mail_configured and not self._said_mail_is_queued:
            self._said_mail_is_queued = True
            log.warning(
                "email-change codes are queued in the outbox, not mailed: no SMTP server"
                " (BILLING_SMTP_HOST); they are sent once one is set"
            )
        return expires_at, self._mail_configured

    async def verify_email_change(self, session: Session, token: str) -> str:
        if not token or len(token) > 100:
            raise InvalidArgument("token", "is required")
        applied = await self._users.apply_email_change(
            session.operator_id, session.user_id, hash_token(token), self._clock.now()
        )
        if applied is None:
            raise InvalidArgument("token", "unknown, used or expired: request a new one")
        return applied

    async def request_deletion(
        self, session: Session, password: str, confirm_text: str, reason: str
    ) -> datetime:
        if confirm_text != u.DELETION_CONFIRM_TEXT:
            raise InvalidArgument("confirm_text", f"must be exactly '{u.DELETION_CONFIRM_TEXT}'")
        if len(reason) > u.MAX_REASON or u.CONTROL_RE.search(reason.replace("\n", " ")):
            raise InvalidArgument("reason", f"must be at most {u.MAX_REASON} characters")
        await self._verified(session, "password", password)
        at = self._clock.now() + self._deletion_grace
        return await self._users.schedule_deletion(
            session.operator_id, session.user_id, at, reason or None
        )

    async def cancel_deletion(self, session: Session) -> bool:
        return await self._users.cancel_deletion(session.operator_id, session.user_id)

    async def login_history(self, session: Session, limit: int) -> list[LoginAttempt]:
        return await self._users.login_history(
            session.operator_id, session.user_id, u.list_limit(limit)
        )

    async def delete_due(self, limit: int = 100) -> int:
        """Delete the accounts whose grace period has ended (the deletion job)."""
        return await self._users.delete_due_users(self._clock.now(), limit)

    async def _account(self, session: Session) -> tuple[EndUser, str]:
        found = await self._users.user(session.operator_id, session.user_id)
        if found is None:  # deleted while the session was being read
            raise InvalidCredentials()
        return found

    async def _verified(self, session: Session, field: str, password: str) -> EndUser:
        """The user, when `password` is theirs. Checks are throttled per
        account as sign-ins are per email, and counted before verifying; the
        wrong password that reaches the limit revokes the session that sent
        it (whoever holds a stolen session gets that many guesses)."""
        now = self._clock.now()
        check = await self._users.begin_password_check(
            session.operator_id, session.user_id, now, now - FAILURE_WINDOW, MAX_FAILURES
        )
        if len(check.failures) > MAX_FAILURES:
            raise PasswordCheckThrottled(check.failures[MAX_FAILURES - 1] + FAILURE_WINDOW)
        user, password_hash = await self._account(session)
        if not await self._passwords.verify(password_hash, password):
            if len(check.failures) >= MAX_FAILURES:
                await self._users.revoke_sessions(
                    session.operator_id, session.user_id, now, only=session.id
                )
            raise WrongPassword(field)
        await self._users.password_check_succeeded(check.id)
        return user


def preference_changes(**given: Any) -> dict[str, Any]:
    """The fields of a partial update that were given (None: not given),
    validated."""
    changes = {name: value for name, value in given.items() if value is not None}
    if "timezone" in changes:
        changes["timezone"] = u.timezone(changes["timezone"])
    if "locale" in changes:
        changes["locale"] = u.locale(changes["locale"])
    return changes
