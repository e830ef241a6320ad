"""The calls this service makes to Stripe, through the `stripe` library's
async methods, and the one translation of Stripe's errors into ours."""

import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import stripe
from stripe.params import CustomerCreateParams
from stripe.params.billing import (
    MeterEventAdjustmentCreateParams,
    MeterEventSummaryListParams,
)
from stripe.params.checkout import SessionCreateParams
from stripe.params.v2.billing import MeterEventStreamCreateParams

from ..domain.errors import StripeKeyRejected, StripeRefused, StripeUnavailable
from .meter_stream import MeterStream

log = logging.getLogger(__name__)

# Meter events per call on Stripe's meter event stream, at most.
STREAM_BATCH = 100


@dataclass(frozen=True, slots=True)
class MeterEvent:
    event_name: str
    identifier: str
    customer: str
    value: Decimal
    at: datetime


class StripeApi:
    """One `stripe.StripeClient` per secret key, all on one HTTP client
    (its connection pool); every call goes to `api_base`."""

    def __init__(
        self,
        api_base: str,
        max_network_retries: int,
        timeout_seconds: float,
        direct_stream: bool = True,
    ) -> None:
        self._api_base = api_base.rstrip("/")
        # The meter event stream over httpx directly (stripe/meter_stream.py);
        # False: through the library, as every other call.
        self._stream = MeterStream(self._api_base, timeout_seconds) if direct_stream else None
        self._retries = max_network_retries
        self._http = stripe.HTTPXClient(timeout=timeout_seconds)
        self._clients: dict[str, stripe.StripeClient] = {}
        self._sessions: dict[str, tuple[str, float]] = {}  # meter event sessions

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]
        if self._stream is not None:
            await self._stream.close()

    def client(self, secret_key: str) -> stripe.StripeClient:
        name = _digest(secret_key)
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

    async def send_meter_events(self, secret_key: str, events: Sequence[MeterEvent]) -> None:
        """Up to STREAM_BATCH meter events in one call, on Stripe's meter
        event stream (v2): authenticated by a meter event session, created
        once per key and again before it expires, or when Stripe says it has."""
        params: MeterEventStreamCreateParams = {
            "events": [
                {
                    "event_name": event.event_name,
                    "identifier": event.identifier,
                    "timestamp": event.at.isoformat().replace("+00:00", "Z"),
                    "payload": {
                        "stripe_customer_id": event.customer,
                        "value": format(event.value, "f"),
                    },
                }
                for event in events
            ]
        }
        stream = self.client(secret_key).v2.billing.meter_event_stream
        for attempt in (1, 2):
            token = await self._session_token(secret_key)
            try:
                if self._stream is not None:
                    await self._stream.send(token, dict(params))
                    return
                async with calling():
                    await stream.create_async(params, {"api_key": token})
                return
            except StripeKeyRejected:
                self._sessions.pop(_digest(secret_key), None)  # expired early: once more
                if attempt == 2:
                    raise

    async def _session_token(self, secret_key: str) -> str:
        name = _digest(secret_key)
        token, expires = self._sessions.get(name, ("", 0.0))
        if time.monotonic() < expires:
            return token
        async with calling():
            session = await self.client(secret_key).v2.billing.meter_event_session.create_async()
        # Stripe's sessions last 15 minutes: renewed a minute early.
        self._sessions[name] = (str(session.authentication_token), time.monotonic() + 14 * 60)
        return str(session.authentication_token)

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


def _digest(secret_key: str) -> str:
    """What keys clients and sessions: the key itself stays out of
    long-lived structures."""
    return hashlib.sha256(secret_key.encode()).hexdigest()


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
