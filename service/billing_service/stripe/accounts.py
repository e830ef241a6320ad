"""The operator's Stripe account and what a billing page asks of it:
customers, Checkout and Portal sessions, billing status, usage on Stripe's
meters."""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..billing.page import Billing
from ..catalog.meters import Meters
from ..catalog.store import Store
from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import (
    InvalidArgument,
    NotFound,
    PlanArchived,
    SecretsKeyMissing,
    StripeNotConnected,
)
from ..domain.instants import to_micros
from ..domain.models import Page, TenantTerms
from ..domain.owners import Owner
from ..domain.pagination import decode
from ..storage.secrets import SecretBox
from . import model as p
from .client import StripeApi
from .outbox import OutboxStore
from .store import PaymentsStore

WEBHOOK_PATH = "/v1/stripe/webhooks/{operator_id}"


@dataclass(frozen=True, slots=True)
class MeterUsage:
    meter_key: str
    event_name: str
    stripe_meter_id: str | None
    value: Decimal


class Payments:
    def __init__(
        self,
        payments: PaymentsStore,
        outbox: OutboxStore,
        store: Store,
        billing: Billing,
        meters: Meters,
        api: StripeApi,
        box: SecretBox,
        clock: Clock,
    ) -> None:
        self._payments = payments
        self._outbox = outbox
        self._store = store
        self._billing = billing
        self._meters = meters
        self._api = api
        self._box = box
        self._clock = clock

    # -- the account --------------------------------------------------------

    async def connect(
        self, operator_id: int, secret_key: str, webhook_secret: str, rule: p.ApiKeyRule | None
    ) -> p.StripeAccount:
        if not self._box.configured:
            raise SecretsKeyMissing()
        key = p.secret_key(secret_key)
        sealed = p.SealedSecrets(
            self._box.seal(key), self._box.seal(p.webhook_secret(webhook_secret))
        )
        livemode = "_live_" in key
        rule = rule or p.ApiKeyRule.PAYMENT_METHOD
        return await self._payments.put_account(
            operator_id, sealed, livemode, rule, self._clock.now()
        )

    async def account(self, operator_id: int) -> p.StripeAccount:
        found = await self._payments.get_account(operator_id)
        if found is None:
            raise NotFound("Stripe account", f"operator {operator_id}")
        return found[0]

    async def secret_key(self, operator_id: int) -> str:
        found = await self._payments.get_account(operator_id)
        if found is None:
            raise StripeNotConnected()
        return self._box.open(found[1].secret_key)

    # -- customers and sessions ---------------------------------------------

    async def ensure_customer(self, operator_id: int, owner: Owner, email: str) -> tuple[str, bool]:
        """The owner's Stripe customer id, and whether this call created it.
        Concurrent calls and retries send Stripe one idempotency key, so
        Stripe creates one customer; the unique row links it once."""
        email = p.email(email)
        existing = await self._payments.customer_of(operator_id, owner.key)
        if existing is not None:
            return existing.customer_id, False
        secret = await self.secret_key(operator_id)
        digest = hashlib.sha256(f"{operator_id}/{owner.key}".encode()).hexdigest()[:40]
        customer_id = await self._api.create_customer(
            secret, {"billing_owner": owner.key}, email, f"billing-customer-{digest}"
        )
        customer, linked = await self._payments.link_customer(
            operator_id, owner.key, customer_id, self._clock.now()
        )
        if customer is None:
            raise InvalidArgument("owner", f"Stripe customer {customer_id} is another owner's")
        return customer.customer_id, linked

    async def checkout(
        self,
        operator_id: int,
        owner: Owner,
        return_url: str,
        subscription_plan: str | None,
    ) -> tuple[str, str]:
        """A Checkout session: setup mode without a plan, subscription mode
        with one: its id and url."""
        return_url = p.return_url(return_url)
        price = None
        if subscription_plan is not None:
            price = await self._plan_price(operator_id, subscription_plan)
        terms = await self._store.get_terms(operator_id, owner.key)
        customer, _ = await self.ensure_customer(operator_id, owner, "")
        secret = await self.secret_key(operator_id)
        params: dict[str, Any] = {
            "customer": customer,
            "success_url": return_url,
            "cancel_url": return_url,
            "metadata": {"billing_owner": owner.key},
        }
        if len(owner.key) <= 200:
            params["client_reference_id"] = owner.key
        if price is None:
            params["mode"] = "setup"
            params["currency"] = terms.plan.currency if terms.plan else "usd"
        else:
            params["mode"] = "subscription"
            params["line_items"] = [await self._line_item(secret, price)]
            params["subscription_data"] = {"metadata": {"billing_owner": owner.key}}
        return await self._api.create_checkout_session(secret, params)

    async def _plan_price(self, operator_id: int, plan_key: str) -> str:
        plan = await self._store.get_plan(operator_id, v.key("plan_key", plan_key))
        if plan.archived:
            raise PlanArchived(plan.key)
        if not plan.stripe_price_id:
            raise InvalidArgument("plan_key", f"plan '{plan.key}' has no stripe_price_id")
        return plan.stripe_price_id

    async def _line_item(self, secret: str, price_id: str) -> dict[str, Any]:
        """A metered price takes no quantity; a licensed one takes 1."""
        price = await self._api.retrieve(secret, "prices", price_id)
        recurring = price.get("recurring") or {}
        if recurring.get("usage_type") == "metered":
            return {"price": price_id}
        return {"price": price_id, "quantity": 1}

    async def portal(self, operator_id: int, owner: Owner, return_url: str) -> str:
        return_url = p.return_url(return_url)
        customer, _ = await self.ensure_customer(operator_id, owner, "")
        secret = await self.secret_key(operator_id)
        return await self._api.create_portal_session(secret, customer, return_url)

    # -- the owner's billing, from our own records ---------------------------

    async def status(self, operator_id: int, owner: Owner) -> tuple[p.BillingStatus, TenantTerms]:
        customer = await self._payments.customer_of(operator_id, owner.key)
        has_method = customer is not None and await self._payments.has_payment_method(
            operator_id, customer
        )
        terms = await self._store.get_terms(operator_id, owner.key)
        sub = terms.subscription
        status = p.BillingStatus(
            customer_id=customer.customer_id if customer else None,
            has_payment_method=has_method,
            stripe_subscription_id=sub.stripe_subscription_id if sub else None,
            status=sub.status if sub else None,
        )
        return status, terms

    async def overview(
        self, operator_id: int, owner: Owner
    ) -> tuple[p.BillingStatus, Decimal, TenantTerms]:
        status, terms = await self.status(operator_id, owner)
        balance, _ = await self._billing.balance(operator_id, owner)
        return status, balance, terms

    async def can_create_api_key(self, operator_id: int, owner: Owner) -> tuple[bool, str]:
        found = await self._payments.get_account(operator_id)
        rule = found[0].api_key_rule if found else p.ApiKeyRule.PAYMENT_METHOD
        status, _ = await self.status(operator_id, owner)
        return p.can_create_api_key(rule, status)

    # -- Stripe's meters ----------------------------------------------------

    async def usage_from_meters(
        self, operator_id: int, owner: Owner, start: datetime, end: datetime
    ) -> list[MeterUsage]:
        now = self._clock.now()
        start = _minute(v.instant("start_time", start, now))
        end = _minute(v.instant("end_time", end, now))
        if end <= start:
            raise InvalidArgument("end_time", "must be at least a minute after start_time")
        sent = [m for m in (await self._meters.all(operator_id)).values() if m.stripe_event_name]
        secret = await self.secret_key(operator_id)
        customer = await self._payments.customer_of(operator_id, owner.key)
        stripe_meters = await self._api.meters_by_event_name(secret) if sent else {}
        usage = []
        for meter in sent:
            assert meter.stripe_event_name is not None
            meter_id = stripe_meters.get(meter.stripe_event_name)
            value = Decimal(0)
            if meter_id is not None and customer is not None:
                value = await self._api.meter_total(
                    secret, meter_id, customer.customer_id, start, end
                )
            usage.append(MeterUsage(meter.key, meter.stripe_event_name, meter_id, value))
        return usage

    # -- what the operator may check ----------------------------------------

    async def events(
        self, operator_id: int, outcome: p.EventOutcome | None, page_size: int, page_token: str
    ) -> Page[p.StripeEventRecord]:
        size = v.page_size("page_size", page_size)
        after = _event_cursor(decode("page_token", page_token))
        records = await self._payments.list_events(operator_id, outcome, after, size + 1)
        more = len(records) > size
        records = records[:size]
        token = None
        if more:
            last = records[-1]
            token = f"{to_micros(last.received_at)}:{last.event_id}"
        return Page(records, token)

    async def outbox(self, operator_id: int) -> p.OutboxStatus:
        return await self._outbox.status(operator_id)


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _event_cursor(cursor: str | None) -> tuple[int, str] | None:
    if cursor is None:
        return None
    micros, _, event_id = cursor.partition(":")
    if not micros.isdigit() or not event_id:
        raise InvalidArgument("page_token", "is not a token returned by this service")
    return int(micros), event_id
