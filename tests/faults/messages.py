"""Hypothesis strategies for any protobuf message, built from its descriptor:
every field set or not, strings of any characters protobuf can carry,
integers at and past their edges, unknown enum numbers, nested messages."""

from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

F = FieldDescriptor
_INTS = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
# Text protobuf accepts: any code point but lone surrogates.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=300) | st.sampled_from(
    ["", " ", "a", "0", "-1", "1e9", "x" * 300, "\x00", "../etc", "%00", "*", "seo", "t"]
)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(
            cls,
            seconds=st.integers(-62_135_596_800, 253_402_300_799),
            nanos=st.integers(0, 999_999_999),
        )
    fields = {
        field.name: _field(field, depth)
        for field in descriptor.fields
        if field.message_type is None or depth < 3
    }
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(cls, values))


def _build(cls: Any, values: dict[str, Any]) -> Message:
    message: Message = cls()
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        if _is_map(field):
            entry = cast(Descriptor, field.message_type)
            if entry.fields_by_name["value"].message_type is None:
                getattr(message, name).update(value)
            else:
                for key, item in value.items():
                    getattr(message, name)[key].CopyFrom(item)
        elif field.is_repeated:
            if field.message_type is not None:
                getattr(message, name).extend(value)
            else:
                getattr(message, name)[:] = value
        elif field.message_type is not None:
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def _is_map(field: Any) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if _is_map(field):
        entry = cast(Descriptor, field.message_type)
        key = _scalar(entry.fields_by_name["key"], depth)
        value = _scalar(entry.fields_by_name["value"], depth)
        return st.dictionaries(key, value, max_size=4)
    single = _scalar(field, depth)
    if field.is_repeated:
        return st.lists(single, max_size=4)
    return single


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return messages(field.message_type, depth + 1)
    if field.type in _INTS:
        low, high = _INTS[field.type]
        return st.integers(low, high) | st.sampled_from([low, high, 0, 1, -1 if low else 2])
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(width=32 if field.type == F.TYPE_FLOAT else 64)
    if field.type == F.TYPE_ENUM:
        numbers = [v.number for v in cast(Any, field.enum_type).values]
        return st.sampled_from(numbers) | st.integers(-5, 1000)
    if field.type == F.TYPE_BYTES:
        return st.binary(max_size=64)
    return TEXT
