import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import decimal_pb2 as _decimal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordAiUsageRequest(_message.Message):
    __slots__ = ("project_id", "input_tokens", "output_tokens", "reasoning_tokens", "cost_cents", "provider_model", "idempotency_key", "occurred_at")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_CENTS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MODEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_cents: _decimal_pb2.Decimal
    provider_model: str
    idempotency_key: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, project_id: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., cost_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., provider_model: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordAiUsageResponse(_message.Message):
    __slots__ = ("usage_event_id", "ai_tokens", "ai_cost_cents", "replayed", "usage_event_ids")
    USAGE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    AI_TOKENS_FIELD_NUMBER: _ClassVar[int]
    AI_COST_CENTS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    USAGE_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    usage_event_id: str
    ai_tokens: int
    ai_cost_cents: _decimal_pb2.Decimal
    replayed: bool
    usage_event_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, usage_event_id: _Optional[str] = ..., ai_tokens: _Optional[int] = ..., ai_cost_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., replayed: _Optional[bool] = ..., usage_event_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LineItem(_message.Message):
    __slots__ = ("name", "meter", "quantity", "unit", "unit_price", "included", "total_cost")
    NAME_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    name: str
    meter: str
    quantity: _decimal_pb2.Decimal
    unit: str
    unit_price: _decimal_pb2.Decimal
    included: _decimal_pb2.Decimal
    total_cost: _decimal_pb2.Decimal
    def __init__(self, name: _Optional[str] = ..., meter: _Optional[str] = ..., quantity: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., unit: _Optional[str] = ..., unit_price: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., included: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., total_cost: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...

class UsageFigures(_message.Message):
    __slots__ = ("sandbox_compute_hours", "database_compute_hours", "database_storage_gb", "storage_gb", "ai_tokens", "ai_cost_cents", "deployment_compute_hours", "meters")
    class MetersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _decimal_pb2.Decimal
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...
    SANDBOX_COMPUTE_HOURS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_COMPUTE_HOURS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_STORAGE_GB_FIELD_NUMBER: _ClassVar[int]
    STORAGE_GB_FIELD_NUMBER: _ClassVar[int]
    AI_TOKENS_FIELD_NUMBER: _ClassVar[int]
    AI_COST_CENTS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_COMPUTE_HOURS_FIELD_NUMBER: _ClassVar[int]
    METERS_FIELD_NUMBER: _ClassVar[int]
    sandbox_compute_hours: _decimal_pb2.Decimal
    database_compute_hours: _decimal_pb2.Decimal
    database_storage_gb: _decimal_pb2.Decimal
    storage_gb: _decimal_pb2.Decimal
    ai_tokens: _decimal_pb2.Decimal
    ai_cost_cents: _decimal_pb2.Decimal
    deployment_compute_hours: _decimal_pb2.Decimal
    meters: _containers.MessageMap[str, _decimal_pb2.Decimal]
    def __init__(self, sandbox_compute_hours: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., database_compute_hours: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., database_storage_gb: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., storage_gb: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., ai_tokens: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., ai_cost_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., deployment_compute_hours: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., meters: _Optional[_Mapping[str, _decimal_pb2.Decimal]] = ...) -> None: ...

class GetUsageSummaryRequest(_message.Message):
    __slots__ = ("user_id", "organization_id", "year", "month")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    year: int
    month: int
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., year: _Optional[int] = ..., month: _Optional[int] = ...) -> None: ...

class GetUsageSummaryResponse(_message.Message):
    __slots__ = ("year", "month", "label", "usage", "line_items", "currency", "total_cost_cents", "credits_applied_cents", "amount_due_cents", "sandbox_compute_hours", "database_compute_hours", "database_storage_gb", "storage_gb", "ai_tokens", "ai_cost_cents", "deployment_compute_hours")
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    LINE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_CENTS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_APPLIED_CENTS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_CENTS_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_COMPUTE_HOURS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_COMPUTE_HOURS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_STORAGE_GB_FIELD_NUMBER: _ClassVar[int]
    STORAGE_GB_FIELD_NUMBER: _ClassVar[int]
    AI_TOKENS_FIELD_NUMBER: _ClassVar[int]
    AI_COST_CENTS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_COMPUTE_HOURS_FIELD_NUMBER: _ClassVar[int]
    year: int
    month: int
    label: str
    usage: UsageFigures
    line_items: _containers.RepeatedCompositeFieldContainer[LineItem]
    currency: str
    total_cost_cents: _decimal_pb2.Decimal
    credits_applied_cents: _decimal_pb2.Decimal
    amount_due_cents: _decimal_pb2.Decimal
    sandbox_compute_hours: _decimal_pb2.Decimal
    database_compute_hours: _decimal_pb2.Decimal
    database_storage_gb: _decimal_pb2.Decimal
    storage_gb: _decimal_pb2.Decimal
    ai_tokens: _decimal_pb2.Decimal
    ai_cost_cents: _decimal_pb2.Decimal
    deployment_compute_hours: _decimal_pb2.Decimal
    def __init__(self, year: _Optional[int] = ..., month: _Optional[int] = ..., label: _Optional[str] = ..., usage: _Optional[_Union[UsageFigures, _Mapping]] = ..., line_items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ..., currency: _Optional[str] = ..., total_cost_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., credits_applied_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., amount_due_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., sandbox_compute_hours: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., database_compute_hours: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., database_storage_gb: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., storage_gb: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., ai_tokens: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., ai_cost_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., deployment_compute_hours: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...

class GetUsageByProjectRequest(_message.Message):
    __slots__ = ("user_id", "organization_id", "year", "month")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    year: int
    month: int
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., year: _Optional[int] = ..., month: _Optional[int] = ...) -> None: ...

