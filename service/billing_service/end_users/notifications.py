"""Push tokens, in-app notifications, the operator's alert webhook, and
what a usage alert becomes (compose: pure)."""

import secrets
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

import simplejson

from ..clock import Clock
from ..domain.errors import InvalidArgument, NotFound, SecretsKeyMissing
from ..domain.networks import IPNetwork
from ..domain.owners import Owner, OwnerKind
from ..domain.quantities import to_decimal
from ..storage.secrets import SecretBox
from . import model as u
from .addresses import url_refusal
from .alerts import AlertsStore, Dispatch, NewDelivery, Recipients
from .model import Channel, Notification, PushPlatform, Session, UsageAlert
from .push_tokens import PushTokensStore

NOTIFICATION_PREFIX = "ntf_"


class Notifications:
    def __init__(
        self,
        tokens: PushTokensStore,
        alerts: AlertsStore,
        box: SecretBox,
        clock: Clock,
        webhook_networks: Sequence[IPNetwork] = (),
    ) -> None:
        self._tokens = tokens
        self._alerts = alerts
        self._box = box
        self._clock = clock
        self._webhook_networks = webhook_networks

    async def register_token(
        self, session: Session, token: str, platform: PushPlatform | None, device_id: str
    ) -> None:
        token = u.push_token(token)
        if platform is None:
            raise InvalidArgument("platform", "is required: expo, fcm or apns")
        device = u.client_text("device_id", device_id, u.MAX_DEVICE_ID) or None
        await self._tokens.register_token(
            session.operator_id, session.user_id, token, platform, device, self._clock.now()
        )

    async def unregister_token(self, session: Session, token: str) -> None:
        await self._tokens.unregister_token(
            session.operator_id, session.user_id, u.push_token(token)
        )

    async def inbox(self, session: Session, limit: int, unread_only: bool) -> list[Notification]:
        return await self._alerts.notifications(
            session.operator_id, session.user_id, u.list_limit(limit), unread_only
        )

    async def mark_read(self, session: Session, notification_id: str) -> Notification:
        number = notification_id.removeprefix(NOTIFICATION_PREFIX)
        if not number.isdigit() or len(number) > 18:
            raise NotFound("notification", notification_id[:40])
        found = await self._alerts.mark_read(
            session.operator_id, session.user_id, int(number), self._clock.now()
        )
        if found is None:
            raise NotFound("notification", notification_id)
        return found

    async def set_webhook(self, operator_id: int, url: str) -> str:
        """The new signing secret ('' when the webhook is removed)."""
        if not url:
            await self._alerts.remove_webhook(operator_id)
            return ""
        url = u.webhook_url(url)
        parts = urlsplit(url)
        refused = url_refusal(parts.scheme, parts.hostname or "", self._webhook_networks)
        if refused is not None:
            raise InvalidArgument("url", refused)
        if not self._box.configured:
            raise SecretsKeyMissing()
        secret = "whsec_" + secrets.token_urlsafe(32)
        await self._alerts.set_webhook(operator_id, url, self._box.seal(secret), self._clock.now())
        return secret

    async def alerts(self, operator_id: int, limit: int) -> list[UsageAlert]:
        return await self._alerts.alerts(operator_id, u.list_limit(limit))


def compose(alert: UsageAlert, to: Recipients) -> Dispatch:
    """What an alert becomes, by the user's notification preferences: an
    in-app notification, a mail, a push to each Expo token; and a post to
    the operator's webhook."""
    deliveries = []
    notification = None
    if to.user is not None:
        prefs = to.user.preferences
        if prefs.in_app:
            notification = (alert.title, alert.text)
        if prefs.email:
            deliveries.append(
                NewDelivery(
                    alert.operator_id, Channel.EMAIL, to.user.email, alert.title, alert.text
                )
            )
        if prefs.push:
            deliveries += [
                NewDelivery(
                    alert.operator_id, Channel.PUSH, token, alert.title, _push(alert, token)
                )
                for token, platform in to.tokens
                if platform is PushPlatform.EXPO
            ]
    if to.webhook_url is not None:
        deliveries.append(
            NewDelivery(
                alert.operator_id, Channel.WEBHOOK, to.webhook_url, "usage_alert", alert_json(alert)
            )
        )
    return Dispatch(notification, deliveries)


def alert_payload(alert: UsageAlert) -> dict[str, object]:
    """The alert's `data` of webhook posts and pushes: figures are exact JSON
    numbers, as everywhere the service shows a quantity in JSON."""
    owner = Owner.from_key(alert.owner_key)
    field = "user_id" if owner.kind is OwnerKind.USER else "organization_id"
    return {
        "id": alert_id(alert),
        field: owner.id,
        "primitive": alert.primitive,
        "threshold_percent": alert.threshold,
        "used": to_decimal(alert.used),
        "limit": to_decimal(alert.limit),
        "period_start": _rfc3339(alert.period_start),
        "period_end": _rfc3339(alert.period_end),
        "created_at": _rfc3339(alert.created_at),
    }


def alert_json(alert: UsageAlert) -> str:
    return _exact_json({"type": "usage_alert", "data": alert_payload(alert)})


def alert_id(alert: UsageAlert) -> str:
    return f"alr_{alert.id}"


def _push(alert: UsageAlert, token: str) -> str:
    """One message of Expo's push API."""
    return _exact_json(
        {
            "to": token,
            "title": alert.title,
            "body": alert.text,
            "data": alert_payload(alert),
            "sound": "default",
        }
    )


def _exact_json(content: dict[str, object]) -> str:
    """JSON with Decimals as exact numbers (`12.5`, never a float's digits)."""
    return simplejson.dumps(content, use_decimal=True, sort_keys=True)


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
