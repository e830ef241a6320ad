"""The catalog file of `billing-service plans apply` and `plans export`: an
operator's account kits, meters and plans in YAML (examples/catalog.yaml).

Entries are read as normalized dictionaries, the same shape the command
makes of what the server holds, so that comparing the two is comparing
dictionaries. The file is read from YAML's nodes rather than loaded, so that
every refusal names its line, duplicate keys are refused instead of one
silently winning, and decimals keep the digits that were written.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import yaml

from .domain import validation as v
from .domain.errors import InvalidArgument
from .domain.quantities import PLACES

SECTIONS = ("kits", "meters", "plans")
SECTION_KIND = {"kits": "kit", "meters": "meter", "plans": "plan"}
PERIODS = ("day", "week", "month", "year")
AGGREGATIONS = ("sum", "max", "last")

Entry = dict[str, Any]


class CatalogFileError(Exception):
    """A refusal of the file, at a line of it (1-based)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass
class CatalogFile:
    """The file's entries by section and key, with the line each starts on."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=dict)
    lines: dict[tuple[str, str], int] = field(default_factory=dict)

    def line_of(self, section: str, key: str) -> int:
        return self.lines.get((section, key), 1)


def read_catalog(text: str) -> CatalogFile:
    """The catalog a file holds; CatalogFileError names the first fault's line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise CatalogFileError(
            mark.line + 1 if mark else 1, f"not YAML: {error.problem or error}"
        ) from None
    catalog = CatalogFile({section: {} for section in SECTIONS})
    if root is None:
        return catalog
    for name, node in _mapping(root, "the file", SECTIONS):
        for key, entry in _mapping(node, name):
            catalog.lines[(name, key)] = _key_line(node, key)
            catalog.entries[name][key] = _READERS[name](key, entry)
    return catalog


