"""The route table, read from the `google.api.http` annotations of the
billing.v1 services at start-up: a new annotated RPC is served with no gateway
code.

Following google/api/http.proto: variables of the path template fill request
fields; the body is the whole request ("*"), one field of it, or nothing; the
fields bound by neither may be given as query parameters, by their camelCase
or original names, or by an alias of QUERY_ALIASES (the billing documents'
own names, as `from` and `to`). Supported template variables are `{field}`,
`{field=*}` (one segment) and `{field=**}` (the rest of the path), with
`field` a possibly dotted path to a scalar field; anything else is refused at
start-up.

As in that grammar, the last ':' of a path starts its verb: a one-segment
variable ending a template takes no ':', so `GET /v1/plans/x:archive` is the
verb route's 405, not the plan `x:archive`.
"""

import importlib
import pkgutil
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType

from google.api import annotations_pb2, http_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    FileDescriptor,
    MethodDescriptor,
)
from google.protobuf.message import Message
from starlette.convertors import Convertor, register_url_convertor

from .jsonmap import DECIMAL, is_map, is_repeated, is_well_known

SEGMENT = "segment"
# A request names its owner by one of these (domain/validation.py, owner).
OWNER_FIELDS = frozenset({"tenant_id", "user_id", "organization_id"})
# Query parameters the billing documents name otherwise than the field
# (`getProjectUsage('proj_123', {from, to})`), by the field's full name.
# `from` cannot be a proto field: it is a keyword in Python and others.
QUERY_ALIASES: dict[str, tuple[str, ...]] = {
    "billing.v1.GetProjectUsageRequest.from_date": ("from",),
    "billing.v1.GetProjectUsageRequest.to_date": ("to",),
}


