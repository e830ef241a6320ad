"""How messages look in JSON over HTTP: protobuf's own JSON mapping, plus two
generic rules applied by walking the message descriptors (never per RPC).

Output (responses): `json_format.MessageToDict` with the protos' field names
(snake_case, as the billing documents show them) and every field without
presence included, so zeros, empty strings, empty lists
and empty maps appear. Then:

- enum values are lower-case without their type's prefix: PERIOD_MONTH is
  "month", SUBSCRIPTION_STATUS_PAST_DUE is "past_due",
  DENIAL_REASON_QUOTA_EXCEEDED is "quota_exceeded"; the zero value
  `*_UNSPECIFIED` is null;
- 64-bit integers are JSON numbers (protobuf's mapping makes them strings);
- a google.type.Decimal is a JSON number written exactly (`2.5`, not
  `{"value": "2.5"}`), and requests may give it as a number or a string;
- a field with presence that has no value is null when it is a figure (a
  Decimal) or a proto3 `optional` scalar (`"timezone": null`); other
  messages (a Timestamp) are left out, as protobuf's mapping does;
- a field `x` beside a Decimal field `x_decimal` (its older whole-unit or
  text twin) shows the twin's exact figure, or null: one encoding of a
  figure, an exact JSON number, whichever name a client reads.

Well-known types keep protobuf's mapping (a Timestamp is an RFC 3339 string).

Input (request bodies, path and query parameters): `json_format.ParseDict`, so
original (snake_case) and lowerCamelCase field names are both accepted and unknown fields are
refused, and so is `null` (protobuf's mapping would read it as the field's
default; the OpenAPI document allows no null, so a field is given or left
out). Enum values are names: the short form ("month", any case) or in full
("PERIOD_MONTH"); not numbers, which a JSON client would not know. 64-bit
integers may be numbers or strings.
"""

import functools
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, cast

import simplejson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from starlette.responses import JSONResponse

INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


DECIMAL = "google.type.Decimal"
# The suffix of a figure's exact field beside its older twin (`used_decimal`).
EXACT_TWIN_SUFFIX = "_decimal"


class JsonMappingError(ValueError):
    """JSON that cannot become the request message (the client's mistake)."""


class ExactJSONResponse(JSONResponse):
    """JSON with Decimals written as exact numbers (simplejson's use_decimal):
    every answer of the gateway, errors included."""

    def render(self, content: Any) -> bytes:
        return simplejson.dumps(
            content, use_decimal=True, ensure_ascii=False, separators=(",", ":")
        ).encode()


def message_to_json(message: Message) -> dict[str, Any]:
    raw = json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        use_integers_for_enums=True,
        preserving_proto_field_name=True,
    )
    return _present_message(descriptor_of(message), raw)


def merge_json(data: Mapping[str, Any], message: Message) -> None:
    """Merge a JSON object into `message`; a field given here replaces its value."""
    try:
        json_format.ParseDict(_accept_message(descriptor_of(message), data), message)
    except json_format.ParseError as error:
        # The first line says what is wrong; later ones list every field.
        raise JsonMappingError(str(error).split("\n", 1)[0]) from error


def descriptor_of(message: Message) -> Descriptor:
    # The stubs type DESCRIPTOR as a union with upb's class of the same API.
    return cast(Descriptor, message.DESCRIPTOR)


def map_value_field(field: FieldDescriptor) -> FieldDescriptor:
    """The `value` field of a map field's entry."""
    assert field.message_type is not None
    return field.message_type.fields_by_name["value"]


def enum_of(field: FieldDescriptor) -> EnumDescriptor:
    assert field.enum_type is not None
    return field.enum_type


def is_repeated(field: FieldDescriptor) -> bool:
    # protobuf 7 drops `label` for `is_repeated`; 5.x has only `label`.
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)  # type: ignore[attr-defined]


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def is_well_known(message: Descriptor) -> bool:
    """Types whose JSON form protobuf defines specially (Timestamp, Duration...)."""
    return message.file.name.startswith("google/protobuf/")


@functools.cache
def enum_prefix(enum: EnumDescriptor) -> str:
    """`SubscriptionStatus` -> `SUBSCRIPTION_STATUS_`, the prefix of its values."""
    snake = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", enum.name)
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", snake)
    return snake.upper() + "_"


def enum_short_name(enum: EnumDescriptor, number: int) -> str | None:
    """The shown name of an enum value; None for the *_UNSPECIFIED zero value."""
    value = enum.values_by_number.get(number)
    if value is None:
        # A value newer than these descriptors: no name to show.
        return str(number)
    if number == 0 and value.name.endswith("_UNSPECIFIED"):
        return None
    prefix = enum_prefix(enum)
    name = value.name[len(prefix) :] if value.name.startswith(prefix) else value.name
    return name.lower()