def dump_catalog(entries: dict[str, dict[str, Entry]]) -> str:
    """The file of normalized entries: what `read_catalog` reads back as the
    same entries. Empty optional fields are left out."""
    document = {
        section: {
            key: {name: value for name, value in entry.items() if value not in ("", {}, [])}
            for key, entry in sorted(entries.get(section, {}).items())
        }
        for section in SECTIONS
    }
    header = (
        "# The operator's catalog, as `billing-service plans export` wrote it.\n"
        "# Change it and run `billing-service plans apply` (examples/catalog.yaml).\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def decimal_text(value: str) -> str:
    """A decimal in its shortest plain form, so that 0.10 and 0.1 compare equal."""
    number = Decimal(value or "0").normalize()
    return format(number, "f")


def _read_kit(key: str, node: yaml.Node) -> Entry:
    fields = dict(_mapping(node, f"kit {key}", ("name", "primitives", "permissions")))
    _check(node, lambda: v.key("id", key))
    entry: Entry = {
        "name": _text(fields, "name", node, required=True),
        "primitives": _texts(fields, "primitives"),
        "permissions": _texts(fields, "permissions"),
    }
    primitives, permissions = entry["primitives"], entry["permissions"]
    _check(fields.get("primitives", node), lambda: v.kit_primitives("primitives", primitives))
    _check(fields.get("permissions", node), lambda: v.permissions("permissions", permissions))
    entry["primitives"] = sorted(set(entry["primitives"]))
    entry["permissions"] = sorted(set(entry["permissions"]))
    _check(fields.get("name", node), lambda: v.name("name", entry["name"]))
    return entry


_METER_FIELDS = ("display_name", "unit", "aggregation", "scale", "stripe_event_name")


def _read_meter(key: str, node: yaml.Node) -> Entry:
    fields = dict(_mapping(node, f"meter {key}", _METER_FIELDS))
    _check(node, lambda: v.primitive("key", key))
    entry: Entry = {
        "display_name": _text(fields, "display_name", node, required=True),
        "unit": _text(fields, "unit", node, required=True),
        "aggregation": _choice(fields, "aggregation", AGGREGATIONS, "sum"),
        "scale": _whole(fields, "scale", 0),
        "stripe_event_name": _text(fields, "stripe_event_name", node),
    }
    _check(fields.get("display_name", node), lambda: v.name("display_name", entry["display_name"]))
    if not 0 <= entry["scale"] <= PLACES:
        raise CatalogFileError(_line(fields["scale"]), f"scale: must be between 0 and {PLACES}")
    return entry


_PLAN_FIELDS = (
    "name",
    "account_kit",
    "stripe_price_id",
    "period",
    "currency",
    "quotas",
    "prices",
)


def _read_plan(key: str, node: yaml.Node) -> Entry:
    fields = dict(_mapping(node, f"plan {key}", _PLAN_FIELDS))
    _check(node, lambda: v.key("key", key))
    entry: Entry = {
        "name": _text(fields, "name", node, required=True),
        "account_kit": _text(fields, "account_kit", node),
        "stripe_price_id": _text(fields, "stripe_price_id", node),
        "period": _choice(fields, "period", PERIODS, "month"),
        "currency": _text(fields, "currency", node) or "usd",
        "quotas": _quotas(fields.get("quotas")),
        "prices": _prices(fields.get("prices")),
    }
    _check(fields.get("name", node), lambda: v.name("name", entry["name"]))
    if entry["account_kit"]:
        _check(fields["account_kit"], lambda: v.key("account_kit", entry["account_kit"]))
    _check(node, lambda: v.external_id("stripe_price_id", entry["stripe_price_id"]))
    _check(node, lambda: v.currency("currency", entry["currency"]))
    return entry


def _quotas(node: yaml.Node | None) -> dict[str, int]:
    if node is None:
        return {}
    quotas = {
        prim: _whole_node(value, f"quotas.{prim}") for prim, value in _mapping(node, "quotas")
    }
    _check(node, lambda: v.quotas("quotas", quotas))
    return dict(sorted(quotas.items()))


def _prices(node: yaml.Node | None) -> dict[str, dict[str, str]]:
    if node is None:
        return {}
    prices = {}
    for meter, price in _mapping(node, "prices"):
        parts = dict(_mapping(price, f"prices.{meter}", ("unit_price", "included")))
        unit_price, included = (_scalar(parts[p], p) if p in parts else "0" for p in _PRICE)
        _check(price, partial(v.prices, "prices", {meter: (unit_price, included)}))
        prices[meter] = {"unit_price": decimal_text(unit_price), "included": decimal_text(included)}
    return dict(sorted(prices.items()))


_PRICE = ("unit_price", "included")

_READERS: dict[str, Callable[[str, yaml.Node], Entry]] = {
    "kits": _read_kit,
    "meters": _read_meter,
    "plans": _read_plan,
}


def _mapping(
    node: yaml.Node, what: str, known: tuple[str, ...] | None = None
) -> Iterator[tuple[str, yaml.Node]]:
    """A mapping's (key, value node) pairs; duplicate and unknown keys refused."""
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
        return
    if not isinstance(node, yaml.MappingNode):
        raise CatalogFileError(_line(node), f"{what} must be a mapping")
    seen: set[str] = set()
    for key_node, value in node.value:
        key = _scalar(key_node, what)
        if key in seen:
            raise CatalogFileError(_line(key_node), f"{what}: '{key}' appears twice")
        if known is not None and key not in known:
            raise CatalogFileError(
                _line(key_node), f"{what}: unknown field '{key}' (known: {', '.join(known)})"
            )
        seen.add(key)
        yield key, value


def _scalar(node: yaml.Node, what: str) -> str:
    """A scalar's text as written: a name of digits stays its digits."""
    if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null"):
        raise CatalogFileError(_line(node), f"{what} must be a single value")
    return str(node.value)


def _text(fields: dict[str, yaml.Node], name: str, entry: yaml.Node, required: bool = False) -> str:
    if name not in fields:
        if required:
            raise CatalogFileError(_line(entry), f"{name}: is required")
        return ""
    return _scalar(fields[name], name)


def _texts(fields: dict[str, yaml.Node], name: str) -> list[str]:
    node = fields.get(name)
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise CatalogFileError(_line(node), f"{name} must be a list")
    return [_scalar(item, name) for item in node.value]


def _choice(fields: dict[str, yaml.Node], name: str, choices: tuple[str, ...], default: str) -> str:
    if name not in fields:
        return default
    value = _scalar(fields[name], name)
    if value not in choices:
        raise CatalogFileError(_line(fields[name]), f"{name}: must be one of {', '.join(choices)}")
    return value


def _whole(fields: dict[str, yaml.Node], name: str, default: int) -> int:
    return _whole_node(fields[name], name) if name in fields else default


def _whole_node(node: yaml.Node, what: str) -> int:
    if not (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":int")):
        raise CatalogFileError(_line(node), f"{what}: must be a whole number")
    try:
        return int(str(node.value).replace("_", ""))
    except ValueError:
        raise CatalogFileError(_line(node), f"{what}: must be a whole number") from None


def _check(node: yaml.Node, rule: Callable[[], object]) -> None:
    """Run one of the service's own input rules, refusing at the node's line."""
    try:
        rule()
    except InvalidArgument as error:
        raise CatalogFileError(_line(node), str(error)) from None


def _key_line(mapping: yaml.Node, key: str) -> int:
    """The line a mapping's key is written on: where its entry starts."""
    return next(_line(k) for k, _value in mapping.value if k.value == key)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1
