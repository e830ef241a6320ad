"""The service's input rules (domain/validation.py and its peers) as JSON
Schema, for the OpenAPI document (gateway/openapi.py): a generated client
does not send what the service refuses, and schemathesis holds the two to
each other (tests/faults/test_fuzz_rest.py)."""

from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from ..billing.bills import FIRST_YEAR, LAST_YEAR
from ..billing.page import MAX_TOKENS
from ..catalog.meters import STRIPE_EVENT_NAME_RE
from ..domain import validation as v
from ..domain.pagination import MAX_TOKEN
from ..stripe import model as payments

# The service's input rules (domain/validation.py) as JSON Schema, by field
# name, so that a generated client does not send what the service refuses.
INPUT_RULES: dict[str, dict[str, Any]] = {
    "tenant_id": {"pattern": v.TENANT_RE.pattern},
    "user_id": {"pattern": v.TENANT_RE.pattern},
    "organization_id": {"pattern": v.TENANT_RE.pattern},
    "primitive": {"pattern": v.PRIMITIVE_RE.pattern},
    "key": {"pattern": v.KEY_RE.pattern},
    "plan_key": {"pattern": v.KEY_RE.pattern},
    "account_kit_id": {"pattern": v.KEY_RE.pattern},
    "id": {"pattern": v.KEY_RE.pattern},
    "name": {"pattern": v.NAME_RE.pattern, "maxLength": v.MAX_NAME},
    "idempotency_key": {"pattern": v.TEXT_RE.pattern, "maxLength": v.MAX_EXTERNAL_ID},
    "stripe_price_id": {"pattern": v.EXTERNAL_ID_RE.pattern, "maxLength": v.MAX_EXTERNAL_ID},
    "stripe_customer_id": {"pattern": v.EXTERNAL_ID_RE.pattern, "maxLength": v.MAX_EXTERNAL_ID},
    "stripe_subscription_id": {
        "pattern": v.EXTERNAL_ID_RE.pattern,
        "maxLength": v.MAX_EXTERNAL_ID,
    },
    "usage_event_id": {"pattern": v.EVENT_ID_RE.pattern},
    "project_id": {"pattern": v.TENANT_RE.pattern},
    "display_name": {"pattern": v.NAME_RE.pattern, "maxLength": v.MAX_NAME},
    "operator": {"pattern": v.NAME_RE.pattern, "maxLength": v.MAX_NAME},
    "key_id": {"pattern": "[ -~]{1,32}"},
    "reason": {"pattern": v.NAME_RE.pattern, "maxLength": v.MAX_NAME},
    "provider_model": {"pattern": v.TEXT_RE.pattern, "maxLength": v.MAX_NAME},
    "unit": {
        "pattern": r"[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]{0,30}[^\s\x00-\x1f\x7f-\x9f])?"
    },
    "scale": {"minimum": 0, "maximum": 6},
    # 0 (or left out), with the other 0 too: the current month.
    "year": {"anyOf": [{"const": 0}, {"minimum": FIRST_YEAR, "maximum": LAST_YEAR}]},
    "month": {"minimum": 0, "maximum": 12},
    "from_date": {"pattern": r"[0-9]{4}-[0-9]{2}-[0-9]{2}"},
    "to_date": {"pattern": r"[0-9]{4}-[0-9]{2}-[0-9]{2}"},
    "currency": {"pattern": v.CURRENCY_RE.pattern},
    "input_tokens": {"minimum": 0, "maximum": MAX_TOKENS},
    "output_tokens": {"minimum": 0, "maximum": MAX_TOKENS},
    "reasoning_tokens": {"minimum": 0, "maximum": MAX_TOKENS},
    "page_token": {"maxLength": MAX_TOKEN},
    "quantity": {"minimum": 0, "maximum": v.MAX_QUANTITY},
    "page_size": {"minimum": 0, "maximum": v.MAX_PAGE_SIZE},
    "secret_key": {"pattern": payments.SECRET_KEY_RE.pattern},
    "webhook_secret": {"pattern": payments.WEBHOOK_SECRET_RE.pattern},
    "email": {"pattern": payments.EMAIL_RE.pattern, "maxLength": 254},
    "return_url": {"pattern": payments.RETURN_URL_RE.pattern, "maxLength": payments.MAX_URL},
    "stripe_event_name": {"pattern": STRIPE_EVENT_NAME_RE.pattern},
}
# An input instant: RFC 3339 from 1971 to 2099, inside the service's range
# (the Unix epoch to a century ahead) whatever the offset.
TIMESTAMP = "google.protobuf.Timestamp"
INPUT_INSTANT = {
    "type": "string",
    "format": "date-time",
    "pattern": "^(197[1-9]|19[89][0-9]|20[0-9]{2})-",
}
# Map fields: the keys' rule and the values'.
MAP_RULES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "quotas": (
        {"pattern": f"^{v.PRIMITIVE_RE.pattern}$"},
        {"minimum": 0, "maximum": v.MAX_QUOTA},
    ),
}


# Where a field's name means another rule in one message.
INPUT_RULES_BY_FULL_NAME: dict[str, dict[str, Any]] = {
    "billing.v1.UpsertMeterRequest.key": {"pattern": v.PRIMITIVE_RE.pattern},
    "billing.v1.GetMeterRequest.key": {"pattern": v.PRIMITIVE_RE.pattern},
}


def input_rules(field: FieldDescriptor, required: bool) -> dict[str, Any]:
    """The field's rules; a pattern anchored, and allowing the empty string
    (an unset field) unless the field is required."""
    rules = dict(INPUT_RULES_BY_FULL_NAME.get(field.full_name) or INPUT_RULES.get(field.name, {}))
    if "pattern" in rules:
        rules["pattern"] = f"^({rules['pattern']})$" if required else f"^({rules['pattern']})?$"
    if required and field.type == FieldDescriptor.TYPE_STRING:
        rules["minLength"] = 1
    if required and "minimum" in rules:
        rules["minimum"] = max(rules["minimum"], 1)  # a required number is not zero
    return rules
