"""The comments of the billing.v1 protos, by full name, for the OpenAPI document.

The _pb2 modules carry no comments (protoc leaves source info out of them), so
`make generate` also writes billing.v1's descriptor set with source info
(generated/billing/v1/billing.binpb, checked for staleness with the stubs);
this module reads the leading comment of each service, method, message,
field, enum and enum value from it.
"""

import textwrap
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2

DESCRIPTOR_SET = "billing.binpb"

# Field numbers of descriptor.proto, which source locations' paths are made of.
_FILE_MESSAGES, _FILE_ENUMS, _FILE_SERVICES = 4, 5, 6
_MESSAGE_FIELDS, _MESSAGE_NESTED, _MESSAGE_ENUMS = 2, 3, 4
_ENUM_VALUES = 2
_SERVICE_METHODS = 2

_Path = tuple[int, ...]


@cache
def proto_comments() -> dict[str, str]:
    """The leading comment of every documented element, by full name (an enum
    value's name is its enum's full name, a dot and the value's name)."""
    data = resources.files("billing.v1").joinpath(DESCRIPTOR_SET).read_bytes()
    found: dict[str, str] = {}
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        comments = {
            tuple(location.path): _clean(location.leading_comments)
            for location in file.source_code_info.location
            if location.leading_comments.strip()
        }
        for path, name in _names(file):
            if path in comments:
                found[name] = comments[path]
    return found


def _names(file: descriptor_pb2.FileDescriptorProto) -> Iterable[tuple[_Path, str]]:
    package = file.package
    for i, message in enumerate(file.message_type):
        yield from _message_names((_FILE_MESSAGES, i), f"{package}.{message.name}", message)
    for i, enum in enumerate(file.enum_type):
        yield from _enum_names((_FILE_ENUMS, i), f"{package}.{enum.name}", enum)
    for i, service in enumerate(file.service):
        name = f"{package}.{service.name}"
        yield (_FILE_SERVICES, i), name
        yield from _members((_FILE_SERVICES, i), name, _SERVICE_METHODS, service.method)


def _message_names(
    path: _Path, name: str, message: descriptor_pb2.DescriptorProto
) -> Iterable[tuple[_Path, str]]:
    yield path, name
    yield from _members(path, name, _MESSAGE_FIELDS, message.field)
    for i, nested in enumerate(message.nested_type):
        yield from _message_names((*path, _MESSAGE_NESTED, i), f"{name}.{nested.name}", nested)
    for i, enum in enumerate(message.enum_type):
        yield from _enum_names((*path, _MESSAGE_ENUMS, i), f"{name}.{enum.name}", enum)


def _enum_names(
    path: _Path, name: str, enum: descriptor_pb2.EnumDescriptorProto
) -> Iterable[tuple[_Path, str]]:
    yield path, name
    yield from _members(path, name, _ENUM_VALUES, enum.value)


def _members(
    path: _Path, name: str, number: int, members: Iterable[Any]
) -> Iterable[tuple[_Path, str]]:
    """The fields, values or methods listed under field `number` of the element at `path`."""
    for i, member in enumerate(members):
        yield (*path, number, i), f"{name}.{member.name}"


def _clean(comment: str) -> str:
    # "// text" leaves " text" on every line; the line breaks stay (Markdown
    # joins them), and so do blank lines between paragraphs.
    return textwrap.dedent(comment).strip()
