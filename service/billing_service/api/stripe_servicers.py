"""The servicers of Stripe: the operator's account and the owners' billing
(StripeService), and its webhooks (StripeWebhookService) — proto <-> domain
only."""

from typing import TypeAlias

import grpc
from billing.v1 import stripe_pb2, stripe_pb2_grpc

from ..clock import Clock
from ..domain.errors import InvalidArgument, NotFound
from ..domain.pagination import encode
from ..stripe.accounts import WEBHOOK_PATH, Payments
from ..stripe.model import ApiKeyRule, EventOutcome, StripeAccount, StripeEventRecord
from ..stripe.webhooks import StripeWebhooks
from . import convert as c
from .guard import current_operator

Context: TypeAlias = grpc.aio.ServicerContext

MAX_OPERATOR_ID = 2**31 - 1  # operators.id is a 32-bit integer

RULE_TO_PROTO = {
    ApiKeyRule.PAYMENT_METHOD: stripe_pb2.API_KEY_RULE_PAYMENT_METHOD,
    ApiKeyRule.PAYMENT_METHOD_AND_SUBSCRIPTION: (
        stripe_pb2.API_KEY_RULE_PAYMENT_METHOD_AND_SUBSCRIPTION
    ),
}
RULE_FROM_PROTO = {v: k for k, v in RULE_TO_PROTO.items()}
OUTCOME_TO_PROTO = {
    EventOutcome.APPLIED: stripe_pb2.STRIPE_EVENT_OUTCOME_APPLIED,
    EventOutcome.STALE: stripe_pb2.STRIPE_EVENT_OUTCOME_STALE,
    EventOutcome.IGNORED: stripe_pb2.STRIPE_EVENT_OUTCOME_IGNORED,
    EventOutcome.UNKNOWN_PRICE: stripe_pb2.STRIPE_EVENT_OUTCOME_UNKNOWN_PRICE,
    EventOutcome.UNKNOWN_CUSTOMER: stripe_pb2.STRIPE_EVENT_OUTCOME_UNKNOWN_CUSTOMER,
    EventOutcome.HANDLING: stripe_pb2.STRIPE_EVENT_OUTCOME_HANDLING,
}
OUTCOME_FROM_PROTO = {v: k for k, v in OUTCOME_TO_PROTO.items()}


