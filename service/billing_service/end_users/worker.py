"""The end users' background work, in every serving process: dispatch new
usage alerts, deliver what the outbox holds, delete accounts whose grace
period has ended. Every step is a short transaction that claims its rows,
so that any number of processes and replicas can run it side by side."""

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from datetime import timedelta

import httpx

from ..backoff import retry_delay
from ..clock import Clock
from ..config import Settings
from ..domain.errors import DomainError
from ..domain.networks import networks
from ..storage.secrets import SecretBox
from ..storage.settling import Settlement
from .accounts import EndUsers
from .alerts import AlertsStore, Delivery
from .channels import TIMEOUT_SECONDS, DeliveryFailed, ExpoPush, SmtpMailer, WebhookPoster
from .model import Channel
from .notifications import compose

log = logging.getLogger(__name__)

BATCH = 100
CONCURRENCY = 8
MAX_BACKOFF_SECONDS = 3600.0
DELETE_EVERY_SECONDS = 60.0


class EndUserWorker:
    def __init__(
        self,
        alerts: AlertsStore,
        end_users: EndUsers,
        box: SecretBox,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self._alerts = alerts
        self._end_users = end_users
        self._box = box
        self._clock = clock
        self._poll = settings.delivery_poll_seconds
        self._lease = timedelta(seconds=settings.delivery_lease_seconds)
        self._max_attempts = settings.delivery_max_attempts
        self._http = httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
        # Webhooks' own: a connection per post, straight to the address checked.
        self._webhook_http = httpx.AsyncClient(
            timeout=TIMEOUT_SECONDS,
            limits=httpx.Limits(max_keepalive_connections=0),
            trust_env=False,
        )
        self._mailer = _mailer(settings)
        self._push = ExpoPush(settings.expo_push_url, self._http)
        self.webhooks = WebhookPoster(
            self._webhook_http, networks(settings.alert_webhook_allow_networks)
        )
        self._task: asyncio.Task[None] | None = None
        self._last_deletion = 0.0
        self._mails_kept = 0

    def start(self) -> None:
        if self._task is None:
            if self._mailer is None:
                log.info("no BILLING_SMTP_HOST: mail is kept in the outbox, not sent")
            self._task = asyncio.create_task(self._run(), name="end-user-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._http.aclose()
        await self._webhook_http.aclose()

    async def _run(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except DomainError as error:  # storage unavailable: try again later
                log.warning("end-user worker: %s", error.message)
                busy = False
            except Exception:
                log.exception("end-user worker: unexpected error")
                busy = False
            if not busy:
                await asyncio.sleep(self._poll)

    async def run_once(self) -> bool:
        """One pass of each job: whether there may be more to do at once."""
        dispatched = await self._alerts.dispatch(self._clock.now(), BATCH, compose)
        sent = await self.deliver_due()
        if time.monotonic() - self._last_deletion >= DELETE_EVERY_SECONDS:
            self._last_deletion = time.monotonic()
            deleted = await self._end_users.delete_due()
            if deleted:
                log.info("deleted %d end-user accounts whose grace period ended", deleted)
        return dispatched + sent > 0

    async def deliver_due(self) -> int:
        channels = [Channel.PUSH, Channel.WEBHOOK]
        if self._mailer is not None:
            channels.append(Channel.EMAIL)
        else:
            await self._log_mails_kept()
        claimed = await self._alerts.claim(self._clock.now(), self._lease, BATCH, channels)
        if not claimed:
            return 0
        outcome = Settlement()
        gate = asyncio.Semaphore(CONCURRENCY)

        async def deliver(delivery: Delivery) -> None:
            async with gate:
                await self._deliver(delivery, outcome)

        async with asyncio.TaskGroup() as group:
            for delivery in claimed:
                group.create_task(deliver(delivery))
        await self._alerts.settle(outcome, self._clock.now())
        return len(claimed)

    async def pending(self) -> dict[str, int]:
        """Alerts not yet dispatched, and deliveries not yet made, by channel."""
        counts = {"usage_alerts": await self._alerts.undispatched()}
        for channel in Channel:
            counts[f"deliveries_{channel.value}"] = await self._alerts.pending(channel)
        return counts

    async def _log_mails_kept(self) -> None:
        kept = await self._alerts.pending(Channel.EMAIL)
        if kept > self._mails_kept:
            log.warning("%d mails kept in the outbox: no SMTP server (BILLING_SMTP_HOST)", kept)
        self._mails_kept = kept

    async def _deliver(self, delivery: Delivery, outcome: Settlement) -> None:
        try:
            if delivery.channel is Channel.EMAIL:
                assert self._mailer is not None
                await self._mailer.send(self._opened(delivery))
            elif delivery.channel is Channel.PUSH:
                await self._push.send(delivery)
            else:
                await self.webhooks.send(delivery, await self._webhook_secret(delivery))
        except DeliveryFailed as failure:
            if failure.forget_token:
                await self._alerts.forget_token(delivery.operator_id, delivery.target)
            if failure.retry and delivery.attempts < self._max_attempts:
                due = self._clock.now() + retry_delay(delivery.attempts, MAX_BACKOFF_SECONDS)
                outcome.retries.append((delivery.id, due, failure.reason))
            else:
                outcome.failures.append((delivery.id, failure.reason))
            log.info("delivery %d (%s): %s", delivery.id, delivery.channel, failure.reason)
        else:
            outcome.delivered.append(delivery.id)

    def _opened(self, delivery: Delivery) -> Delivery:
        """The delivery with its body readable (a sealed one opened, in memory only)."""
        if not delivery.sealed:
            return delivery
        try:
            return replace(delivery, body=self._box.open(delivery.body))
        except DomainError:  # the key that sealed it is no longer configured
            raise DeliveryFailed(
                "its body was sealed with a key BILLING_SECRETS_KEY no longer lists", retry=True
            ) from None

    async def _webhook_secret(self, delivery: Delivery) -> str:
        sealed = await self._alerts.webhook_secret(delivery.operator_id)
        if sealed is None:
            raise DeliveryFailed("the operator removed its alert webhook", retry=False)
        try:
            return self._box.open(sealed)
        except DomainError as error:
            raise DeliveryFailed(error.message, retry=True) from None


def _mailer(settings: Settings) -> SmtpMailer | None:
    if not settings.smtp_host:
        return None
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    return SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_security,
        settings.smtp_username,
        password,
        settings.mail_from,
    )
