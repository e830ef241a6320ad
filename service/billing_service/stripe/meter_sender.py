"""The sender of meter events: reads usage events past its cursor over the
ledger (stripe/cursor.py) and takes due rows of the outbox (cancels,
retries) for a lease, sends them to the operators' Stripe accounts within
a rate, then records what was not delivered: due again after a backoff, or
failed for good.

Meter events go to Stripe's meter event stream (v2), up to 100 a call; a
refund's cancel is one call of its own. A sender that dies mid-send loses
nothing: the cursor has not moved and its rows come due again when the
lease ends, and a resend is harmless, as Stripe dedupes meter events by
identifier."""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from ..backoff import retry_delay
from ..clock import Clock
from ..config import Settings
from ..domain.errors import (
    FailedPrecondition,
    StorageUnavailable,
    StripeKeyRejected,
    StripeRefused,
    StripeUnavailable,
)
from ..domain.instants import from_micros
from ..domain.quantities import to_decimal
from ..storage.secrets import SecretBox
from ..storage.settling import Settlement
from .client import STREAM_BATCH, MeterEvent, StripeApi
from .cursor import MeterCursor, Place, Unsent
from .model import OutboxAction, OutboxItem
from .outbox import OutboxStore
from .store import PaymentsStore

log = logging.getLogger(__name__)

BATCH = 1000  # rows a claim takes, at most
CONCURRENCY = 8
MAX_BACKOFF_SECONDS = 300.0
# Stripe takes meter events up to 35 days old (older ones fail for good)
# and up to 5 minutes ahead (later ones wait), and cancels one only within
# 24 hours of receiving it: a refund after that fails, for the operator to
# credit.
MAX_AGE = timedelta(days=35)
MAX_AHEAD = timedelta(minutes=5)
CANCEL_WINDOW = timedelta(hours=24)
# Delivered reports are kept past the cancel window: a cancel reads when
# Stripe received its report from them.
KEEP_DELIVERED = timedelta(days=2)
PURGE_EVERY_SECONDS = 3600.0


