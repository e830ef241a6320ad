"""`billing-service plans apply FILE` and `plans export`: pricing as code.

Both talk to a running server over the operator's gRPC API (--target, the
key from BILLING_API_KEY or --key-file, never from the command line, where
every user of the machine can read it), so they work against a remote
deployment as well as a local one. `apply` shows what differs between the
file and the operator's catalog, then upserts the entries that differ: kits
first (plans name them), then meters, then plans. An entry the file leaves
out is left as it is. The same file twice writes nothing the second time.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import grpc
from billing.v1 import (
    account_kit_pb2,
    account_kit_pb2_grpc,
    meter_pb2,
    meter_pb2_grpc,
    plan_pb2,
    plan_pb2_grpc,
)

from .addresses import DEFAULT_GRPC_ADDR
from .catalog_file import (
    SECTION_KIND,
    SECTIONS,
    CatalogFile,
    CatalogFileError,
    Entry,
    decimal_text,
    dump_catalog,
    read_catalog,
)

# Generous: the server may be far away and loaded.
RPC_TIMEOUT_SECONDS = 60.0
PAGE_SIZE = 1000
_PERIOD_TO_PROTO = {
    "day": plan_pb2.PERIOD_DAY,
    "week": plan_pb2.PERIOD_WEEK,
    "month": plan_pb2.PERIOD_MONTH,
    "year": plan_pb2.PERIOD_YEAR,
}
_PERIOD_FROM_PROTO = {value: name for name, value in _PERIOD_TO_PROTO.items()}
_AGGREGATION_TO_PROTO = {
    "sum": meter_pb2.AGGREGATION_SUM,
    "max": meter_pb2.AGGREGATION_MAX,
    "last": meter_pb2.AGGREGATION_LAST,
}
_AGGREGATION_FROM_PROTO = {value: name for name, value in _AGGREGATION_TO_PROTO.items()}


class CommandError(Exception):
    """A refusal told in one line, exit status 1 (2 for usage)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def run(args: argparse.Namespace) -> int:
    try:
        key = _api_key(args.key_file)
        target = args.target or os.environ.get("BILLING_GRPC_ADDR") or DEFAULT_GRPC_ADDR
        with grpc.insecure_channel(target) as channel:
            remote = _Remote(channel, key)
            if args.action == "export":
                return _export(remote, args.output)
            return _apply(remote, args.file, dry_run=args.dry_run)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.status
    except grpc.RpcError as error:
        print(f"error: {target}: {_status(error)}", file=sys.stderr)
        return 1


def _api_key(key_file: str | None) -> str:
    if key_file:
        try:
            key = Path(key_file).read_text().strip()
        except OSError as error:
            raise CommandError(f"--key-file {key_file}: {error.strerror}", 2) from None
    else:
        key = os.environ.get("BILLING_API_KEY", "").strip()
    if not key:
        raise CommandError("no API key: set BILLING_API_KEY or give --key-file", 2)
    return key


def _export(remote: "_Remote", output: str | None) -> int:
    text = dump_catalog(remote.catalog())
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _apply(remote: "_Remote", path: str, dry_run: bool) -> int:
    try:
        wanted = read_catalog(Path(path).read_text())
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror}", 2) from None
    except CatalogFileError as error:
        raise CommandError(f"{path}:{error}") from None
    current = remote.catalog()
    _check_kits_named(path, wanted, current)
    changes = [
        (section, key, entry, current[section].get(key))
        for section in SECTIONS
        for key, entry in wanted.entries[section].items()
        if current[section].get(key) != entry
    ]
    for section, key, entry, before in changes:
        print(_describe(section, key, entry, before))
    for section in SECTIONS:
        for key in sorted(current[section].keys() - wanted.entries[section].keys()):
            print(f"  {SECTION_KIND[section]} {key}: not in the file, left as it is")
    if not changes:
        print(f"the catalog already matches {path}: nothing to apply")
        return 0
    if dry_run:
        print(f"{len(changes)} change(s) to apply (dry run: nothing written)")
        return 0
    for section, key, entry, _before in changes:
        try:
            remote.upsert(section, key, entry)
        except grpc.RpcError as error:
            line = wanted.line_of(section, key)
            raise CommandError(
                f"{path}:line {line}: {SECTION_KIND[section]} {key} refused: {_status(error)}"
            ) from None
    print(f"applied {len(changes)} change(s)")
    return 0


def _check_kits_named(path: str, wanted: CatalogFile, current: dict[str, dict[str, Entry]]) -> None:
    """A plan's kit is in the file or on the server, told before anything is written."""
    known = wanted.entries["kits"].keys() | current["kits"].keys()
    for key, plan in wanted.entries["plans"].items():
        if plan["account_kit"] and plan["account_kit"] not in known:
            line = wanted.line_of("plans", key)
            raise CommandError(
                f"{path}:line {line}: plan {key}: account_kit '{plan['account_kit']}' "
                "is neither in the file nor on the server"
            )


