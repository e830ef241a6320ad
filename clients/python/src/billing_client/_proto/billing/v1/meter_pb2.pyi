import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Aggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_UNSPECIFIED: _ClassVar[Aggregation]
    AGGREGATION_SUM: _ClassVar[Aggregation]
    AGGREGATION_MAX: _ClassVar[Aggregation]
    AGGREGATION_LAST: _ClassVar[Aggregation]
AGGREGATION_UNSPECIFIED: Aggregation
AGGREGATION_SUM: Aggregation
AGGREGATION_MAX: Aggregation
AGGREGATION_LAST: Aggregation

class Meter(_message.Message):
    __slots__ = ("key", "display_name", "unit", "aggregation", "scale", "built_in", "create_time", "update_time", "stripe_event_name")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    BUILT_IN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STRIPE_EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    key: str
    display_name: str
    unit: str
    aggregation: Aggregation
    scale: int
    built_in: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    stripe_event_name: str
    def __init__(self, key: _Optional[str] = ..., display_name: _Optional[str] = ..., unit: _Optional[str] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., scale: _Optional[int] = ..., built_in: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stripe_event_name: _Optional[str] = ...) -> None: ...

class UpsertMeterRequest(_message.Message):
    __slots__ = ("key", "display_name", "unit", "aggregation", "scale", "stripe_event_name")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    STRIPE_EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    key: str
    display_name: str
    unit: str
    aggregation: Aggregation
    scale: int
    stripe_event_name: str
    def __init__(self, key: _Optional[str] = ..., display_name: _Optional[str] = ..., unit: _Optional[str] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., scale: _Optional[int] = ..., stripe_event_name: _Optional[str] = ...) -> None: ...

class UpsertMeterResponse(_message.Message):
    __slots__ = ("meter", "created")
    METER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    meter: Meter
    created: bool
    def __init__(self, meter: _Optional[_Union[Meter, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetMeterRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class GetMeterResponse(_message.Message):
    __slots__ = ("meter",)
    METER_FIELD_NUMBER: _ClassVar[int]
    meter: Meter
    def __init__(self, meter: _Optional[_Union[Meter, _Mapping]] = ...) -> None: ...

class ListMetersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMetersResponse(_message.Message):
    __slots__ = ("meters",)
    METERS_FIELD_NUMBER: _ClassVar[int]
    meters: _containers.RepeatedCompositeFieldContainer[Meter]
    def __init__(self, meters: _Optional[_Iterable[_Union[Meter, _Mapping]]] = ...) -> None: ...