class MeterSender:
    def __init__(
        self,
        cursor: MeterCursor,
        outbox: OutboxStore,
        payments: PaymentsStore,
        api: StripeApi,
        box: SecretBox,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self._cursor = cursor
        self._outbox = outbox
        self._payments = payments
        self._api = api
        self._box = box
        self._clock = clock
        self._lease = timedelta(seconds=settings.stripe_outbox_lease_seconds)
        self._poll = settings.stripe_outbox_poll_seconds
        self._interval = 1.0 / settings.stripe_meter_events_per_second
        # A claim takes at most a second's worth of sends at the rate.
        self._batch = max(1, min(BATCH, int(settings.stripe_meter_events_per_second)))
        self._next_slot = 0.0
        self._task: asyncio.Task[None] | None = None
        self._holder = uuid.uuid4().hex
        self._place: Place | None = None  # where the cursor is, while held
        self._held_until = from_micros(0)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="stripe-meter-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._place is not None:
            self._place = None
            with contextlib.suppress(StorageUnavailable):
                await self._cursor.release(self._holder)

    async def _run(self) -> None:
        last_purge = 0.0
        while True:
            try:
                if time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
                    await self._outbox.purge_delivered(self._clock.now() - KEEP_DELIVERED)
                    last_purge = time.monotonic()
                sent = await self.send_due()
            except StorageUnavailable as error:
                log.warning("meter sender: %s", error.message)
                sent = 0
            except Exception:
                log.exception("meter sender: unexpected error")
                sent = 0
            if sent < self._batch:
                # Nothing more is due: let events gather for a poll into
                # fuller calls, rather than a claim, a call and a settlement
                # for every event or two of a steady trickle.
                await asyncio.sleep(self._poll)

    async def pending(self) -> int:
        """Meter events and cancels not yet delivered or failed."""
        return await self._outbox.pending_total()

    async def send_due(self) -> int:
        """Send one batch read past the cursor (at most a second's worth at
        the rate), then the outbox's due rows, if any: how many were taken."""
        taken = await self._send_read()
        if await self._outbox.any_due(self._clock.now()):
            taken += await self._send_queued()
        return taken

    async def _send_read(self) -> int:
        now = self._clock.now()
        place = await self._holding(now)
        if place is None:
            return 0  # another sender holds the cursor
        read = await self._cursor.read(place, self._batch)
        if read.end == read.start:
            return 0
        unsent = await self._deliver(read.items)
        if await self._cursor.advance(self._holder, read, unsent, self._clock.now(), self._lease):
            self._place, self._held_until = read.end, now + self._lease
        else:
            log.warning("meter sender: the cursor was taken over; its holder sends again")
            self._place = None
        return len(read.items) + len(read.held)

    async def _holding(self, now: datetime) -> Place | None:
        """Where the cursor is, holding it (taken, or renewed once half the
        lease is gone); None while another sender holds it."""
        if self._place is None or now >= self._held_until - self._lease / 2:
            self._place = await self._cursor.take(self._holder, now, self._lease)
            self._held_until = now + self._lease
        return self._place

    async def _send_queued(self) -> int:
        items = await self._outbox.claim(self._clock.now(), self._lease, self._batch)
        if items:
            unsent = await self._deliver(items)
            await self._outbox.settle(_settlement(items, unsent), self._clock.now())
        return len(items)

    async def _deliver(self, items: list[OutboxItem]) -> Unsent:
        """Send `items` within the rate, a few calls at a time."""
        secrets: dict[int, str | None] = {}
        for item in items:
            if item.operator_id not in secrets:
                secrets[item.operator_id] = await self._secret(item.operator_id)
        unsent = Unsent()
        sendable: list[OutboxItem] = []
        for item in items:
            if item.report_failed:
                continue  # nothing at Stripe to cancel: settled as done
            problem = self._unsendable(item, secrets[item.operator_id])
            ahead = item.occurred_at - MAX_AHEAD
            if problem is None and item.action is OutboxAction.REPORT and ahead > self._clock.now():
                unsent.retries.append((item, ahead, "more than 5 minutes ahead: Stripe waits"))
            elif problem is None:
                sendable.append(item)
            else:
                unsent.failures.append((item, problem))
        gate = asyncio.Semaphore(CONCURRENCY)
        # Reports before their cancels: an event's cancel is taken only once
        # its report is settled, so one batch never holds both.
        async with asyncio.TaskGroup() as group:
            for operator_id, batch in _calls(sendable):
                await self._paced(len(batch))
                await gate.acquire()
                secret = secrets[operator_id]
                assert secret is not None
                task = group.create_task(self._send(batch, secret, unsent))
                task.add_done_callback(lambda _: gate.release())
        return unsent

    async def _secret(self, operator_id: int) -> str | None:
        found = await self._payments.get_account(operator_id)
        if found is None:
            return None
        try:
            return self._box.open(found[1].secret_key)
        except FailedPrecondition as error:
            log.warning("meter sender: operator %d: %s", operator_id, error.message)
            return None

    async def _paced(self, events: int) -> None:
        """At most stripe_meter_events_per_second events per second."""
        now = time.monotonic()
        self._next_slot = max(self._next_slot + events * self._interval, now)
        if self._next_slot > now:
            await asyncio.sleep(self._next_slot - now)

    def _unsendable(self, item: OutboxItem, secret: str | None) -> str | None:
        """Why Stripe cannot take the item, if it cannot."""
        if secret is None:
            return "no Stripe account connected (or its key is unreadable)"
        if item.customer_id is None:
            return "the owner has no Stripe customer"
        now = self._clock.now()
        if item.action is OutboxAction.REPORT and now - item.occurred_at > MAX_AGE:
            return "older than the 35 days Stripe accepts"
        received = item.received_by_stripe
        if item.action is OutboxAction.CANCEL and received and now - received >= CANCEL_WINDOW:
            return (
                "refunded more than 24 hours after Stripe received the meter event, which"
                " Stripe no longer cancels: Stripe bills it; credit the customer"
            )
        return None

    async def _send(self, batch: list[OutboxItem], secret: str, unsent: Unsent) -> None:
        """One call: a batch of meter events, or one cancel."""
        try:
            if batch[0].action is OutboxAction.CANCEL:
                await self._api.cancel_meter_event(secret, batch[0].event_name, batch[0].identifier)
            else:
                await self._api.send_meter_events(secret, [_meter_event(i) for i in batch])
        except StripeRefused as error:
            unsent.failures.extend((item, error.message) for item in batch)
        except (StripeUnavailable, StripeKeyRejected) as error:
            attempts = max(item.attempts for item in batch)
            due = self._clock.now() + retry_delay(attempts, MAX_BACKOFF_SECONDS)
            unsent.retries.extend((item, due, error.message) for item in batch)


def _settlement(items: list[OutboxItem], unsent: Unsent) -> Settlement:
    """For outbox rows: every item not retried or failed was delivered."""
    undelivered = {i.id for i, *_ in unsent.retries} | {i.id for i, _ in unsent.failures}
    return Settlement(
        delivered=[item.id for item in items if item.id not in undelivered],
        retries=[(item.id, due, error) for item, due, error in unsent.retries],
        failures=[(item.id, error) for item, error in unsent.failures],
    )


def _calls(items: list[OutboxItem]) -> Iterator[tuple[int, list[OutboxItem]]]:
    """The calls a batch takes: per operator, its reports in chunks of the
    stream's size, and each cancel on its own."""
    by_operator: dict[int, list[OutboxItem]] = {}
    for item in items:
        by_operator.setdefault(item.operator_id, []).append(item)
    for operator_id, mine in by_operator.items():
        reports = [item for item in mine if item.action is OutboxAction.REPORT]
        for start in range(0, len(reports), STREAM_BATCH):
            yield operator_id, reports[start : start + STREAM_BATCH]
        for item in mine:
            if item.action is OutboxAction.CANCEL:
                yield operator_id, [item]


def _meter_event(item: OutboxItem) -> MeterEvent:
    assert item.customer_id is not None
    return MeterEvent(
        item.event_name,
        item.identifier,
        item.customer_id,
        to_decimal(item.quantity),
        item.occurred_at,
    )