def enum_short_names(enum: EnumDescriptor) -> list[str]:
    """Every shown name of the enum, in declaration order, without the null one."""
    names = [enum_short_name(enum, value.number) for value in enum.values]
    return [name for name in names if name is not None]


def _present_message(message: Descriptor, raw: dict[str, Any]) -> dict[str, Any]:
    for field in message.fields:
        if field.name in raw:
            raw[field.name] = _present_field(field, raw[field.name])
        elif shows_null_when_unset(field):
            raw[field.name] = None
    for field, twin in exact_twins(message):
        raw[field.name] = raw.get(twin.name)
    return raw


def shows_null_when_unset(field: FieldDescriptor) -> bool:
    """A field printed as null when it has no value: a figure (Decimal) or a
    proto3 `optional` scalar."""
    if is_repeated(field) or not field.has_presence:
        return False
    return field.message_type is None or is_decimal(field)


@functools.cache
def exact_twins(message: Descriptor) -> tuple[tuple[FieldDescriptor, FieldDescriptor], ...]:
    """(field, its exact Decimal twin) of each field `x` beside `x_decimal` of
    the same shape (both maps or both single), the field not a Decimal."""
    twins = []
    for field in message.fields:
        twin = message.fields_by_name.get(field.name + EXACT_TWIN_SUFFIX)
        if twin is None or is_map(field) != is_map(twin) or is_repeated(field) != is_repeated(twin):
            continue
        exact = map_value_field(twin) if is_map(twin) else twin
        shown = map_value_field(field) if is_map(field) else field
        if is_decimal(exact) and not is_decimal(shown):
            twins.append((field, twin))
    return tuple(twins)


def _present_field(field: FieldDescriptor, raw: Any) -> Any:
    if is_map(field):
        value_field = map_value_field(field)
        return {key: _present_value(value_field, item) for key, item in raw.items()}
    if is_repeated(field):
        return [_present_value(field, item) for item in raw]
    return _present_value(field, raw)


def is_decimal(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.full_name == DECIMAL


def _present_value(field: FieldDescriptor, raw: Any) -> Any:
    if is_decimal(field):
        return Decimal(raw.get("value") or "0")
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_short_name(enum_of(field), raw) if isinstance(raw, int) else raw
    if field.type in INT64_TYPES:
        return int(raw)
    if field.message_type is not None and not is_well_known(field.message_type):
        return _present_message(field.message_type, raw)
    return raw


@functools.cache
def _fields_by_any_name(message: Descriptor) -> dict[str, FieldDescriptor]:
    fields = {field.name: field for field in message.fields}
    fields.update({field.json_name: field for field in message.fields})
    return fields


def _accept_message(message: Descriptor, data: Any) -> Any:
    if is_well_known(message):
        return data
    if not isinstance(data, Mapping):
        raise JsonMappingError(f"expected a JSON object for {message.name}")
    accepted = dict(data)
    fields = _fields_by_any_name(message)
    for name, value in data.items():
        field = fields.get(name)
        if field is None:
            continue  # ParseDict names the unknown field
        if value is None:
            raise JsonMappingError(f"{field.name}: must not be null; leave the field out")
        accepted[name] = _accept_field(field, value)
    return accepted


def _accept_field(field: FieldDescriptor, raw: Any) -> Any:
    if is_map(field):
        if not isinstance(raw, Mapping):
            return raw
        value_field = map_value_field(field)
        return {key: _accept_value(value_field, item) for key, item in raw.items()}
    if is_repeated(field):
        if not isinstance(raw, list):
            return raw
        return [_accept_value(field, item) for item in raw]
    return _accept_value(field, raw)


def _accept_value(field: FieldDescriptor, raw: Any) -> Any:
    if is_decimal(field):
        if isinstance(raw, bool) or not isinstance(raw, Decimal | int | str):
            raise JsonMappingError(f"{field.name}: must be a decimal number")
        return {"value": format(raw, "f") if isinstance(raw, Decimal) else str(raw)}
    if isinstance(raw, Decimal):  # JSON bodies are read with exact decimals
        raw = float(raw)
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum = enum_of(field)
        if not isinstance(raw, str):
            names = ", ".join(enum_short_names(enum))
            raise JsonMappingError(f"{field.name}: must be a name, one of {names}")
        for candidate in (raw.upper(), enum_prefix(enum) + raw.upper()):
            if candidate in enum.values_by_name:
                return candidate
        return raw
    if field.message_type is not None and not is_well_known(field.message_type):
        return _accept_message(field.message_type, raw)
    return raw
