"""The OpenAPI 3.1 document served at /openapi.json, generated from the same
bindings and message descriptors the gateway routes by, following the JSON
presentation rules of jsonmap.py, and described by the protos' comments."""

from collections.abc import Sequence
from typing import Any

from billing.v1 import stripe_pb2
from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from ..domain import validation as v
from ..stripe.accounts import WEBHOOK_PATH
from .errors import EXTRA_FIELDS_BY_REASON
from .input_rules import INPUT_INSTANT, MAP_RULES, TIMESTAMP, input_rules
from .jsonmap import (
    INT64_TYPES,
    enum_of,
    enum_short_name,
    enum_short_names,
    exact_twins,
    is_decimal,
    is_map,
    is_repeated,
    is_well_known,
    map_value_field,
    shows_null_when_unset,
)
from .proto_docs import proto_comments
from .routes import Binding

DESCRIPTION = """\
HTTP/JSON gateway of the billing.v1 gRPC services. Every call needs
`Authorization: Bearer <key>`.

JSON follows protobuf's JSON mapping with the protos' field names (snake_case, as
`line_items`; requests also accept lowerCamelCase; fields without presence are always
present in responses), except that enum values are lower-case without their type prefix
(`PERIOD_MONTH` is `"month"`, the `*_UNSPECIFIED` value is `null`; requests also accept
full names), 64-bit integers are JSON numbers (requests also accept strings) and
decimals (google.type.Decimal) are exact JSON numbers (requests also accept strings).
In responses a decimal or `optional` field without a value is `null`, and a field `x`
beside `x_decimal` shows the same exact number as it. Requests never take `null`: a
field is given or left out.

Errors are `{"error": {"code": "<snake_case>", "message": "..."}}`, where `code` is the
ErrorInfo reason or gRPC code lower-cased. `rate_limited` (429) adds `used` and `limit`;
`invalid_argument` may add `field`; `stripe_refused` adds `stripe_request_id` and
`stripe_code`, `stripe_key_rejected` `stripe_request_id`. HTTP statuses: invalid_argument
400, unauthenticated 401, subscription_inactive 402, permission denied 403, not found 404,
already exists or aborted 409, other failed preconditions 400, resource exhausted 429,
unavailable 503, deadline exceeded 504, others 500.
"""

_INTEGER_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_WELL_KNOWN_SCHEMAS: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.ListValue": {"type": "array"},
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The body of every error response (see the document's description).",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "description": "What went wrong: `code` for programs, `message` for people.",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "snake_case reason or gRPC code"},
                "message": {"type": "string"},
                **{
                    name: {"type": "string" if convert is str else "number"}
                    for extra in EXTRA_FIELDS_BY_REASON.values()
                    for name, convert in extra.items()
                },
            },
        }
    },
}


BEARER_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "An operator's API key, as `billing-service keys create` shows it once: "
    "`Authorization: Bearer <key>`. A missing, unknown or revoked key is 401 unauthenticated.",
}
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def openapi_document(bindings: Sequence[Binding]) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for binding in bindings:
        path = binding.template
        for variable in binding.path_variables:
            # OpenAPI has no `{field=**}`; the variable is named alone.
            path = path.replace(f"{{{variable.name}=**}}", f"{{{variable.name}}}")
            path = path.replace(f"{{{variable.name}=*}}", f"{{{variable.name}}}")
        operation_id = binding.method.name
        if operation_id in operation_ids and binding.path_variables:
            # An additional binding: named by its first variable (...ByOrganizationId).
            words = binding.path_variables[0].name.split("_")
            operation_id += "By" + "".join(word.capitalize() for word in words)
        while operation_id in operation_ids:
            operation_id += "_"
        operation_ids.add(operation_id)
        paths.setdefault(path, {})[binding.http_method.lower()] = _operation(
            binding, operation_id, schemas
        )
    paths[WEBHOOK_PATH] = {"post": _stripe_webhook_operation(schemas)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Billing REST gateway", "version": "v1", "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": {**schemas.defined, "Error": ERROR_SCHEMA},
            "securitySchemes": {"bearerAuth": BEARER_SCHEME},
        },
        "security": [{"bearerAuth": []}],
    }


