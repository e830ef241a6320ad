"""The operator's Stripe webhooks: verified with the library, handled once,
and applied from the objects' current state at Stripe, so that events
arriving late or out of order never bring back an older state.

Every event about a subscription, customer or payment method first moves
that object's version (the newest event `created` applied to it): an event
older than one already applied is STALE and changes nothing. Then the
object is fetched again from Stripe and its current state applied, which
makes events of the same second, and repeated deliveries, harmless."""

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import stripe

from ..catalog.subscriptions import Subscriptions
from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import InvalidArgument, NotFound, StripeRefused
from ..domain.models import SubscriptionStatus
from ..domain.owners import Owner
from ..storage.secrets import SecretBox
from . import event_fields as fields
from .client import StripeApi
from .model import EventOutcome, StripeEventRecord
from .store import PaymentsStore

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300
Outcome = tuple[EventOutcome, str]


class StripeWebhooks:
    def __init__(
        self,
        payments: PaymentsStore,
        subscriptions: Subscriptions,
        api: StripeApi,
        box: SecretBox,
        clock: Clock,
    ) -> None:
        self._payments = payments
        self._subscriptions = subscriptions
        self._api = api
        self._box = box
        self._clock = clock
        self._handlers: dict[str, Callable[[int, str, Any, datetime], Awaitable[Outcome]]] = {
            "checkout.session.completed": self._checkout_completed,
            "customer.subscription.created": self._subscription_event,
            "customer.subscription.updated": self._subscription_event,
            "customer.subscription.deleted": self._subscription_event,
            "invoice.paid": self._invoice_event,
            "invoice.payment_failed": self._invoice_event,
            "payment_method.attached": self._payment_method_event,
            "payment_method.detached": self._payment_method_event,
            "customer.updated": self._customer_updated,
        }

    async def handle(
        self, operator_id: int, payload: bytes, signature: str
    ) -> tuple[StripeEventRecord, bool]:
        """Verify and apply one event: its record, and whether it had been
        received before, or is being handled by a concurrent delivery (then
        this delivery changes nothing)."""
        found = await self._payments.get_account(operator_id)
        if found is None:
            raise NotFound("Stripe account", f"operator {operator_id}")
        event = _verified(payload, signature, self._box.open(found[1].webhook_secret))
        event_id = fields.event_id(event)
        signed_at = _signed_at(signature)
        received = self._clock.now()
        seen = await self._payments.claim_event(operator_id, event_id, received)
        if seen is not None:
            return seen, True
        try:
            kind, outcome, created = await self._apply(
                operator_id, found[1].secret_key, event, signed_at
            )
        except BaseException:
            # Stripe sends the event again: it must find it unclaimed.
            await self._payments.release_event(operator_id, event_id, received)
            raise
        if outcome[0] in (EventOutcome.UNKNOWN_PRICE, EventOutcome.UNKNOWN_CUSTOMER):
            log.warning(
                "Stripe event %s (%s) of operator %d: %s %s",
                event_id, kind, operator_id, outcome[0].value, outcome[1],
            )  # fmt: skip
        record = StripeEventRecord(event_id, kind, *outcome, created, received)
        return await self._payments.record_event(operator_id, record), False

    async def _apply(
        self, operator_id: int, sealed_secret: str, event: dict[str, Any], signed_at: datetime
    ) -> tuple[str, Outcome, datetime]:
        """The event's type, what it did and when Stripe created it; a
        malformed event does nothing and is ignored with the reason."""
        kind, created = fields.UNKNOWN_TYPE, signed_at
        try:
            kind = fields.event_type(event)
            created = fields.created(event, signed_at)
            obj = fields.event_object(event)
            handler = self._handlers.get(kind)
            if handler is None:
                return kind, (EventOutcome.IGNORED, ""), created
            secret = self._box.open(sealed_secret)
            return kind, await handler(operator_id, secret, obj, created), created
        except fields.MalformedEvent as error:
            log.warning("Stripe event of operator %d: %s", operator_id, error.reason)
            return kind, (EventOutcome.IGNORED, error.reason), created

    # -- subscriptions ------------------------------------------------------

    async def _subscription_event(
        self, operator_id: int, secret: str, subscription: Any, created: datetime
    ) -> Outcome:
        subscription_id = fields.object_id("data.object.id", subscription.get("id"))
        return await self._apply_subscription(operator_id, secret, subscription_id, created)

    async def _invoice_event(
        self, operator_id: int, secret: str, invoice: Any, created: datetime
    ) -> Outcome:
        # Current API versions name the subscription under `parent`.
        parent = fields.mapping("invoice.parent", invoice.get("parent"))
        details = fields.mapping(
            "invoice.parent.subscription_details", parent.get("subscription_details")
        )
        subscription = fields.optional_id(
            "invoice.subscription", details.get("subscription") or invoice.get("subscription")
        )
        if not subscription:
            return EventOutcome.IGNORED, "an invoice of no subscription"
        return await self._apply_subscription(operator_id, secret, subscription, created)

    async def _apply_subscription(
        self, operator_id: int, secret: str, subscription_id: str, created: datetime
    ) -> Outcome:
        if not await self._payments.advance_object(operator_id, subscription_id, created):
            return EventOutcome.STALE, subscription_id
        sub = await self._current(secret, "subscriptions", subscription_id)
        if sub is None:
            return EventOutcome.IGNORED, f"{subscription_id} is no longer at Stripe"
        customer_id = _id(sub["customer"])
        owner = await self._owner_of(operator_id, customer_id, sub.get("metadata") or {})
        if owner is None:
            return EventOutcome.UNKNOWN_CUSTOMER, customer_id
        items = (sub.get("items") or {}).get("data") or []
        for item in items:
            plan_key = await self._payments.plan_for_price(operator_id, item["price"]["id"])
            if plan_key is not None:
                break
        else:
            prices = ", ".join(str(item["price"]["id"]) for item in items)
            return EventOutcome.UNKNOWN_PRICE, prices or f"{subscription_id} has no items"
        try:
            status = SubscriptionStatus(sub["status"])
        except ValueError:
            return EventOutcome.IGNORED, f"unknown status {sub['status']!r}"
        if await self._another_serving(operator_id, owner, subscription_id, status):
            return EventOutcome.IGNORED, f"{subscription_id}: the owner has another subscription"
        period_end = item.get("current_period_end") or sub.get("current_period_end")
        # The cycle's own anchor: current_period_end is clamped in short months.
        anchor = sub.get("billing_cycle_anchor") or item.get("current_period_start")
        await self._subscriptions.set(
            operator_id,
            owner,
            plan_key,
            status,
            customer_id,
            subscription_id,
            datetime.fromtimestamp(int(period_end), UTC) if period_end else None,
            assign_kit=True,
            billing_cycle_anchor=datetime.fromtimestamp(int(anchor), UTC) if anchor else None,
        )
        return EventOutcome.APPLIED, f"{subscription_id}: {plan_key} {status.value}"

    async def _another_serving(
        self, operator_id: int, owner: Owner, subscription_id: str, status: SubscriptionStatus
    ) -> bool:
        """Whether an ended subscription would overwrite the owner's other,
        serving one (an old subscription's last events after a new one)."""
        if status.enforces_plan:
            return False
        try:
            current = (await self._subscriptions.get(operator_id, owner)).subscription
        except NotFound:
            return False
        return bool(
            current is not None
            and current.stripe_subscription_id
            and current.stripe_subscription_id != subscription_id
            and current.status.enforces_plan
        )

    async def _owner_of(
        self, operator_id: int, customer_id: str, metadata: dict[str, Any]
    ) -> Owner | None:
        """The owner linked to a customer; or, for a customer this service
        did not create, the owner its metadata names (then linked)."""
        customer = await self._payments.customer_by_id(operator_id, customer_id)
        if customer is not None:
            return Owner.from_key(customer.owner_key)
        owner = _owner_in(metadata.get("billing_owner"))
        if owner is None:
            return None
        linked, _ = await self._payments.link_customer(
            operator_id, owner.key, customer_id, self._clock.now()
        )
        return owner if linked is not None and linked.customer_id == customer_id else None

    async def _current(self, secret: str, kind: str, object_id: str) -> dict[str, Any] | None:
        """The object as Stripe holds it now; None once Stripe has no such
        object (a redelivery must not fail for ever on it)."""
        try:
            return await self._api.retrieve(secret, kind, object_id)
        except StripeRefused as error:
            if error.metadata.get("stripe_code") == "resource_missing":
                return None
            raise

    # -- checkout, payment methods, customers -------------------------------

    async def _checkout_completed(
        self, operator_id: int, secret: str, session: Any, created: datetime
    ) -> Outcome:
        # Every field read before anything is written.
        customer_id = fields.optional_id("session.customer", session.get("customer"))
        metadata = dict(fields.mapping("session.metadata", session.get("metadata")))
        reference = fields.text("session.client_reference_id", session.get("client_reference_id"))
        metadata.setdefault("billing_owner", reference)
        mode = fields.text("session.mode", session.get("mode"))
        sub = fields.optional_id("session.subscription", session.get("subscription"))
        setup = fields.optional_id("session.setup_intent", session.get("setup_intent"))
        owner = await self._owner_of(operator_id, customer_id, metadata) if customer_id else None
        if owner is None or customer_id is None:
            return EventOutcome.UNKNOWN_CUSTOMER, customer_id or "a session without a customer"
        if mode == "subscription" and sub:
            return await self._apply_subscription(operator_id, secret, sub, created)
        if mode == "setup" and setup:
            intent = await self._api.retrieve(secret, "setup_intents", setup)
            method = intent.get("payment_method")
            if method:
                await self._payments.put_payment_method(
                    operator_id, _id(method), customer_id, self._clock.now()
                )
                return EventOutcome.APPLIED, f"{customer_id}: payment method {_id(method)}"
        return EventOutcome.APPLIED, f"{customer_id} linked to {owner}"

    async def _payment_method_event(
        self, operator_id: int, secret: str, method: Any, created: datetime
    ) -> Outcome:
        method_id = fields.object_id("data.object.id", method.get("id"))
        if not await self._payments.advance_object(operator_id, method_id, created):
            return EventOutcome.STALE, method_id
        current = await self._current(secret, "payment_methods", method_id) or {}
        customer_id = _id(current["customer"]) if current.get("customer") else None
        await self._payments.put_payment_method(
            operator_id, method_id, customer_id, self._clock.now()
        )
        if customer_id and not await self._payments.customer_by_id(operator_id, customer_id):
            return EventOutcome.UNKNOWN_CUSTOMER, customer_id
        return EventOutcome.APPLIED, f"{method_id} on {customer_id or 'no customer'}"

    async def _customer_updated(
        self, operator_id: int, secret: str, customer: Any, created: datetime
    ) -> Outcome:
        customer_id = fields.object_id("data.object.id", customer.get("id"))
        if await self._payments.customer_by_id(operator_id, customer_id) is None:
            return EventOutcome.UNKNOWN_CUSTOMER, customer_id
        if not await self._payments.advance_object(operator_id, customer_id, created):
            return EventOutcome.STALE, customer_id
        current = await self._api.retrieve(secret, "customers", customer_id)
        default = (current.get("invoice_settings") or {}).get("default_payment_method")
        await self._payments.set_default_payment_method(
            operator_id, customer_id, _id(default) if default else None, self._clock.now()
        )
        return EventOutcome.APPLIED, f"{customer_id}: default payment method {default or 'none'}"


