"""Usage alerts over real gRPC, on both databases: concurrent consumption
raises exactly one 80% and one 100% alert, each delivered once as the
user's preferences say: in-app, by mail (a real SMTP server), by push (a
fake of Expo's API) and to the operator's signed webhook (a fake receiver)."""

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from billing.v1 import (
    notification_pb2,
    notification_pb2_grpc,
    plan_pb2,
    settings_pb2,
    subscription_pb2,
    usage_pb2,
)
from cryptography.fernet import Fernet
from pydantic import SecretStr

from billing_service.clock import FixedClock
from billing_service.config import Settings
from tests.conftest import Client
from tests.end_users.end_user_helpers import (
    Recorder,
    SmtpServer,
    create_user,
    eventually,
    expo_ok,
    recorder,
    sign_in,
    smtp_server,
)

LIMIT = 50


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    yield from smtp_server()


@pytest.fixture
def expo() -> Iterator[Recorder]:
    yield from recorder(expo_ok)


@pytest.fixture
def hook() -> Iterator[Recorder]:
    # Fails the first post: the alert is retried, not lost.
    answers = iter([500])
    yield from recorder(lambda body: (next(answers, 200), {}))


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer, expo: Recorder) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "expo_push_url": expo.url("/--/api/v2/push/send"),
            "delivery_poll_seconds": 0.05,
            "secrets_key": SecretStr(Fernet.generate_key().decode()),
            # The fake receiver listens on loopback, which webhooks are refused
            # unless the service is told to allow it.
            "alert_webhook_allow_networks": "127.0.0.0/8",
        }
    )


async def _subscribe(client: Client, owner: dict[str, Any]) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro", quotas={"seo": LIMIT}),
        metadata=client.auth,
    )
    await client.subscriptions.SetSubscription(
        subscription_pb2.SetSubscriptionRequest(plan_key="pro", **owner), metadata=client.auth
    )


async def _consume_concurrently(client: Client, owner: dict[str, Any], calls: int) -> int:
    async def one() -> bool:
        try:
            await client.usage.ConsumeQuota(
                usage_pb2.ConsumeQuotaRequest(primitive="seo", **owner), metadata=client.auth
            )
            return True
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            return False

    return sum(await asyncio.gather(*(one() for _ in range(calls))))