class ProjectUsage(_message.Message):
    __slots__ = ("project_id", "project_name", "usage", "sandbox_compute_hours", "database_compute_hours", "database_storage_gb", "storage_gb", "ai_tokens", "ai_cost_cents", "deployment_compute_hours")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_COMPUTE_HOURS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_COMPUTE_HOURS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_STORAGE_GB_FIELD_NUMBER: _ClassVar[int]
    STORAGE_GB_FIELD_NUMBER: _ClassVar[int]
    AI_TOKENS_FIELD_NUMBER: _ClassVar[int]
    AI_COST_CENTS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_COMPUTE_HOURS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    project_name: str
    usage: UsageFigures
    sandbox_compute_hours: _decimal_pb2.Decimal
    database_compute_hours: _decimal_pb2.Decimal
    database_storage_gb: _decimal_pb2.Decimal
    storage_gb: _decimal_pb2.Decimal
    ai_tokens: _decimal_pb2.Decimal
    ai_cost_cents: _decimal_pb2.Decimal
    deployment_compute_hours: _decimal_pb2.Decimal
    def __init__(self, project_id: _Optional[str] = ..., project_name: _Optional[str] = ..., usage: _Optional[_Union[UsageFigures, _Mapping]] = ..., sandbox_compute_hours: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., database_compute_hours: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., database_storage_gb: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., storage_gb: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., ai_tokens: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., ai_cost_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., deployment_compute_hours: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...

class GetUsageByProjectResponse(_message.Message):
    __slots__ = ("projects",)
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[ProjectUsage]
    def __init__(self, projects: _Optional[_Iterable[_Union[ProjectUsage, _Mapping]]] = ...) -> None: ...

class GetProjectUsageRequest(_message.Message):
    __slots__ = ("project_id", "from_date", "to_date")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    from_date: str
    to_date: str
    def __init__(self, project_id: _Optional[str] = ..., from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class ProjectUsageItem(_message.Message):
    __slots__ = ("item", "meter", "units", "unit_type")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    UNIT_TYPE_FIELD_NUMBER: _ClassVar[int]
    item: str
    meter: str
    units: _decimal_pb2.Decimal
    unit_type: str
    def __init__(self, item: _Optional[str] = ..., meter: _Optional[str] = ..., units: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., unit_type: _Optional[str] = ...) -> None: ...

class GetProjectUsageResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ProjectUsageItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ProjectUsageItem, _Mapping]]] = ...) -> None: ...

class GetBillingPeriodsRequest(_message.Message):
    __slots__ = ("user_id", "organization_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ...) -> None: ...

class BillingPeriod(_message.Message):
    __slots__ = ("label", "year", "month", "total_cost_cents", "amount_due_cents")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_CENTS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_CENTS_FIELD_NUMBER: _ClassVar[int]
    label: str
    year: int
    month: int
    total_cost_cents: _decimal_pb2.Decimal
    amount_due_cents: _decimal_pb2.Decimal
    def __init__(self, label: _Optional[str] = ..., year: _Optional[int] = ..., month: _Optional[int] = ..., total_cost_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., amount_due_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...

class GetBillingPeriodsResponse(_message.Message):
    __slots__ = ("periods",)
    PERIODS_FIELD_NUMBER: _ClassVar[int]
    periods: _containers.RepeatedCompositeFieldContainer[BillingPeriod]
    def __init__(self, periods: _Optional[_Iterable[_Union[BillingPeriod, _Mapping]]] = ...) -> None: ...

class CreditGrant(_message.Message):
    __slots__ = ("grant_id", "amount_cents", "remaining_cents", "reason", "grant_time", "expire_time")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    REMAINING_CENTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    GRANT_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    amount_cents: _decimal_pb2.Decimal
    remaining_cents: _decimal_pb2.Decimal
    reason: str
    grant_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, grant_id: _Optional[str] = ..., amount_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., remaining_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., reason: _Optional[str] = ..., grant_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GrantCreditsRequest(_message.Message):
    __slots__ = ("user_id", "organization_id", "amount_cents", "expire_time", "reason", "idempotency_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    amount_cents: _decimal_pb2.Decimal
    expire_time: _timestamp_pb2.Timestamp
    reason: str
    idempotency_key: str
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., amount_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GrantCreditsResponse(_message.Message):
    __slots__ = ("grant", "replayed")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    grant: CreditGrant
    replayed: bool
    def __init__(self, grant: _Optional[_Union[CreditGrant, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetCreditBalanceRequest(_message.Message):
    __slots__ = ("user_id", "organization_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    organization_id: str
    def __init__(self, user_id: _Optional[str] = ..., organization_id: _Optional[str] = ...) -> None: ...

class GetCreditBalanceResponse(_message.Message):
    __slots__ = ("balance_cents", "grants")
    BALANCE_CENTS_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    balance_cents: _decimal_pb2.Decimal
    grants: _containers.RepeatedCompositeFieldContainer[CreditGrant]
    def __init__(self, balance_cents: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., grants: _Optional[_Iterable[_Union[CreditGrant, _Mapping]]] = ...) -> None: ...