def _describe(section: str, key: str, entry: Entry, before: Entry | None) -> str:
    kind = SECTION_KIND[section]
    if before is None:
        return f"+ {kind} {key}"
    lines = [f"~ {kind} {key}"]
    for name, value in entry.items():
        if before.get(name) != value:
            lines.append(f"    {name}: {before.get(name)!r} -> {value!r}")
    return "\n".join(lines)


def _status(error: grpc.RpcError) -> str:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    return f"{code.name if code else 'UNKNOWN'}: {details}"


class _Remote:
    """The operator's catalog on the server, as the file's normalized entries."""

    def __init__(self, channel: grpc.Channel, key: str) -> None:
        self._kits = account_kit_pb2_grpc.AccountKitServiceStub(channel)
        self._meters = meter_pb2_grpc.MeterServiceStub(channel)
        self._plans = plan_pb2_grpc.PlanServiceStub(channel)
        self._call: dict[str, Any] = {
            "metadata": [("authorization", f"Bearer {key}")],
            "timeout": RPC_TIMEOUT_SECONDS,
        }

    def catalog(self) -> dict[str, dict[str, Entry]]:
        meters = self._meters.ListMeters(meter_pb2.ListMetersRequest(), **self._call).meters
        return {
            "kits": {kit.id: _kit_entry(kit) for kit in self._all_kits()},
            # A built-in meter the operator has not redeclared is no part of
            # the operator's catalog.
            "meters": {m.key: _meter_entry(m) for m in meters if not m.built_in},
            "plans": {plan.key: _plan_entry(plan) for plan in self._all_plans()},
        }

    def upsert(self, section: str, key: str, entry: Entry) -> None:
        if section == "kits":
            self._kits.UpsertAccountKit(
                account_kit_pb2.UpsertAccountKitRequest(
                    id=key,
                    name=entry["name"],
                    primitives=entry["primitives"],
                    permissions=entry["permissions"],
                ),
                **self._call,
            )
        elif section == "meters":
            self._meters.UpsertMeter(
                meter_pb2.UpsertMeterRequest(
                    key=key,
                    display_name=entry["display_name"],
                    unit=entry["unit"],
                    aggregation=_AGGREGATION_TO_PROTO[entry["aggregation"]],
                    scale=entry["scale"],
                    stripe_event_name=entry["stripe_event_name"],
                ),
                **self._call,
            )
        else:
            self._plans.UpsertPlan(_plan_request(key, entry), **self._call)

    def _all_kits(self) -> list[Any]:
        kits, token = [], ""
        while True:
            page = self._kits.ListAccountKits(
                account_kit_pb2.ListAccountKitsRequest(page_size=PAGE_SIZE, page_token=token),
                **self._call,
            )
            kits.extend(page.account_kits)
            token = page.next_page_token
            if not token:
                return kits

    def _all_plans(self) -> list[Any]:
        plans, token = [], ""
        while True:
            page = self._plans.ListPlans(
                plan_pb2.ListPlansRequest(page_size=PAGE_SIZE, page_token=token), **self._call
            )
            plans.extend(page.plans)
            token = page.next_page_token
            if not token:
                return plans


def _kit_entry(kit: Any) -> Entry:
    return {
        "name": kit.name,
        "primitives": sorted(kit.primitives),
        "permissions": sorted(kit.permissions),
    }


def _meter_entry(meter: Any) -> Entry:
    return {
        "display_name": meter.display_name,
        "unit": meter.unit,
        "aggregation": _AGGREGATION_FROM_PROTO.get(meter.aggregation, "sum"),
        "scale": meter.scale,
        "stripe_event_name": meter.stripe_event_name,
    }


def _plan_entry(plan: Any) -> Entry:
    return {
        "name": plan.name,
        "account_kit": plan.account_kit_id,
        "stripe_price_id": plan.stripe_price_id,
        "period": _PERIOD_FROM_PROTO.get(plan.period, "month"),
        "currency": plan.currency or "usd",
        "quotas": dict(sorted(plan.quotas.items())),
        "prices": {
            meter: {
                "unit_price": decimal_text(price.unit_price.value),
                "included": decimal_text(price.included.value),
            }
            for meter, price in sorted(plan.prices.items())
        },
    }


def _plan_request(key: str, entry: Entry) -> Any:
    request = plan_pb2.UpsertPlanRequest(
        key=key,
        name=entry["name"],
        account_kit_id=entry["account_kit"],
        stripe_price_id=entry["stripe_price_id"],
        quotas=entry["quotas"],
        period=_PERIOD_TO_PROTO[entry["period"]],
        currency=entry["currency"],
    )
    for meter, price in entry["prices"].items():
        request.prices[meter].unit_price.value = price["unit_price"]
        request.prices[meter].included.value = price["included"]
    return request
