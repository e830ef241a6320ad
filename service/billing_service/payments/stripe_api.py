"""The calls this service makes to Stripe, through the `stripe` library's
async methods, and the one translation of Stripe's errors into ours."""

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import stripe
from stripe.params import CustomerCreateParams
from stripe.params.billing import (
    MeterEventAdjustmentCreateParams,
    MeterEventCreateParams,
    MeterEventSummaryListParams,
)
from stripe.params.checkout import SessionCreateParams

from ..domain.errors import StripeKeyRejected, StripeRefused, StripeUnavailable

log = logging.getLogger(__name__)

# The error codes of a meter event Stripe already has: delivered before.
DUPLICATE_METER_EVENT_CODES = frozenset({"duplicate_meter_event", "resource_already_exists"})


class StripeApi:
    """One `stripe.StripeClient` per secret key, all on one HTTP client
    (its connection pool); every call goes to `api_base`."""

    def __init__(self, api_base: str, max_network_retries: int, timeout_seconds: float) -> None:
        self._api_base = api_base.rstrip("/")
        self._retries = max_network_retries
        self._http = stripe.HTTPXClient(timeout=timeout_seconds)
        self._clients: dict[str, stripe.StripeClient] = {}

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    def client(self, secret_key: str) -> stripe.StripeClient:
        # Keyed by a digest: the key itself stays out of long-lived structures.
        name = hashlib.sha256(secret_key.encode()).hexdigest()
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = stripe.StripeClient(
                secret_key,
                base_addresses={"api": self._api_base, "meter_events": self._api_base},
                max_network_retries=self._retries,
                http_client=self._http,
            )
        return client

    # -- customers and sessions ---------------------------------------------

    async def create_customer(
        self, secret_key: str, metadata: Mapping[str, str], email: str, idempotency_key: str
    ) -> str:
        params: CustomerCreateParams = {"metadata": dict(metadata)}
        if email:
            params["email"] = email
        async with calling():
            customer = await self.client(secret_key).v1.customers.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        return str(customer.id)

    async def create_checkout_session(
        self, secret_key: str, params: Mapping[str, Any]
    ) -> tuple[str, str]:
        async with calling():
            session = await self.client(secret_key).v1.checkout.sessions.create_async(
                cast(SessionCreateParams, dict(params))
            )
        return str(session.id), str(session.url)

    async def create_portal_session(self, secret_key: str, customer: str, return_url: str) -> str:
        async with calling():
            session = await self.client(secret_key).v1.billing_portal.sessions.create_async(
                {"customer": customer, "return_url": return_url}
            )
        return str(session.url)

    # -- objects a webhook event is about -----------------------------------

    async def retrieve(self, secret_key: str, kind: str, object_id: str) -> dict[str, Any]:
        """The current state of a subscription, customer, payment method,
        setup intent or price, as a plain dict."""
        service = getattr(self.client(secret_key).v1, kind)
        async with calling():
            found = await service.retrieve_async(object_id)
        return dict(found.to_dict())

    # -- meters -------------------------------------------------------------

    async def send_meter_event(
        self,
        secret_key: str,
        event_name: str,
        identifier: str,
        customer: str,
        value: Decimal,
        at: datetime,
    ) -> None:
        params: MeterEventCreateParams = {
            "event_name": event_name,
            "identifier": identifier,
            "timestamp": int(at.timestamp()),
            "payload": {"stripe_customer_id": customer, "value": format(value, "f")},
        }
        async with calling():
            await self.client(secret_key).v1.billing.meter_events.create_async(params)

    async def cancel_meter_event(self, secret_key: str, event_name: str, identifier: str) -> None:
        params: MeterEventAdjustmentCreateParams = {
            "event_name": event_name,
            "type": "cancel",
            "cancel": {"identifier": identifier},
        }
        async with calling():
            await self.client(secret_key).v1.billing.meter_event_adjustments.create_async(params)

    async def meters_by_event_name(self, secret_key: str) -> dict[str, str]:
        """The account's active meters: event name -> meter id."""
        meters: dict[str, str] = {}
        async with calling():
            page = await self.client(secret_key).v1.billing.meters.list_async(
                {"status": "active", "limit": 100}
            )
            async for meter in page.auto_paging_iter():
                meters[str(meter.event_name)] = str(meter.id)
        return meters

    async def meter_total(
        self, secret_key: str, meter_id: str, customer: str, start: datetime, end: datetime
    ) -> Decimal:
        """A meter's aggregated value for a customer over [start, end)."""
        params: MeterEventSummaryListParams = {
            "customer": customer,
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
            "limit": 100,
        }
        total = Decimal(0)
        async with calling():
            page = await self.client(secret_key).v1.billing.meters.event_summaries.list_async(
                meter_id, params
            )
            async for summary in page.auto_paging_iter():
                total += Decimal(str(summary.aggregated_value))
        # Stripe sends a JSON number (3.0): read as the exact figure it is (3).
        whole = total == total.to_integral_value()
        return total.quantize(Decimal(1)) if whole else total.normalize()


def is_duplicate_meter_event(error: StripeRefused) -> bool:
    return error.metadata.get("stripe_code", "") in DUPLICATE_METER_EVENT_CODES


@contextlib.asynccontextmanager
async def calling() -> AsyncIterator[None]:
    """Stripe's errors as ours: a refusal is StripeRefused with Stripe's
    message and request id, a rejected key StripeKeyRejected, the rest
    (rate limits, network, Stripe's own failures) StripeUnavailable."""
    try:
        yield
    except stripe.AuthenticationError as error:
        raise StripeKeyRejected(error.request_id or "") from None
    except (stripe.CardError, stripe.InvalidRequestError, stripe.IdempotencyError) as error:
        raise StripeRefused(_message(error), error.request_id or "", error.code or "") from None
    except stripe.PermissionError as error:
        raise StripeRefused(_message(error), error.request_id or "", "permission") from None
    except stripe.StripeError as error:
        status = error.http_status or "no answer"
        log.warning("Stripe unavailable (%s, request %s)", status, error.request_id or "-")
        raise StripeUnavailable(f"Stripe is unavailable ({status}); try again later") from None


def _message(error: stripe.StripeError) -> str:
    return error.user_message or "no message"