def _stripe_webhook_operation(schemas: "_Schemas") -> dict[str, Any]:
    """POST /v1/stripe/webhooks/{operator_id}: Stripe's own request, not a
    JSON mapping of HandleStripeWebhookRequest (gateway/app.py serves it)."""
    method = stripe_pb2.DESCRIPTOR.services_by_name["StripeWebhookService"].methods_by_name[
        "HandleStripeWebhook"
    ]
    return {
        "operationId": method.name,
        "summary": method.full_name,
        **_described(method.full_name),
        "tags": [method.containing_service.name],
        "security": [],
        "parameters": [
            {
                "name": "operator_id",
                "in": "path",
                "required": True,
                "description": "The operator whose Stripe account sends the event.",
                "schema": {"type": "string", "pattern": "^[0-9]{1,10}$"},
            },
            {
                "name": "Stripe-Signature",
                "in": "header",
                "required": True,
                "description": "Stripe's signature of the body.",
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {
            "required": True,
            "description": "The event exactly as Stripe sent it.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": {
            "200": {
                "description": f"a {method.output_type.full_name}",
                "content": {"application/json": {"schema": schemas.ref(method.output_type)}},
            },
            "default": {
                "description": "an error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }


def _operation(binding: Binding, operation_id: str, schemas: "_Schemas") -> dict[str, Any]:
    method = binding.method
    parameters: list[dict[str, Any]] = [
        {
            "name": variable.name,
            "in": "path",
            "required": True,
            **_described(variable.field_path[-1].full_name),
            "schema": schemas.field(variable.field_path[-1], output=False, required=True),
        }
        for variable in binding.path_variables
    ]
    aliased = {field.name for _, field in binding.query_aliases}
    parameters += [
        {
            "name": field.name,
            "in": "query",
            # A field with an alias may be given under either name.
            "required": _required(field) and field.name not in aliased,
            **_described(field.full_name),
            "schema": schemas.field(field, output=False, required=_required(field)),
        }
        for field in binding.query_fields
    ]
    parameters += [
        {
            "name": alias,
            "in": "query",
            "required": False,
            "description": f"`{field.name}` under another name: give one of the two.",
            "schema": schemas.field(field, output=False, required=_required(field)),
        }
        for alias, field in binding.query_aliases
    ]
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": method.full_name,
        **_described(method.full_name),
        "tags": [method.containing_service.name],
        "parameters": parameters,
        "responses": {
            "200": {
                "description": f"a {method.output_type.full_name}",
                "content": {"application/json": {"schema": schemas.ref(method.output_type)}},
            },
            "401": {"description": "no valid key (unauthenticated)", "content": _ERROR_CONTENT},
            "default": {"description": "an error", "content": _ERROR_CONTENT},
        },
    }
    if binding.body == "*":
        body_schema = schemas.input_message(method.input_type, exclude=set(binding.taken))
    elif binding.body:
        body_schema = schemas.field(method.input_type.fields_by_name[binding.body], output=False)
    else:
        return operation
    operation["requestBody"] = {
        # A body is optional only when nothing in it is required.
        "required": bool(body_schema.get("required")) or binding.body not in ("", "*"),
        "content": {"application/json": {"schema": body_schema}},
    }
    return operation


class _Schemas:
    """Component schemas of messages, named by full name; input ones (request
    messages nested in a request) end in `.Input`."""

    def __init__(self) -> None:
        self.defined: dict[str, dict[str, Any]] = {}

    def ref(self, message: Descriptor, output: bool = True) -> dict[str, Any]:
        if message.full_name in _WELL_KNOWN_SCHEMAS:
            return dict(_WELL_KNOWN_SCHEMAS[message.full_name])
        if is_well_known(message):
            return {}
        name = message.full_name if output else f"{message.full_name}.Input"
        if name not in self.defined:
            self.defined[name] = {}  # a placeholder stops recursion
            self.defined[name] = (
                self.output_message(message) if output else self.input_message(message)
            )
        return {"$ref": f"#/components/schemas/{name}"}

    def output_message(self, message: Descriptor) -> dict[str, Any]:
        properties = {field.name: self.property(field, output=True) for field in message.fields}
        for field, twin in exact_twins(message):
            # The field shows its twin's figure (jsonmap.py).
            properties[field.name] = {**properties[twin.name], **_described(field.full_name)}
        return {
            "type": "object",
            **_described(message.full_name),
            "properties": properties,
            # Fields without presence are always printed, and so are those
            # printed as null when unset.
            "required": [
                field.name
                for field in message.fields
                if not field.has_presence or shows_null_when_unset(field)
            ],
        }

    def input_message(self, message: Descriptor, exclude: set[str] | None = None) -> dict[str, Any]:
        fields = [
            field
            for field in message.fields
            if field.name not in (exclude or set())
            and field_behavior_pb2.OUTPUT_ONLY not in _behaviors(field)
        ]
        return {
            "type": "object",
            **_described(message.full_name),
            "properties": {
                field.name: self.property(
                    field, output=False, required=field_behavior_pb2.REQUIRED in _behaviors(field)
                )
                for field in fields
            },
            "required": [
                field.name for field in fields if field_behavior_pb2.REQUIRED in _behaviors(field)
            ],
            "additionalProperties": False,
        }

    def property(
        self, field: FieldDescriptor, output: bool, required: bool = False
    ) -> dict[str, Any]:
        """A message's field: its schema with the field's comment (and, for an
        enum, its values' comments) as description."""
        schema = self.field(field, output, required)
        description = proto_comments().get(field.full_name, "")
        if field.type == FieldDescriptor.TYPE_ENUM:
            description = "\n\n".join(filter(None, [description, _enum_values(enum_of(field))]))
        if description:
            # Beside a $ref too: OpenAPI 3.1 schemas allow it.
            schema["description"] = description
        return schema

    def field(self, field: FieldDescriptor, output: bool, required: bool = False) -> dict[str, Any]:
        if is_map(field):
            value = map_value_field(field)
            values = self._single(value, output)
            schema: dict[str, Any] = {"type": "object", "additionalProperties": values}
            if not output and field.name in MAP_RULES:
                keys, value_rules = MAP_RULES[field.name]
                values.update(value_rules)
                schema.update(propertyNames=keys, maxProperties=v.MAX_QUOTAS)
            return schema
        if is_repeated(field):
            items = self._single(field, output)
            if not output and field.name == "primitives":
                items = {**items, "pattern": rf"^(\*|{v.PRIMITIVE_RE.pattern})$"}
            if not output and field.name == "permissions":
                items = {**items, "pattern": f"^{v.TEXT_RE.pattern}$"}
                items.update(minLength=1, maxLength=v.MAX_NAME)
            listed: dict[str, Any] = {"type": "array", "items": items}
            if not output:
                listed["maxItems"] = v.MAX_LIST_ENTRIES
            return listed
        timestamp = field.message_type and field.message_type.full_name == TIMESTAMP
        if timestamp and not output:
            return dict(INPUT_INSTANT)
        single = self._single(field, output)
        if not output and field.message_type is None:
            single.update(input_rules(field, required))
        if output and shows_null_when_unset(field):
            single = _nullable(single)
        return single

    def _single(self, field: FieldDescriptor, output: bool) -> dict[str, Any]:
        if is_decimal(field):
            if output:
                return {"type": "number"}
            # A number, or its text (exactly as written).
            return {"type": ["number", "string"], "pattern": r"^([0-9]{1,13}(\.[0-9]{1,6})?)?$"}
        if field.type == FieldDescriptor.TYPE_ENUM:
            names: list[str | None] = list(enum_short_names(enum_of(field)))
            if output:
                return {"type": ["string", "null"], "enum": [*names, None]}
            return {"type": "string", "enum": names}
        if field.type in _INTEGER_RANGES:
            low, high = _INTEGER_RANGES[field.type]
            schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
            schema["format"] = "int64" if field.type in INT64_TYPES else "int32"
            return schema
        if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return {"type": "number"}
        if field.type == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if field.type == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        if field.message_type is not None:
            return self.ref(field.message_type, output)
        return {"type": "string"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _described(full_name: str) -> dict[str, str]:
    """{"description": the element's proto comment}, or nothing."""
    comment = proto_comments().get(full_name)
    return {"description": comment} if comment else {}


def _enum_values(enum: EnumDescriptor) -> str:
    """A Markdown list of the enum's values as JSON shows them, with their comments."""
    lines = []
    for value in enum.values:
        shown = enum_short_name(enum, value.number)
        line = f"- `{'null' if shown is None else shown}`"
        comment = proto_comments().get(f"{enum.full_name}.{value.name}")
        lines.append(f"{line}: {' '.join(comment.split())}" if comment else line)
    return "\n".join(lines)


def _required(field: FieldDescriptor) -> bool:
    return field_behavior_pb2.REQUIRED in _behaviors(field)


def _behaviors(field: FieldDescriptor) -> list[int]:
    return list(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])