class StripeServicer(stripe_pb2_grpc.StripeServiceServicer):
    def __init__(self, payments: Payments, clock: Clock) -> None:
        self._payments = payments
        self._clock = clock

    async def ConnectStripeAccount(
        self, request: stripe_pb2.ConnectStripeAccountRequest, context: Context
    ) -> stripe_pb2.ConnectStripeAccountResponse:
        rule = c.optional_enum("api_key_rule", request.api_key_rule, RULE_FROM_PROTO)
        account = await self._payments.connect(
            current_operator(), request.secret_key, request.webhook_secret, rule
        )
        return stripe_pb2.ConnectStripeAccountResponse(account=_account(account))

    async def GetStripeAccount(
        self, request: stripe_pb2.GetStripeAccountRequest, context: Context
    ) -> stripe_pb2.GetStripeAccountResponse:
        account = await self._payments.account(current_operator())
        return stripe_pb2.GetStripeAccountResponse(account=_account(account))

    async def EnsureCustomer(
        self, request: stripe_pb2.EnsureCustomerRequest, context: Context
    ) -> stripe_pb2.EnsureCustomerResponse:
        customer, is_new = await self._payments.ensure_customer(
            current_operator(), c.billing_owner(request), request.email
        )
        return stripe_pb2.EnsureCustomerResponse(stripe_customer_id=customer, is_new=is_new)

    async def CreateCheckoutSession(
        self, request: stripe_pb2.CreateCheckoutSessionRequest, context: Context
    ) -> stripe_pb2.CreateCheckoutSessionResponse:
        owner = c.billing_owner(request)
        mode = request.mode
        if mode not in (
            stripe_pb2.CHECKOUT_MODE_UNSPECIFIED,
            stripe_pb2.CHECKOUT_MODE_SETUP,
            stripe_pb2.CHECKOUT_MODE_SUBSCRIPTION,
        ):
            raise InvalidArgument("mode", f"unknown mode {mode}")
        plan = None
        if mode == stripe_pb2.CHECKOUT_MODE_SUBSCRIPTION:
            if not request.plan_key:
                raise InvalidArgument("plan_key", "is required in subscription mode")
            plan = request.plan_key
        elif request.plan_key:
            raise InvalidArgument("plan_key", "is for CHECKOUT_MODE_SUBSCRIPTION only")
        session_id, url = await self._payments.checkout(
            current_operator(), owner, request.return_url, plan
        )
        return stripe_pb2.CreateCheckoutSessionResponse(url=url, session_id=session_id)

    async def CreatePortalSession(
        self, request: stripe_pb2.CreatePortalSessionRequest, context: Context
    ) -> stripe_pb2.CreatePortalSessionResponse:
        url = await self._payments.portal(
            current_operator(), c.billing_owner(request), request.return_url
        )
        return stripe_pb2.CreatePortalSessionResponse(url=url)

    async def GetBilling(
        self, request: stripe_pb2.GetBillingRequest, context: Context
    ) -> stripe_pb2.GetBillingResponse:
        status, balance, terms = await self._payments.overview(
            current_operator(), c.billing_owner(request)
        )
        response = stripe_pb2.GetBillingResponse(
            stripe_customer_id=status.customer_id or "",
            has_payment_method=status.has_payment_method,
            credit_balance_cents=c.decimal(balance),
        )
        if terms.subscription is not None:
            response.subscriptions.append(c.subscription_to_proto(terms, self._clock.now()))
        return response

    async def GetBillingStatus(
        self, request: stripe_pb2.GetBillingStatusRequest, context: Context
    ) -> stripe_pb2.GetBillingStatusResponse:
        status, _ = await self._payments.status(current_operator(), c.billing_owner(request))
        response = stripe_pb2.GetBillingStatusResponse(
            has_stripe_account=status.customer_id is not None,
            stripe_subscription_id=status.stripe_subscription_id or "",
            has_payment_method=status.has_payment_method,
        )
        if status.status is not None:
            response.status = c.STATUS_TO_PROTO[status.status]
        return response

    async def CanCreateApiKey(
        self, request: stripe_pb2.CanCreateApiKeyRequest, context: Context
    ) -> stripe_pb2.CanCreateApiKeyResponse:
        can, reason = await self._payments.can_create_api_key(
            current_operator(), c.billing_owner(request)
        )
        return stripe_pb2.CanCreateApiKeyResponse(can_create=can, reason=reason)

    async def GetUsageFromMeters(
        self, request: stripe_pb2.GetUsageFromMetersRequest, context: Context
    ) -> stripe_pb2.GetUsageFromMetersResponse:
        owner = c.billing_owner(request)
        start = c.optional_datetime("start_time", request, "start_time")
        end = c.optional_datetime("end_time", request, "end_time")
        if start is None or end is None:
            raise InvalidArgument("start_time" if start is None else "end_time", "is required")
        usage = await self._payments.usage_from_meters(current_operator(), owner, start, end)
        return stripe_pb2.GetUsageFromMetersResponse(
            meters=[
                stripe_pb2.MeterUsage(
                    meter_key=u.meter_key,
                    stripe_event_name=u.event_name,
                    stripe_meter_id=u.stripe_meter_id or "",
                    value=c.decimal(u.value),
                )
                for u in usage
            ]
        )

    async def ListStripeEvents(
        self, request: stripe_pb2.ListStripeEventsRequest, context: Context
    ) -> stripe_pb2.ListStripeEventsResponse:
        outcome = c.optional_enum("outcome", request.outcome, OUTCOME_FROM_PROTO)
        page = await self._payments.events(
            current_operator(), outcome, request.page_size, request.page_token
        )
        return stripe_pb2.ListStripeEventsResponse(
            events=[_event(record) for record in page.items],
            next_page_token=encode(page.next_cursor),
        )

    async def GetMeterOutbox(
        self, request: stripe_pb2.GetMeterOutboxRequest, context: Context
    ) -> stripe_pb2.GetMeterOutboxResponse:
        status = await self._payments.outbox(current_operator())
        response = stripe_pb2.GetMeterOutboxResponse(
            pending=status.pending,
            held=status.held,
            failed=[
                stripe_pb2.FailedMeterEvent(
                    identifier=f.identifier,
                    action=f.action.value,
                    error=f.error,
                    needs_credit=f.needs_credit,
                )
                for f in status.failed
            ],
        )
        if status.oldest_pending is not None:
            response.oldest_pending_time.CopyFrom(c.timestamp(status.oldest_pending))
        return response


class StripeWebhookServicer(stripe_pb2_grpc.StripeWebhookServiceServicer):
    def __init__(self, webhooks: StripeWebhooks) -> None:
        self._webhooks = webhooks

    async def HandleStripeWebhook(
        self, request: stripe_pb2.HandleStripeWebhookRequest, context: Context
    ) -> stripe_pb2.HandleStripeWebhookResponse:
        if not 0 < request.operator_id <= MAX_OPERATOR_ID:
            raise NotFound("Stripe account", f"operator {request.operator_id}")
        record, duplicate = await self._webhooks.handle(
            request.operator_id, request.payload, request.signature
        )
        return stripe_pb2.HandleStripeWebhookResponse(
            event_id=record.event_id,
            outcome=OUTCOME_TO_PROTO[record.outcome],
            duplicate=duplicate,
        )


def _account(account: StripeAccount) -> stripe_pb2.StripeAccount:
    return stripe_pb2.StripeAccount(
        livemode=account.livemode,
        webhook_path=WEBHOOK_PATH.format(operator_id=account.operator_id),
        api_key_rule=RULE_TO_PROTO[account.api_key_rule],
        create_time=c.timestamp(account.created_at),
        update_time=c.timestamp(account.updated_at),
    )


def _event(record: StripeEventRecord) -> stripe_pb2.StripeEvent:
    return stripe_pb2.StripeEvent(
        event_id=record.event_id,
        type=record.type,
        outcome=OUTCOME_TO_PROTO[record.outcome],
        detail=record.detail,
        create_time=c.timestamp(record.created_at),
        receive_time=c.timestamp(record.received_at),
    )
