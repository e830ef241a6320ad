"""End users over real gRPC, on both databases: accounts, sign-in and its
throttle, sessions, preferences, password, email change (through a real
SMTP server), deletion after the grace period (injected clock), push tokens,
and that passwords and tokens never reach the logs."""

import logging
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from billing.v1 import (
    notification_pb2,
    settings_pb2,
    subscription_pb2,
    user_pb2,
    user_pb2_grpc,
)
from cryptography.fernet import Fernet
from pydantic import SecretStr

from billing_service.clock import FixedClock
from billing_service.config import Settings
from billing_service.logs import quiet_libraries
from tests.conftest import Client
from tests.end_users.end_user_helpers import (
    PASSWORD,
    SmtpServer,
    create_user,
    eventually,
    sign_in,
    smtp_server,
)
from tests.rpc_errors import failure_of

NEW_PASSWORD = "a much longer passphrase 42"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    yield from smtp_server()


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "delivery_poll_seconds": 0.05,
            # Mailed codes are sealed with it in the outbox.
            "secrets_key": SecretStr(Fernet.generate_key().decode()),
        }
    )


async def refused(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        assert error.code() == code, error.details()
        return error
    raise AssertionError(f"expected {code}")


async def test_create_and_sign_in(client: Client, other_client: Client) -> None:
    user_id = await create_user(client, "Ada@Example.com", "u-ada")
    assert user_id == "u-ada"
    made = await create_user(client, "bob@example.com")
    assert made.startswith("usr_") and len(made) == 28

    signed = await sign_in(client, "ada@EXAMPLE.com")  # case-insensitive
    assert signed.token.startswith("bus_") and signed.user_id == "u-ada"
    # Emails are unique per operator, case-insensitively; the id too.
    for email, uid in (("ADA@example.com", ""), ("new@example.com", "u-ada")):
        error = await refused(
            user_pb2_grpc.UserServiceStub(client.channel).CreateUser(
                user_pb2.CreateUserRequest(email=email, password=PASSWORD, user_id=uid),
                metadata=client.auth,
            ),
            grpc.StatusCode.ALREADY_EXISTS,
        )
        assert PASSWORD not in (error.details() or "")
    # Another operator has users of its own: the same email is free there,
    # and this operator's user cannot sign in through it.
    await refused(sign_in(other_client, "ada@example.com"), grpc.StatusCode.UNAUTHENTICATED)
    await create_user(other_client, "ada@example.com")


@pytest.mark.parametrize(
    ("password", "why"),
    [("short", "10 to 256"), ("password123", "common"), ("x" * 257, "10 to 256")],
)
async def test_weak_passwords_are_refused(client: Client, password: str, why: str) -> None:
    error = await refused(
        create_user(client, "weak@example.com", password=password),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert why in (error.details() or "")


async def test_bad_email_and_email_as_password(client: Client) -> None:
    await refused(create_user(client, "not-an-email"), grpc.StatusCode.INVALID_ARGUMENT)
    await refused(
        create_user(client, "longname@example.com", password="LongName@example.com"),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_session_tokens_and_operator_keys_never_stand_in_for_each_other(
    client: Client,
) -> None:
    await create_user(client, "ada@example.com")
    signed = await sign_in(client, "ada@example.com")
    # A session token on an operator RPC.
    error = await refused(
        client.plans.ListPlans(_list_plans(), metadata=signed.auth),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "session token cannot call operator RPCs" in (error.details() or "")
    # An operator key on an end user's RPC.
    error = await refused(
        signed.settings.GetPreferences(settings_pb2.GetPreferencesRequest(), metadata=client.auth),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "operator API key cannot call end users' RPCs" in (error.details() or "")
    for bad in ("Bearer bus_nonsense", "Basic abc", ""):
        await refused(
            signed.settings.GetPreferences(
                settings_pb2.GetPreferencesRequest(), metadata=[("authorization", bad)]
            ),
            grpc.StatusCode.UNAUTHENTICATED,
        )


def _list_plans() -> object:
    from billing.v1 import plan_pb2

    return plan_pb2.ListPlansRequest()


async def test_preferences_default_as_the_seed_and_update_partially(client: Client) -> None:
    await create_user(client, "ada@example.com")
    me = await sign_in(client, "ada@example.com")
    prefs = (
        await me.settings.GetPreferences(settings_pb2.GetPreferencesRequest(), metadata=me.auth)
    ).preferences
    assert (prefs.notifications.in_app, prefs.notifications.push, prefs.notifications.email) == (
        True,
        True,
        True,
    )
    assert prefs.privacy.profile_visibility == settings_pb2.PROFILE_VISIBILITY_PUBLIC
    assert (prefs.privacy.show_email, prefs.privacy.show_location) == (False, True)
    assert prefs.appearance.theme == settings_pb2.THEME_SYSTEM
    assert (prefs.appearance.timezone, prefs.appearance.locale) == ("", "")

    prefs = (
        await me.settings.UpdateNotifications(
            settings_pb2.UpdateNotificationsRequest(push=True, email=False), metadata=me.auth
        )
    ).preferences
    assert (prefs.notifications.in_app, prefs.notifications.email) == (True, False)
    prefs = (
        await me.settings.UpdatePrivacy(
            settings_pb2.UpdatePrivacyRequest(
                profile_visibility=settings_pb2.PROFILE_VISIBILITY_NETWORK, show_email=False
            ),
            metadata=me.auth,
        )
    ).preferences
    assert prefs.privacy.profile_visibility == settings_pb2.PROFILE_VISIBILITY_NETWORK
    assert prefs.privacy.show_location is True  # not given: kept
    prefs = (
        await me.settings.UpdateAppearance(
            settings_pb2.UpdateAppearanceRequest(
                theme=settings_pb2.THEME_DARK, timezone="America/New_York", locale="en-US"
            ),
            metadata=me.auth,
        )
    ).preferences
    assert (prefs.appearance.theme, prefs.appearance.timezone, prefs.appearance.locale) == (
        settings_pb2.THEME_DARK,
        "America/New_York",
        "en-US",
    )
    assert prefs.notifications.email is False  # another section: kept
    # Unknown zone, malformed tag: refused, nothing changed.
    for request in (
        settings_pb2.UpdateAppearanceRequest(timezone="Mars/Olympus_Mons"),
        settings_pb2.UpdateAppearanceRequest(theme=settings_pb2.THEME_LIGHT, locale="en_US!"),
        settings_pb2.UpdateAppearanceRequest(theme=7),  # type: ignore[arg-type]
    ):
        error = await refused(
            me.settings.UpdateAppearance(request, metadata=me.auth),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert failure_of(error).reason == "INVALID_ARGUMENT"
    prefs = (
        await me.settings.UpdateAppearance(
            settings_pb2.UpdateAppearanceRequest(timezone=""), metadata=me.auth
        )
    ).preferences
    assert (prefs.appearance.theme, prefs.appearance.timezone) == (settings_pb2.THEME_DARK, "")


async def test_sessions_list_revoke_and_expire(client: Client, clock: FixedClock) -> None:
    await create_user(client, "ada@example.com")
    phone = await sign_in(client, "ada@example.com", agent="phone")
    laptop = await sign_in(client, "ada@example.com", agent="laptop")
    tablet = await sign_in(client, "ada@example.com", agent="tablet")
    listed = (
        await laptop.settings.ListSessions(settings_pb2.ListSessionsRequest(), metadata=laptop.auth)
    ).sessions
    assert {s.user_agent for s in listed} == {"phone", "laptop", "tablet"}
    assert [s.user_agent for s in listed if s.is_current] == ["laptop"]
    assert all(s.ip_address == "203.0.113.7" for s in listed)

    await laptop.settings.RevokeSession(
        settings_pb2.RevokeSessionRequest(id=phone.session_id), metadata=laptop.auth
    )
    await refused(
        phone.settings.ListSessions(settings_pb2.ListSessionsRequest(), metadata=phone.auth),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await refused(
        laptop.settings.RevokeSession(
            settings_pb2.RevokeSessionRequest(id=phone.session_id), metadata=laptop.auth
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    # All but the current one.
    revoked = await laptop.settings.RevokeAllSessions(
        settings_pb2.RevokeAllSessionsRequest(), metadata=laptop.auth
    )
    assert revoked.revoked == 1
    await refused(
        tablet.settings.ListSessions(settings_pb2.ListSessionsRequest(), metadata=tablet.auth),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await laptop.settings.ListSessions(settings_pb2.ListSessionsRequest(), metadata=laptop.auth)
    # Expired: refused on the next call.
    clock.set(clock.now() + timedelta(days=30, seconds=1))
    await refused(
        laptop.settings.ListSessions(settings_pb2.ListSessionsRequest(), metadata=laptop.auth),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def test_another_users_session_cannot_be_revoked(client: Client) -> None:
    await create_user(client, "ada@example.com")
    await create_user(client, "bob@example.com")
    ada, bob = await sign_in(client, "ada@example.com"), await sign_in(client, "bob@example.com")
    await refused(
        ada.settings.RevokeSession(
            settings_pb2.RevokeSessionRequest(id=bob.session_id), metadata=ada.auth
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await bob.settings.ListSessions(settings_pb2.ListSessionsRequest(), metadata=bob.auth)


async def test_change_password(client: Client) -> None:
    await create_user(client, "ada@example.com")
    here = await sign_in(client, "ada@example.com")
    there = await sign_in(client, "ada@example.com")
    error = await refused(
        here.settings.ChangePassword(
            settings_pb2.ChangePasswordRequest(
                current_password="wrong password!", new_password=NEW_PASSWORD
            ),
            metadata=here.auth,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert failure_of(error).reason == "WRONG_PASSWORD"
    await refused(
        here.settings.ChangePassword(
            settings_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password="qwerty"),
            metadata=here.auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    changed = await here.settings.ChangePassword(
        settings_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD),
        metadata=here.auth,
    )
    assert changed.revoked_sessions == 1
    await refused(
        there.settings.ListSessions(settings_pb2.ListSessionsRequest(), metadata=there.auth),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await here.settings.ListSessions(settings_pb2.ListSessionsRequest(), metadata=here.auth)
    await refused(sign_in(client, "ada@example.com"), grpc.StatusCode.UNAUTHENTICATED)
    await sign_in(client, "ada@example.com", NEW_PASSWORD)


async def test_sign_in_is_throttled_and_every_attempt_is_in_the_history(
    client: Client, clock: FixedClock
) -> None:
    await create_user(client, "ada@example.com")
    await sign_in(client, "ada@example.com")
    for _ in range(5):
        error = await refused(
            sign_in(client, "ada@example.com", "not the password"),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        assert failure_of(error).reason == "INVALID_CREDENTIALS"
    # The sixth is refused without looking at the password, right one or not.
    error = await refused(sign_in(client, "ada@example.com"), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert failure_of(error).reason == "SIGN_IN_THROTTLED"
    # An unknown email answers as a wrong password does.
    error = await refused(sign_in(client, "nobody@example.com"), grpc.StatusCode.UNAUTHENTICATED)
    assert failure_of(error).reason == "INVALID_CREDENTIALS"
    clock.set(clock.now() + timedelta(minutes=15, seconds=1))
    me = await sign_in(client, "ada@example.com", agent="later")

    history = (
        await me.settings.GetLoginHistory(
            settings_pb2.GetLoginHistoryRequest(limit=3), metadata=me.auth
        )
    ).entries
    assert [(e.success, e.user_agent) for e in history] == [
        (True, "later"),
        (False, "pytest/1"),
        (False, "pytest/1"),
    ]
    everything = (
        await me.settings.GetLoginHistory(settings_pb2.GetLoginHistoryRequest(), metadata=me.auth)
    ).entries
    assert [e.success for e in everything] == [True, False, False, False, False, False, False, True]
    await refused(
        me.settings.GetLoginHistory(
            settings_pb2.GetLoginHistoryRequest(limit=101), metadata=me.auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_email_change_is_mailed_single_use_and_expires(
    client: Client, smtp: SmtpServer, clock: FixedClock
) -> None:
    await create_user(client, "ada@example.com")
    await create_user(client, "taken@example.com")
    me = await sign_in(client, "ada@example.com")
    await refused(
        me.settings.RequestEmailChange(
            settings_pb2.RequestEmailChangeRequest(new_email="new@example.com", password="nope"),
            metadata=me.auth,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    asked = await me.settings.RequestEmailChange(
        settings_pb2.RequestEmailChangeRequest(new_email="new@example.com", password=PASSWORD),
        metadata=me.auth,
    )
    assert asked.expires_at.ToDatetime() > clock.now().replace(tzinfo=None)
    mails = await eventually(lambda: _mails(smtp))
    assert mails[0]["To"] == "new@example.com"
    token = _token(mails[0])

    verified = await me.settings.VerifyEmailChange(
        settings_pb2.VerifyEmailChangeRequest(token=token), metadata=me.auth
    )
    assert verified.email == "new@example.com"
    await sign_in(client, "NEW@example.com")
    await refused(sign_in(client, "ada@example.com"), grpc.StatusCode.UNAUTHENTICATED)
    # Used: refused.
    await refused(
        me.settings.VerifyEmailChange(
            settings_pb2.VerifyEmailChangeRequest(token=token), metadata=me.auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    # Expired: refused.
    await me.settings.RequestEmailChange(
        settings_pb2.RequestEmailChangeRequest(new_email="later@example.com", password=PASSWORD),
        metadata=me.auth,
    )
    mails = await eventually(lambda: _mails(smtp, 2))
    clock.set(clock.now() + timedelta(hours=24, seconds=1))
    me = await sign_in(client, "new@example.com")
    await refused(
        me.settings.VerifyEmailChange(
            settings_pb2.VerifyEmailChangeRequest(token=_token(mails[1])), metadata=me.auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    # An address another user has: refused when asked.
    await me.settings.RequestEmailChange(
        settings_pb2.RequestEmailChangeRequest(new_email="Taken@example.com", password=PASSWORD),
        metadata=me.auth,
    )
    mails = await eventually(lambda: _mails(smtp, 3))
    await refused(
        me.settings.VerifyEmailChange(
            settings_pb2.VerifyEmailChangeRequest(token=_token(mails[2])), metadata=me.auth
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )


async def _mails(smtp: SmtpServer, count: int = 1) -> list[object] | None:
    return list(smtp.messages) if len(smtp.messages) >= count else None


def _token(mail: object) -> str:
    text: str = mail.get_payload(decode=True).decode()  # type: ignore[attr-defined]
    return next(word for word in text.split() if word.startswith("bec_"))


async def test_deletion_after_the_grace_period_keeps_billing_records(
    app: object, client: Client, clock: FixedClock
) -> None:
    from billing_service.app import App

    assert isinstance(app, App)
    await client.plans.UpsertPlan(_plan(), metadata=client.auth)
    await client.subscriptions.SetSubscription(
        subscription_pb2.SetSubscriptionRequest(user_id="u-ada", plan_key="pro"),
        metadata=client.auth,
    )
    await create_user(client, "ada@example.com", "u-ada")
    me = await sign_in(client, "ada@example.com")
    await me.notifications.RegisterToken(
        notification_pb2.RegisterTokenRequest(
            token="ExponentPushToken[a]", platform=notification_pb2.PUSH_PLATFORM_EXPO
        ),
        metadata=me.auth,
    )
    for confirm, password, code in (
        ("delete my account", PASSWORD, grpc.StatusCode.INVALID_ARGUMENT),
        ("DELETE MY ACCOUNT", "wrong password", grpc.StatusCode.PERMISSION_DENIED),
    ):
        await refused(
            me.settings.RequestDeletion(
                settings_pb2.RequestDeletionRequest(password=password, confirm_text=confirm),
                metadata=me.auth,
            ),
            code,
        )
    status = await me.settings.GetDeletionStatus(
        settings_pb2.GetDeletionStatusRequest(), metadata=me.auth
    )
    assert not status.requested and not status.HasField("grace_period_ends")

    scheduled = await me.settings.RequestDeletion(
        settings_pb2.RequestDeletionRequest(
            password=PASSWORD, confirm_text="DELETE MY ACCOUNT", reason="moving on"
        ),
        metadata=me.auth,
    )
    assert scheduled.scheduled_at.ToDatetime() == (clock.now() + timedelta(days=30)).replace(
        tzinfo=None
    )
    status = await me.settings.GetDeletionStatus(
        settings_pb2.GetDeletionStatusRequest(), metadata=me.auth
    )
    assert status.requested and status.grace_period_ends == scheduled.scheduled_at
    cancelled = await me.settings.CancelDeletion(
        settings_pb2.CancelDeletionRequest(), metadata=me.auth
    )
    assert cancelled.cancelled
    await me.settings.RequestDeletion(
        settings_pb2.RequestDeletionRequest(password=PASSWORD, confirm_text="DELETE MY ACCOUNT"),
        metadata=me.auth,
    )

    # One day short of the grace period: nothing happens.
    clock.set(clock.now() + timedelta(days=29))
    assert await app.end_users.delete_due() == 0
    me = await sign_in(client, "ada@example.com")
    clock.set(clock.now() + timedelta(days=1))
    assert await app.end_users.delete_due() == 1

    await refused(
        me.settings.GetPreferences(settings_pb2.GetPreferencesRequest(), metadata=me.auth),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await refused(sign_in(client, "ada@example.com"), grpc.StatusCode.UNAUTHENTICATED)
    # The billing records stay, under the user id.
    subscription = await client.subscriptions.GetSubscription(
        subscription_pb2.GetSubscriptionRequest(user_id="u-ada"), metadata=client.auth
    )
    assert subscription.subscription.plan_key == "pro"
    # The email is free again.
    await create_user(client, "ada@example.com")


def _plan() -> object:
    from billing.v1 import plan_pb2

    return plan_pb2.UpsertPlanRequest(
        key="pro", name="Pro", quotas={"seo": 10}, period=plan_pb2.PERIOD_MONTH
    )


async def test_push_tokens_are_idempotent_move_to_the_latest_user_and_are_capped(
    app: object, client: Client, clock: FixedClock
) -> None:
    from billing_service.app import App

    assert isinstance(app, App)
    await create_user(client, "ada@example.com", "u-ada")
    await create_user(client, "bob@example.com", "u-bob")
    ada, bob = await sign_in(client, "ada@example.com"), await sign_in(client, "bob@example.com")
    operator = await app.store.get_operator("acme")

    async def register(who: object, token: str) -> None:
        await who.notifications.RegisterToken(  # type: ignore[attr-defined]
            notification_pb2.RegisterTokenRequest(
                token=token, platform=notification_pb2.PUSH_PLATFORM_EXPO, device_id="d1"
            ),
            metadata=who.auth,  # type: ignore[attr-defined]
        )

    await register(ada, "ExponentPushToken[shared]")
    await register(ada, "ExponentPushToken[shared]")
    assert len(await app.notifications._tokens.tokens(operator.id, "u-ada")) == 1
    await register(bob, "ExponentPushToken[shared]")
    assert await app.notifications._tokens.tokens(operator.id, "u-ada") == []
    assert len(await app.notifications._tokens.tokens(operator.id, "u-bob")) == 1
    # Unregistering another user's token leaves it alone.
    await ada.notifications.UnregisterToken(
        notification_pb2.UnregisterTokenRequest(token="ExponentPushToken[shared]"),
        metadata=ada.auth,
    )
    assert len(await app.notifications._tokens.tokens(operator.id, "u-bob")) == 1
    await bob.notifications.UnregisterToken(
        notification_pb2.UnregisterTokenRequest(token="ExponentPushToken[shared]"),
        metadata=bob.auth,
    )
    assert await app.notifications._tokens.tokens(operator.id, "u-bob") == []

    for i in range(21):
        clock.set(clock.now() + timedelta(seconds=1))
        await register(ada, f"ExponentPushToken[{i:02}]")
    kept = await app.notifications._tokens.tokens(operator.id, "u-ada")
    assert len(kept) == 20
    assert "ExponentPushToken[00]" not in [token for token, _ in kept]  # the oldest went
    await refused(
        ada.notifications.RegisterToken(
            notification_pb2.RegisterTokenRequest(token="t"), metadata=ada.auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_passwords_and_tokens_never_reach_the_logs(
    client: Client, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_libraries()  # as the command does
    # The local SMTP server logs what it receives: the mail holds the token.
    logging.getLogger("mail.log").setLevel(logging.INFO)
    await create_user(client, "ada@example.com")
    await refused(
        sign_in(client, "ada@example.com", "a wrong guess 123"), grpc.StatusCode.UNAUTHENTICATED
    )
    me = await sign_in(client, "ada@example.com")
    await me.settings.RequestEmailChange(
        settings_pb2.RequestEmailChangeRequest(new_email="new@example.com", password=PASSWORD),
        metadata=me.auth,
    )
    token = _token((await eventually(lambda: _mails(smtp)))[0])
    await me.settings.ChangePassword(
        settings_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD),
        metadata=me.auth,
    )
    logged = caplog.text
    for secret in (PASSWORD, NEW_PASSWORD, "a wrong guess 123", me.token, token):
        assert secret not in logged
