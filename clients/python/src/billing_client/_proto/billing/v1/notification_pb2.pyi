import datetime

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

class PushPlatform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUSH_PLATFORM_UNSPECIFIED: _ClassVar[PushPlatform]
    PUSH_PLATFORM_EXPO: _ClassVar[PushPlatform]
    PUSH_PLATFORM_FCM: _ClassVar[PushPlatform]
    PUSH_PLATFORM_APNS: _ClassVar[PushPlatform]
PUSH_PLATFORM_UNSPECIFIED: PushPlatform
PUSH_PLATFORM_EXPO: PushPlatform
PUSH_PLATFORM_FCM: PushPlatform
PUSH_PLATFORM_APNS: PushPlatform

class RegisterTokenRequest(_message.Message):
    __slots__ = ("token", "platform", "device_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    platform: PushPlatform
    device_id: str
    def __init__(self, token: _Optional[str] = ..., platform: _Optional[_Union[PushPlatform, str]] = ..., device_id: _Optional[str] = ...) -> None: ...

class RegisterTokenResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UnregisterTokenRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class UnregisterTokenResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Notification(_message.Message):
    __slots__ = ("id", "title", "body", "created_at", "read_at", "alert")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    READ_AT_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    body: str
    created_at: _timestamp_pb2.Timestamp
    read_at: _timestamp_pb2.Timestamp
    alert: UsageAlert
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., read_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., alert: _Optional[_Union[UsageAlert, _Mapping]] = ...) -> None: ...

class ListNotificationsRequest(_message.Message):
    __slots__ = ("limit", "unread_only")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    UNREAD_ONLY_FIELD_NUMBER: _ClassVar[int]
    limit: int
    unread_only: bool
    def __init__(self, limit: _Optional[int] = ..., unread_only: _Optional[bool] = ...) -> None: ...

class ListNotificationsResponse(_message.Message):
    __slots__ = ("notifications",)
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    notifications: _containers.RepeatedCompositeFieldContainer[Notification]
    def __init__(self, notifications: _Optional[_Iterable[_Union[Notification, _Mapping]]] = ...) -> None: ...

class MarkNotificationReadRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class MarkNotificationReadResponse(_message.Message):
    __slots__ = ("notification",)
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    notification: Notification
    def __init__(self, notification: _Optional[_Union[Notification, _Mapping]] = ...) -> None: ...

class UsageAlert(_message.Message):
    __slots__ = ("id", "user_id", "organization_id", "primitive", "threshold_percent", "used", "limit", "period_start", "period_end", "created_at", "used_decimal", "limit_decimal")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMITIVE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_PERCENT_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    USED_DECIMAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_DECIMAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    organization_id: str
    primitive: str
    threshold_percent: int
    used: str
    limit: str
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    used_decimal: _decimal_pb2.Decimal
    limit_decimal: _decimal_pb2.Decimal
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., primitive: _Optional[str] = ..., threshold_percent: _Optional[int] = ..., used: _Optional[str] = ..., limit: _Optional[str] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., used_decimal: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., limit_decimal: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ...) -> None: ...

class SetAlertWebhookRequest(_message.Message):
    __slots__ = ("url",)
    URL_FIELD_NUMBER: _ClassVar[int]
    url: str
    def __init__(self, url: _Optional[str] = ...) -> None: ...

class SetAlertWebhookResponse(_message.Message):
    __slots__ = ("signing_secret",)
    SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    signing_secret: str
    def __init__(self, signing_secret: _Optional[str] = ...) -> None: ...

class ListUsageAlertsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListUsageAlertsResponse(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[UsageAlert]
    def __init__(self, alerts: _Optional[_Iterable[_Union[UsageAlert, _Mapping]]] = ...) -> None: ...