async def test_concurrent_consumption_raises_one_alert_per_threshold_delivered_everywhere(
    client: Client, smtp: SmtpServer, expo: Recorder, hook: Recorder, clock: FixedClock
) -> None:
    alerts = notification_pb2_grpc.UsageAlertServiceStub(client.channel)
    secret = (
        await alerts.SetAlertWebhook(
            notification_pb2.SetAlertWebhookRequest(url=hook.url("/alerts")), metadata=client.auth
        )
    ).signing_secret
    assert secret.startswith("whsec_")
    await create_user(client, "ada@example.com", "u-ada")
    me = await sign_in(client, "ada@example.com")
    await me.notifications.RegisterToken(
        notification_pb2.RegisterTokenRequest(
            token="ExponentPushToken[ada]", platform=notification_pb2.PUSH_PLATFORM_EXPO
        ),
        metadata=me.auth,
    )
    await me.notifications.RegisterToken(
        notification_pb2.RegisterTokenRequest(
            token="fcm-token", platform=notification_pb2.PUSH_PLATFORM_FCM
        ),
        metadata=me.auth,
    )
    owner: dict[str, Any] = {"user_id": "u-ada"}
    await _subscribe(client, owner)

    admitted = await _consume_concurrently(client, owner, LIMIT + 20)
    assert admitted == LIMIT

    listed = (
        await alerts.ListUsageAlerts(
            notification_pb2.ListUsageAlertsRequest(), metadata=client.auth
        )
    ).alerts
    assert [(a.threshold_percent, a.used, a.limit, a.user_id) for a in listed] == [
        (100, "50", "50", "u-ada"),
        (80, "40", "50", "u-ada"),
    ]

    async def inbox() -> Any:
        found = await me.notifications.ListNotifications(
            notification_pb2.ListNotificationsRequest(), metadata=me.auth
        )
        return found.notifications if len(found.notifications) == 2 else None

    notifications = await eventually(inbox)
    assert [n.alert.threshold_percent for n in notifications] == [100, 80]
    assert notifications[0].title == "Quota for 'seo' used up"
    assert await eventually(lambda: _at_least(smtp.messages, 2))
    assert await eventually(lambda: _at_least(expo.posts, 2))
    # One failed, then retried.
    assert await eventually(lambda: _at_least(hook.posts, 3), clock=clock)
    await asyncio.sleep(0.3)  # nothing more comes
    assert sorted(m["Subject"] for m in smtp.messages) == [
        "80% of the quota for 'seo' used",
        "Quota for 'seo' used up",
    ]
    pushed = [json.loads(body)[0] for _, body in expo.posts]
    assert {p["to"] for p in pushed} == {"ExponentPushToken[ada]"}  # Expo tokens only
    assert sorted(p["data"]["threshold_percent"] for p in pushed) == [80, 100]

    delivered = {}
    for headers, body in hook.posts:
        timestamp, signature = (
            part.split("=", 1)[1] for part in headers["billing-signature"].split(",")
        )
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        assert hmac.compare_digest(signature, expected.hexdigest())
        delivered[json.loads(body)["data"]["id"]] = json.loads(body)["data"]
    assert sorted(d["threshold_percent"] for d in delivered.values()) == [80, 100]

    # Read: marked, and the unread list is one shorter.
    read = await me.notifications.MarkNotificationRead(
        notification_pb2.MarkNotificationReadRequest(id=notifications[0].id), metadata=me.auth
    )
    assert read.notification.HasField("read_at")
    unread = await me.notifications.ListNotifications(
        notification_pb2.ListNotificationsRequest(unread_only=True), metadata=me.auth
    )
    assert [n.id for n in unread.notifications] == [notifications[1].id]
    for bad in ("ntf_999999", "nonsense"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await me.notifications.MarkNotificationRead(
                notification_pb2.MarkNotificationReadRequest(id=bad), metadata=me.auth
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def _at_least(items: list[Any], count: int) -> bool:
    return len(items) >= count


async def test_preferences_choose_the_channels(
    client: Client, smtp: SmtpServer, expo: Recorder
) -> None:
    await create_user(client, "ada@example.com", "u-ada")
    me = await sign_in(client, "ada@example.com")
    await me.settings.UpdateNotifications(
        settings_pb2.UpdateNotificationsRequest(in_app=False, email=False), metadata=me.auth
    )
    await me.notifications.RegisterToken(
        notification_pb2.RegisterTokenRequest(
            token="ExponentPushToken[ada]", platform=notification_pb2.PUSH_PLATFORM_EXPO
        ),
        metadata=me.auth,
    )
    owner: dict[str, Any] = {"user_id": "u-ada"}
    await _subscribe(client, owner)
    await client.usage.ConsumeQuota(
        usage_pb2.ConsumeQuotaRequest(primitive="seo", quantity=LIMIT, **owner),
        metadata=client.auth,
    )
    assert await eventually(lambda: _at_least(expo.posts, 2))
    await asyncio.sleep(0.3)
    assert smtp.messages == []
    found = await me.notifications.ListNotifications(
        notification_pb2.ListNotificationsRequest(), metadata=me.auth
    )
    assert list(found.notifications) == []


async def test_an_organizations_alerts_go_to_the_webhook_only(
    client: Client, hook: Recorder, clock: FixedClock
) -> None:
    alerts = notification_pb2_grpc.UsageAlertServiceStub(client.channel)
    await alerts.SetAlertWebhook(
        notification_pb2.SetAlertWebhookRequest(url=hook.url()), metadata=client.auth
    )
    owner: dict[str, Any] = {"organization_id": "o-1"}
    await _subscribe(client, owner)
    await client.usage.ConsumeQuota(
        usage_pb2.ConsumeQuotaRequest(primitive="seo", quantity=45, **owner),
        metadata=client.auth,
    )
    assert await eventually(lambda: _at_least(hook.posts, 2), clock=clock)
    data = json.loads(hook.posts[-1][1])["data"]
    # Figures are JSON numbers, as in every other answer of the service.
    assert (data["organization_id"], data["threshold_percent"], data["used"]) == ("o-1", 80, 45)
    # Removed: nothing more is posted.
    await alerts.SetAlertWebhook(notification_pb2.SetAlertWebhookRequest(), metadata=client.auth)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await alerts.SetAlertWebhook(
            notification_pb2.SetAlertWebhookRequest(url="ftp://example.com"), metadata=client.auth
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
