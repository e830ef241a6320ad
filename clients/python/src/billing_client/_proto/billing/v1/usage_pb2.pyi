import datetime

from billing_client._proto.billing.v1 import plan_pb2 as _plan_pb2
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

class DenialReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DENIAL_REASON_UNSPECIFIED: _ClassVar[DenialReason]
    DENIAL_REASON_QUOTA_EXCEEDED: _ClassVar[DenialReason]
    DENIAL_REASON_SUBSCRIPTION_INACTIVE: _ClassVar[DenialReason]
    DENIAL_REASON_PRIMITIVE_NOT_PERMITTED: _ClassVar[DenialReason]
DENIAL_REASON_UNSPECIFIED: DenialReason
DENIAL_REASON_QUOTA_EXCEEDED: DenialReason
DENIAL_REASON_SUBSCRIPTION_INACTIVE: DenialReason
DENIAL_REASON_PRIMITIVE_NOT_PERMITTED: DenialReason

class QuotaStanding(_message.Message):
    __slots__ = ("used", "limit", "remaining", "unlimited", "period_start", "period_end", "plan_key", "used_decimal", "limit_decimal", "remaining_decimal")
    USED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    UNLIMITED_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    PLAN_KEY_FIELD_NUMBER: _ClassVar[int]
    USED_DECIMAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_DECIMAL_FIELD_NUMBER: _ClassVar[int]
    REMAINING_DECIMAL_FIELD_NUMBER: _ClassVar[int]
    used: int
    limit: int
    remaining: int
    unlimited: bool
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    plan_key: str
    used_decimal: _decimal_pb2.Decimal
    limit_decimal: _decimal_pb2.Decimal
    remaining_decimal: _decimal_pb2.Decimal
    def __init__(self, used: _Optional[int] = ..., limit: _Optional[int] = ..., remaining: _Optional[int] = ..., unlimited: _Optional[bool] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan_key: _Optional[str] = ..., used_decimal: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., limit_decimal: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., remaining_decimal: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...

class CheckQuotaRequest(_message.Message):
    __slots__ = ("tenant_id", "primitive", "quantity", "user_id", "organization_id", "quantity_decimal")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMITIVE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_DECIMAL_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    primitive: str
    quantity: int
    user_id: str
    organization_id: str
    quantity_decimal: _decimal_pb2.Decimal
    def __init__(self, tenant_id: _Optional[str] = ..., primitive: _Optional[str] = ..., quantity: _Optional[int] = ..., user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., quantity_decimal: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...

class CheckQuotaResponse(_message.Message):
    __slots__ = ("allowed", "reason", "standing")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STANDING_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: DenialReason
    standing: QuotaStanding
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[_Union[DenialReason, str]] = ..., standing: _Optional[_Union[QuotaStanding, _Mapping]] = ...) -> None: ...

class ConsumeQuotaRequest(_message.Message):
    __slots__ = ("tenant_id", "primitive", "quantity", "idempotency_key", "user_id", "organization_id", "project_id", "quantity_decimal")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMITIVE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_DECIMAL_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    primitive: str
    quantity: int
    idempotency_key: str
    user_id: str
    organization_id: str
    project_id: str
    quantity_decimal: _decimal_pb2.Decimal
    def __init__(self, tenant_id: _Optional[str] = ..., primitive: _Optional[str] = ..., quantity: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., quantity_decimal: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...

class ConsumeQuotaResponse(_message.Message):
    __slots__ = ("usage_event_id", "standing", "replayed")
    USAGE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STANDING_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    usage_event_id: str
    standing: QuotaStanding
    replayed: bool
    def __init__(self, usage_event_id: _Optional[str] = ..., standing: _Optional[_Union[QuotaStanding, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class RecordUsageRequest(_message.Message):
    __slots__ = ("tenant_id", "primitive", "quantity", "idempotency_key", "occurred_at", "user_id", "organization_id", "project_id", "quantity_decimal")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMITIVE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_DECIMAL_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    primitive: str
    quantity: int
    idempotency_key: str
    occurred_at: _timestamp_pb2.Timestamp
    user_id: str
    organization_id: str
    project_id: str
    quantity_decimal: _decimal_pb2.Decimal
    def __init__(self, tenant_id: _Optional[str] = ..., primitive: _Optional[str] = ..., quantity: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., quantity_decimal: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...

class RecordUsageResponse(_message.Message):
    __slots__ = ("usage_event_id", "standing", "replayed")
    USAGE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STANDING_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    usage_event_id: str
    standing: QuotaStanding
    replayed: bool
    def __init__(self, usage_event_id: _Optional[str] = ..., standing: _Optional[_Union[QuotaStanding, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class RefundUsageRequest(_message.Message):
    __slots__ = ("usage_event_id",)
    USAGE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    usage_event_id: str
    def __init__(self, usage_event_id: _Optional[str] = ...) -> None: ...

class RefundUsageResponse(_message.Message):
    __slots__ = ("refunded", "standing", "usage_event_ids")
    REFUNDED_FIELD_NUMBER: _ClassVar[int]
    STANDING_FIELD_NUMBER: _ClassVar[int]
    USAGE_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    refunded: bool
    standing: QuotaStanding
    usage_event_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, refunded: _Optional[bool] = ..., standing: _Optional[_Union[QuotaStanding, _Mapping]] = ..., usage_event_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("tenant_id", "as_of", "user_id", "organization_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    as_of: _timestamp_pb2.Timestamp
    user_id: str
    organization_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user_id: _Optional[str] = ..., organization_id: _Optional[str] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("plan", "status", "period", "quotas", "usage", "period_start", "period_end", "usage_decimal")
    class QuotasEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class UsageEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class UsageDecimalEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _decimal_pb2.Decimal
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...
    PLAN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    USAGE_DECIMAL_FIELD_NUMBER: _ClassVar[int]
    plan: str
    status: _subscription_pb2.SubscriptionStatus
    period: _plan_pb2.Period
    quotas: _containers.ScalarMap[str, int]
    usage: _containers.ScalarMap[str, int]
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    usage_decimal: _containers.MessageMap[str, _decimal_pb2.Decimal]
    def __init__(self, plan: _Optional[str] = ..., status: _Optional[_Union[_subscription_pb2.SubscriptionStatus, str]] = ..., period: _Optional[_Union[_plan_pb2.Period, str]] = ..., quotas: _Optional[_Mapping[str, int]] = ..., usage: _Optional[_Mapping[str, int]] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage_decimal: _Optional[_Mapping[str, _decimal_pb2.Decimal]] = ...) -> None: ...
