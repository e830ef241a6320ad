"""The one rule every text of every request follows: no control characters
(C0, DEL, C1; domain/validation.py's CONTROL_RE), passwords included.

The guard applies it to each request before anything else reads it, so that
no servicer can forget a field: PostgreSQL cannot store NUL at all (its
driver's error would be an INTERNAL), and no name, id, address or password
needs a control character. The walk follows the request's descriptor: a
plan per message type, made once, lists the fields that can hold text. The
strings reached through singular fields (all of a metered call's) are read
in one attrgetter call and searched joined, once; lists, maps and repeated
messages are walked one by one (bench/text_rule.py measures the cost).
"""

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from ..domain.errors import InvalidArgument
from ..domain.validation import CONTROL_RE
from ..gateway.jsonmap import is_repeated

_REFUSAL = "must not contain control characters"


@dataclass(frozen=True, slots=True)
class _Plan:
    """The fields of one message type that can hold text."""

    # Every string field reached through singular fields, dotted
    # ("quantity_decimal.value"), read in one call: an unset message reads
    # as its defaults, so no presence test is needed.
    texts: tuple[str, ...]
    read_texts: Callable[[Any], Any] | None
    # The rest, looked at one by one (rare on the metered calls).
    repeated_strings: tuple[str, ...]
    # name, whether the keys are text, whether the values are, the plan of
    # message values (None: they hold no text).
    maps: tuple[tuple[str, bool, bool, "_Plan | None"], ...]
    repeated_messages: tuple[tuple[str, "_Plan"], ...]
    # Singular messages that hold any of the rest.
    messages: tuple[tuple[str, "_Plan"], ...]

    @property
    def has_lists(self) -> bool:
        return bool(self.repeated_strings or self.maps or self.repeated_messages or self.messages)

    @property
    def empty(self) -> bool:
        return not (self.texts or self.has_lists)


def refuse_control_characters(message: Message) -> None:
    """Raise InvalidArgument naming the first field of `message` (at any
    depth) whose text holds a control character."""
    _check(message, _plan_of(message.DESCRIPTOR), "")


def _check(message: Any, plan: _Plan, prefix: str) -> None:
    if plan.read_texts is not None:
        texts = plan.read_texts(message)
        joined = texts if len(plan.texts) == 1 else "".join(texts)
        if CONTROL_RE.search(joined):
            _name_the_text(message, plan, prefix)
    if plan.has_lists:
        _check_lists(message, plan, prefix)


def _name_the_text(message: Any, plan: _Plan, prefix: str) -> None:
    for path in plan.texts:
        if CONTROL_RE.search(operator.attrgetter(path)(message)):
            raise InvalidArgument(prefix + path, _REFUSAL)


def _check_lists(message: Any, plan: _Plan, prefix: str) -> None:
    for name in plan.repeated_strings:
        # Named as domain/validation.py names a list: by the field.
        if any(CONTROL_RE.search(text) for text in getattr(message, name)):
            raise InvalidArgument(prefix + name, f"entries {_REFUSAL}")
    for name, text_keys, text_values, values_plan in plan.maps:
        _check_map(getattr(message, name), prefix + name, text_keys, text_values, values_plan)
    for name, inner in plan.repeated_messages:
        for index, item in enumerate(getattr(message, name)):
            _check(item, inner, f"{prefix}{name}[{index}].")
    for name, inner in plan.messages:
        if message.HasField(name):
            _check_lists(getattr(message, name), inner, f"{prefix}{name}.")


def _check_map(
    entries: Any, field: str, text_keys: bool, text_values: bool, values_plan: _Plan | None
) -> None:
    if text_keys and CONTROL_RE.search("".join(entries)):
        # The key itself is not shown: it is the bad text.
        raise InvalidArgument(field, f"keys {_REFUSAL}")
    if text_values:
        for key, value in entries.items():
            if CONTROL_RE.search(value):
                raise InvalidArgument(f"{field}[{key}]", _REFUSAL)
    elif values_plan is not None:
        for key, value in entries.items():
            _check(value, values_plan, f"{field}[{key}].")


def _is_string(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_STRING


@functools.cache
def _plan_of(message: Descriptor) -> _Plan:
    texts: list[str] = []
    repeated_strings: list[str] = []
    maps: list[tuple[str, bool, bool, _Plan | None]] = []
    repeated_messages: list[tuple[str, _Plan]] = []
    messages: list[tuple[str, _Plan]] = []
    for field in message.fields:
        inner = field.message_type
        if inner is not None and inner.GetOptions().map_entry:
            key, value = inner.fields_by_name["key"], inner.fields_by_name["value"]
            values_plan = None
            if value.message_type is not None:
                values_plan = _plan_of(value.message_type)
                values_plan = None if values_plan.empty else values_plan
            if _is_string(key) or _is_string(value) or values_plan is not None:
                maps.append((field.name, _is_string(key), _is_string(value), values_plan))
        elif inner is not None:
            # The API's messages nest without cycles (a cycle would recurse here).
            plan = _plan_of(inner)
            if is_repeated(field):
                if not plan.empty:
                    repeated_messages.append((field.name, plan))
                continue
            texts.extend(f"{field.name}.{path}" for path in plan.texts)
            if plan.has_lists:
                messages.append((field.name, plan))
        elif _is_string(field):
            (repeated_strings if is_repeated(field) else texts).append(field.name)
    return _Plan(
        tuple(texts),
        operator.attrgetter(*texts) if texts else None,
        tuple(repeated_strings),
        tuple(maps),
        tuple(repeated_messages),
        tuple(messages),
    )