class _SegmentBeforeVerb(Convertor[str]):
    """One path segment without ':' (which would start a verb)."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor(SEGMENT, _SegmentBeforeVerb())

API_PACKAGE = "billing.v1"

_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?:=([^}]*))?\}")
# Well-known types whose JSON form is a single string or scalar, so that they
# can be given as one path or query value.
_SCALAR_WELL_KNOWN = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    }
)


class UnsupportedAnnotation(ValueError):
    """An annotation this gateway cannot serve; raised at start-up, not per request."""


@dataclass(frozen=True)
class PathVariable:
    field_path: tuple[FieldDescriptor, ...]
    # The name Starlette matches it under (dots are not allowed there).
    param: str
    # Matches the rest of the path, slashes included (`{field=**}`).
    multi_segment: bool

    @property
    def name(self) -> str:
        return ".".join(field.name for field in self.field_path)


@dataclass(frozen=True)
class Binding:
    """One HTTP route of one RPC."""

    method: MethodDescriptor
    http_method: str
    # The template as annotated, e.g. "/v1/plans/{key}:archive".
    template: str
    path_variables: tuple[PathVariable, ...]
    # "" (no body), "*" (the whole request) or the name of one request field.
    body: str
    query_fields: tuple[FieldDescriptor, ...]
    # (alias, field) of the query fields' other names (QUERY_ALIASES).
    query_aliases: tuple[tuple[str, FieldDescriptor], ...]
    # Fields the path gives, and the other owner fields when it names the
    # owner: not query parameters, not documented in the body (where the
    # path's value wins, and another owner is refused as any second owner).
    taken: frozenset[str]
    # The template in Starlette's syntax, e.g. "/v1/plans/{key}:archive".
    starlette_path: str

    @property
    def grpc_path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.input_type)

    @property
    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.output_type)


def api_files(package: str = API_PACKAGE) -> list[FileDescriptor]:
    """The file descriptors of every generated `*_pb2` module of the package."""
    root = importlib.import_module(package)
    modules: list[ModuleType] = [
        importlib.import_module(f"{package}.{info.name}")
        for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda info: info.name)
        if info.name.endswith("_pb2")
    ]
    return [module.DESCRIPTOR for module in modules]


def load_bindings(files: Iterable[FileDescriptor]) -> list[Binding]:
    """Every HTTP binding of every unary RPC in the files, in declaration order."""
    bindings: list[Binding] = []
    for file in files:
        for service in file.services_by_name.values():
            for method in service.methods:
                bindings.extend(_method_bindings(method))
    _refuse_duplicates(bindings)
    return bindings


def _method_bindings(method: MethodDescriptor) -> Iterator[Binding]:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return
    if method.client_streaming or method.server_streaming:
        raise UnsupportedAnnotation(f"{method.full_name}: streaming RPCs have no HTTP route")
    rule = options.Extensions[annotations_pb2.http]
    for each in (rule, *rule.additional_bindings):
        yield _binding(method, each)


def _binding(method: MethodDescriptor, rule: http_pb2.HttpRule) -> Binding:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise UnsupportedAnnotation(f"{method.full_name}: google.api.http without a path")
    if pattern == "custom":
        http_method, template = rule.custom.kind.upper(), rule.custom.path
    else:
        http_method, template = pattern.upper(), getattr(rule, pattern)
    if not template.startswith("/"):
        raise UnsupportedAnnotation(f"{method.full_name}: path '{template}' must start with /")
    if rule.response_body:
        raise UnsupportedAnnotation(f"{method.full_name}: response_body is not supported")

    request = method.input_type
    variables = tuple(
        _path_variable(method, request, match) for match in _VARIABLE.finditer(template)
    )
    by_name = {variable.name: variable for variable in variables}

    def starlette_variable(match: re.Match[str]) -> str:
        variable = by_name[match.group(1)]
        if variable.multi_segment:
            return f"{{{variable.param}:path}}"
        ends_path = match.end() == len(template)
        return f"{{{variable.param}:{SEGMENT}}}" if ends_path else f"{{{variable.param}}}"

    bound = {variable.field_path[0].name for variable in variables}
    if bound & OWNER_FIELDS:
        bound |= OWNER_FIELDS
    taken = frozenset(bound)
    if rule.body not in ("", "*"):
        if rule.body not in request.fields_by_name:
            raise UnsupportedAnnotation(f"{method.full_name}: no request field '{rule.body}'")
        bound.add(rule.body)
    query_fields: tuple[FieldDescriptor, ...] = ()
    if rule.body != "*":
        query_fields = tuple(
            field for field in request.fields if field.name not in bound and _fits_one_value(field)
        )
    return Binding(
        method=method,
        http_method=http_method,
        template=template,
        path_variables=variables,
        body=rule.body,
        query_fields=query_fields,
        query_aliases=tuple(
            (alias, field)
            for field in query_fields
            for alias in QUERY_ALIASES.get(field.full_name, ())
        ),
        taken=taken,
        starlette_path=_VARIABLE.sub(starlette_variable, template),
    )


def _path_variable(
    method: MethodDescriptor, request: Descriptor, match: re.Match[str]
) -> PathVariable:
    name, pattern = match.group(1), match.group(2)
    if pattern not in (None, "*", "**"):
        raise UnsupportedAnnotation(
            f"{method.full_name}: path variable pattern '{pattern}' is not supported"
        )
    fields = []
    message: Descriptor | None = request
    for part in name.split("."):
        field = message.fields_by_name.get(part) if message is not None else None
        if field is None:
            raise UnsupportedAnnotation(f"{method.full_name}: no request field '{name}'")
        fields.append(field)
        message = field.message_type
    if is_repeated(fields[-1]) or not _fits_one_value(fields[-1]):
        raise UnsupportedAnnotation(f"{method.full_name}: '{name}' is not a scalar field")
    return PathVariable(tuple(fields), name.replace(".", "__"), pattern == "**")


def _fits_one_value(field: FieldDescriptor) -> bool:
    """Whether the field can be given as text: a scalar, an enum, a well-known
    type with a scalar JSON form, or a repeated one of these."""
    if is_map(field):
        return False
    message = field.message_type
    if message is not None and message.full_name == DECIMAL:
        return True
    return message is None or (is_well_known(message) and message.full_name in _SCALAR_WELL_KNOWN)


def _refuse_duplicates(bindings: list[Binding]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for binding in bindings:
        key = (binding.http_method, re.sub(_VARIABLE, "{}", binding.template))
        if key in seen:
            raise UnsupportedAnnotation(
                f"{binding.method.full_name} and {seen[key]} share {key[0]} {binding.template}"
            )
        seen[key] = binding.method.full_name
