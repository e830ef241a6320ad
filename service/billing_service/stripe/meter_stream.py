"""Stripe's meter event stream (`POST /v2/billing/meter_event_stream`),
called over httpx directly. The stream is the one call made for every usage
event of a meter sent to Stripe, and the library's requestor form-encodes
the parameters of every request, a JSON one too, before it encodes them as
JSON: on 100 events a call that was most of the sender's CPU
(docs/performance.md). The body, headers and error table are the library's;
tests/stripe/test_stripe_meters.py checks that both routes deliver the same events."""

import json
import logging
from typing import Any

import httpx
import stripe

from ..domain.errors import StripeKeyRejected, StripeRefused, StripeUnavailable

log = logging.getLogger(__name__)

PATH = "/v2/billing/meter_event_stream"


class MeterStream:
    def __init__(self, api_base: str, timeout_seconds: float) -> None:
        self._http = httpx.AsyncClient(base_url=api_base, timeout=timeout_seconds)

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, session_token: str, params: dict[str, Any]) -> None:
        """Send one call's events with a meter event session's token."""
        headers = {
            "Authorization": f"Bearer {session_token}",
            "Content-Type": "application/json",
            "Stripe-Version": stripe.api_version,
        }
        try:
            response = await self._http.post(PATH, content=json.dumps(params), headers=headers)
        except httpx.HTTPError as failure:
            log.warning("Stripe unavailable (%s)", type(failure).__name__)
            raise StripeUnavailable("Stripe is unavailable (no answer); try again later") from None
        if response.is_success:
            return
        request_id = response.headers.get("request-id", "")
        if response.status_code == 401:
            raise StripeKeyRejected(request_id)
        if response.status_code == 429 or response.status_code >= 500:
            log.warning("Stripe unavailable (%d, request %s)", response.status_code, request_id)
            raise StripeUnavailable(
                f"Stripe is unavailable ({response.status_code}); try again later"
            )
        refusal = _error_of(response)
        message = str(refusal.get("message") or f"HTTP {response.status_code}")
        raise StripeRefused(message, request_id, str(refusal.get("code") or ""))


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}
