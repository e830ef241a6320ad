import datetime

from billing_client._proto.billing.v1 import subscription_pb2 as _subscription_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import decimal_pb2 as _decimal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApiKeyRule(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_KEY_RULE_UNSPECIFIED: _ClassVar[ApiKeyRule]
    API_KEY_RULE_PAYMENT_METHOD: _ClassVar[ApiKeyRule]
    API_KEY_RULE_PAYMENT_METHOD_AND_SUBSCRIPTION: _ClassVar[ApiKeyRule]

class CheckoutMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECKOUT_MODE_UNSPECIFIED: _ClassVar[CheckoutMode]
    CHECKOUT_MODE_SETUP: _ClassVar[CheckoutMode]
    CHECKOUT_MODE_SUBSCRIPTION: _ClassVar[CheckoutMode]

class StripeEventOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRIPE_EVENT_OUTCOME_UNSPECIFIED: _ClassVar[StripeEventOutcome]
    STRIPE_EVENT_OUTCOME_APPLIED: _ClassVar[StripeEventOutcome]
    STRIPE_EVENT_OUTCOME_STALE: _ClassVar[StripeEventOutcome]
    STRIPE_EVENT_OUTCOME_IGNORED: _ClassVar[StripeEventOutcome]
    STRIPE_EVENT_OUTCOME_UNKNOWN_PRICE: _ClassVar[StripeEventOutcome]
    STRIPE_EVENT_OUTCOME_UNKNOWN_CUSTOMER: _ClassVar[StripeEventOutcome]
    STRIPE_EVENT_OUTCOME_HANDLING: _ClassVar[StripeEventOutcome]
API_KEY_RULE_UNSPECIFIED: ApiKeyRule
API_KEY_RULE_PAYMENT_METHOD: ApiKeyRule
API_KEY_RULE_PAYMENT_METHOD_AND_SUBSCRIPTION: ApiKeyRule
CHECKOUT_MODE_UNSPECIFIED: CheckoutMode
CHECKOUT_MODE_SETUP: CheckoutMode
CHECKOUT_MODE_SUBSCRIPTION: CheckoutMode
STRIPE_EVENT_OUTCOME_UNSPECIFIED: StripeEventOutcome
STRIPE_EVENT_OUTCOME_APPLIED: StripeEventOutcome
STRIPE_EVENT_OUTCOME_STALE: StripeEventOutcome
STRIPE_EVENT_OUTCOME_IGNORED: StripeEventOutcome
STRIPE_EVENT_OUTCOME_UNKNOWN_PRICE: StripeEventOutcome
STRIPE_EVENT_OUTCOME_UNKNOWN_CUSTOMER: StripeEventOutcome
STRIPE_EVENT_OUTCOME_HANDLING: StripeEventOutcome

class StripeAccount(_message.Message):
    __slots__ = ("livemode", "webhook_path", "api_key_rule", "create_time", "update_time")
    LIVEMODE_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_PATH_FIELD_NUMBER: _ClassVar[int]
    API_KEY_RULE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    livemode: bool
    webhook_path: str
    api_key_rule: ApiKeyRule
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, livemode: _Optional[bool] = ..., webhook_path: _Optional[str] = ..., api_key_rule: _Optional[_Union[ApiKeyRule, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConnectStripeAccountRequest(_message.Message):
    __slots__ = ("secret_key", "webhook_secret", "api_key_rule")
    SECRET_KEY_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    API_KEY_RULE_FIELD_NUMBER: _ClassVar[int]
    secret_key: str
    webhook_secret: str
    api_key_rule: ApiKeyRule
    def __init__(self, secret_key: _Optional[str] = ..., webhook_secret: _Optional[str] = ..., api_key_rule: _Optional[_Union[ApiKeyRule, str]] = ...) -> None: ...

class ConnectStripeAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: StripeAccount
    def __init__(self, account: _Optional[_Union[StripeAccount, _Mapping]] = ...) -> None: ...

class GetStripeAccountRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStripeAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: StripeAccount
    def __init__(self, account: _Optional[_Union[StripeAccount, _Mapping]] = ...) -> None: ...

class EnsureCustomerRequest(_message.Message):
    __slots__ = ("user_id", "organization_id", "email")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    email: str
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class EnsureCustomerResponse(_message.Message):
    __slots__ = ("stripe_customer_id", "is_new")
    STRIPE_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    IS_NEW_FIELD_NUMBER: _ClassVar[int]
    stripe_customer_id: str
    is_new: bool
    def __init__(self, stripe_customer_id: _Optional[str] = ..., is_new: _Optional[bool] = ...) -> None: ...

class CreateCheckoutSessionRequest(_message.Message):
    __slots__ = ("user_id", "organization_id", "return_url", "mode", "plan_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PLAN_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    return_url: str
    mode: CheckoutMode
    plan_key: str
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., return_url: _Optional[str] = ..., mode: _Optional[_Union[CheckoutMode, str]] = ..., plan_key: _Optional[str] = ...) -> None: ...

class CreateCheckoutSessionResponse(_message.Message):
    __slots__ = ("url", "session_id")
    URL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    url: str
    session_id: str
    def __init__(self, url: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class CreatePortalSessionRequest(_message.Message):
    __slots__ = ("user_id", "organization_id", "return_url")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    return_url: str
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., return_url: _Optional[str] = ...) -> None: ...

class CreatePortalSessionResponse(_message.Message):
    __slots__ = ("url",)
    URL_FIELD_NUMBER: _ClassVar[int]
    url: str
    def __init__(self, url: _Optional[str] = ...) -> None: ...

class GetBillingRequest(_message.Message):
    __slots__ = ("user_id", "organization_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ...) -> None: ...

class GetBillingResponse(_message.Message):
    __slots__ = ("stripe_customer_id", "has_payment_method", "credit_balance_cents", "subscriptions")
    STRIPE_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    HAS_PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    CREDIT_BALANCE_CENTS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    stripe_customer_id: str
    has_payment_method: bool
    credit_balance_cents: _decimal_pb2.Decimal
    subscriptions: _containers.RepeatedCompositeFieldContainer[_subscription_pb2.Subscription]
    def __init__(self, stripe_customer_id: _Optional[str] = ..., has_payment_method: _Optional[bool] = ..., credit_balance_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., subscriptions: _Optional[_Iterable[_Union[_subscription_pb2.Subscription, _Mapping]]] = ...) -> None: ...

class GetBillingStatusRequest(_message.Message):
    __slots__ = ("user_id", "organization_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ...) -> None: ...

class GetBillingStatusResponse(_message.Message):
    __slots__ = ("has_stripe_account", "stripe_subscription_id", "status", "has_payment_method")
    HAS_STRIPE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    STRIPE_SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HAS_PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    has_stripe_account: bool
    stripe_subscription_id: str
    status: _subscription_pb2.SubscriptionStatus
    has_payment_method: bool
    def __init__(self, has_stripe_account: _Optional[bool] = ..., stripe_subscription_id: _Optional[str] = ..., status: _Optional[_Union[_subscription_pb2.SubscriptionStatus, str]] = ..., has_payment_method: _Optional[bool] = ...) -> None: ...

class CanCreateApiKeyRequest(_message.Message):
    __slots__ = ("user_id", "organization_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ...) -> None: ...

class CanCreateApiKeyResponse(_message.Message):
    __slots__ = ("can_create", "reason")
    CAN_CREATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    can_create: bool
    reason: str
    def __init__(self, can_create: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class GetUsageFromMetersRequest(_message.Message):
    __slots__ = ("user_id", "organization_id", "start_time", "end_time")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MeterUsage(_message.Message):
    __slots__ = ("meter_key", "stripe_event_name", "stripe_meter_id", "value")
    METER_KEY_FIELD_NUMBER: _ClassVar[int]
    STRIPE_EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    STRIPE_METER_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    meter_key: str
    stripe_event_name: str
    stripe_meter_id: str
    value: _decimal_pb2.Decimal
    def __init__(self, meter_key: _Optional[str] = ..., stripe_event_name: _Optional[str] = ..., stripe_meter_id: _Optional[str] = ..., value: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...

class GetUsageFromMetersResponse(_message.Message):
    __slots__ = ("meters",)
    METERS_FIELD_NUMBER: _ClassVar[int]
    meters: _containers.RepeatedCompositeFieldContainer[MeterUsage]
    def __init__(self, meters: _Optional[_Iterable[_Union[MeterUsage, _Mapping]]] = ...) -> None: ...

class StripeEvent(_message.Message):
    __slots__ = ("event_id", "type", "outcome", "detail", "create_time", "receive_time")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: str
    outcome: StripeEventOutcome
    detail: str
    create_time: _timestamp_pb2.Timestamp
    receive_time: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[str] = ..., outcome: _Optional[_Union[StripeEventOutcome, str]] = ..., detail: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListStripeEventsRequest(_message.Message):
    __slots__ = ("outcome", "page_size", "page_token")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    outcome: StripeEventOutcome
    page_size: int
    page_token: str
    def __init__(self, outcome: _Optional[_Union[StripeEventOutcome, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStripeEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[StripeEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[StripeEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetMeterOutboxRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FailedMeterEvent(_message.Message):
    __slots__ = ("identifier", "action", "error", "needs_credit")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NEEDS_CREDIT_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    action: str
    error: str
    needs_credit: bool
    def __init__(self, identifier: _Optional[str] = ..., action: _Optional[str] = ..., error: _Optional[str] = ..., needs_credit: _Optional[bool] = ...) -> None: ...

class GetMeterOutboxResponse(_message.Message):
    __slots__ = ("pending", "oldest_pending_time", "failed", "held")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_TIME_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    pending: int
    oldest_pending_time: _timestamp_pb2.Timestamp
    failed: _containers.RepeatedCompositeFieldContainer[FailedMeterEvent]
    held: int
    def __init__(self, pending: _Optional[int] = ..., oldest_pending_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failed: _Optional[_Iterable[_Union[FailedMeterEvent, _Mapping]]] = ..., held: _Optional[int] = ...) -> None: ...

class HandleStripeWebhookRequest(_message.Message):
    __slots__ = ("operator_id", "payload", "signature")
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    operator_id: int
    payload: bytes
    signature: str
    def __init__(self, operator_id: _Optional[int] = ..., payload: _Optional[bytes] = ..., signature: _Optional[str] = ...) -> None: ...

class HandleStripeWebhookResponse(_message.Message):
    __slots__ = ("event_id", "outcome", "duplicate")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    outcome: StripeEventOutcome
    duplicate: bool
    def __init__(self, event_id: _Optional[str] = ..., outcome: _Optional[_Union[StripeEventOutcome, str]] = ..., duplicate: _Optional[bool] = ...) -> None: ...