def _verified(payload: bytes, signature: str, secret: str) -> dict[str, Any]:
    """The event, once its signature is Stripe's for this payload and no
    older than the tolerance."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as error:
        raise InvalidArgument("signature", _signature_problem(error)) from None
    except UnicodeDecodeError:
        raise InvalidArgument("payload", "is not UTF-8") from None
    # Its fields are checked where they are read (stripe_event_fields.py).
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        raise InvalidArgument("payload", "is not a Stripe event") from None
    if not isinstance(event, dict):
        raise InvalidArgument("payload", "is not a Stripe event")
    return event


def _signed_at(signature: str) -> datetime:
    """When Stripe signed the delivery (`t=`, within the tolerance of this
    machine's time: the library checked it)."""
    stamps = [item[2:] for item in signature.split(",") if item.startswith("t=")]
    return datetime.fromtimestamp(int(stamps[0]), UTC)


def _signature_problem(error: stripe.SignatureVerificationError) -> str:
    text = str(error.user_message or "")
    if "No Stripe-Signature" in text:
        return "the Stripe-Signature header is missing"
    if "tolerance" in text:
        return f"the signature is older than {TOLERANCE_SECONDS} seconds"
    return "the Stripe-Signature does not match the payload with this operator's webhook secret"


def _id(value: Any) -> str:
    """An object's id, whether the object is expanded or not."""
    return fields.object_id("id", value)


def _owner_in(value: Any) -> Owner | None:
    if not isinstance(value, str) or not value:
        return None
    owner = Owner.from_key(value)
    try:
        v.tenant_id("billing_owner", owner.id)
    except InvalidArgument:
        return None
    return owner
