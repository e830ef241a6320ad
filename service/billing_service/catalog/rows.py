"""Conversions between rows and domain records, shared by the Store and the
hot path. Instants are integer microseconds since the Unix epoch (UTC)."""

import json
from decimal import Decimal
from typing import Any

from ..domain.instants import from_micros
from ..domain.models import AccountKit, Period, Plan, Price, Subscription, SubscriptionStatus


def kit_from_row(row: Any) -> AccountKit:
    return AccountKit(
        id=row.id,
        name=row.name,
        primitives=tuple(json.loads(row.primitives)),
        permissions=tuple(json.loads(row.permissions)),
        created_at=from_micros(row.created_at),
        updated_at=from_micros(row.updated_at),
    )


def plan_from_row(row: Any) -> Plan:
    return Plan(
        key=row.key,
        name=row.name,
        account_kit_id=row.account_kit_id,
        stripe_price_id=row.stripe_price_id,
        quotas=json.loads(row.quotas),
        period=Period(row.period),
        archived=bool(row.archived),
        created_at=from_micros(row.created_at),
        updated_at=from_micros(row.updated_at),
        prices=prices_from_json(row.prices),
        currency=row.currency,
    )


def prices_from_json(text: str) -> dict[str, Price]:
    return {
        meter: Price(Decimal(price["unit_price"]), Decimal(price["included"]))
        for meter, price in json.loads(text).items()
    }


def prices_to_json(prices: dict[str, Price]) -> str:
    return json.dumps(
        {
            meter: {"unit_price": str(price.unit_price), "included": str(price.included)}
            for meter, price in sorted(prices.items())
        }
    )


def subscription_from_row(row: Any) -> Subscription:
    return Subscription(
        tenant_id=row.tenant_id,
        plan_key=row.plan_key,
        status=SubscriptionStatus(row.status),
        stripe_customer_id=row.stripe_customer_id,
        stripe_subscription_id=row.stripe_subscription_id,
        current_period_end=(
            None if row.current_period_end is None else from_micros(row.current_period_end)
        ),
        account_kit_id=row.account_kit_id,
        created_at=from_micros(row.created_at),
        updated_at=from_micros(row.updated_at),
        billing_cycle_anchor=(
            None if row.billing_cycle_anchor is None else from_micros(row.billing_cycle_anchor)
        ),
    )
