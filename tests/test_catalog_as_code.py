"""Pricing as code: `billing-service plans apply FILE` and `plans export`, run
as the command a user runs, against a real server over gRPC (as a remote
one would be: the command has no database of its own), on both engines."""

import os
from pathlib import Path

import pytest
from billing.v1 import account_kit_pb2, meter_pb2, plan_pb2

from billing_service.api.server import RunningServer

from .cli_subprocess import CliResult, run_cli
from .conftest import Client

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "catalog.yaml"


def _env(key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    if key is not None:
        env["BILLING_API_KEY"] = key
    return env


async def _plans(server: RunningServer, client: Client, *args: str) -> CliResult:
    return await run_cli(_env(client.key), "plans", *args, "--target", f"127.0.0.1:{server.port}")


async def _stored_plans(client: Client) -> dict[str, plan_pb2.Plan]:
    reply = await client.plans.ListPlans(plan_pb2.ListPlansRequest(), metadata=client.auth)
    return {plan.key: plan for plan in reply.plans}


async def test_apply_creates_the_catalog_then_a_second_apply_writes_nothing(
    server: RunningServer, client: Client
) -> None:
    first = await _plans(server, client, "apply", str(EXAMPLE))
    assert first.returncode == 0, first
    assert "+ kit starter" in first.stdout
    assert "+ meter gpu_seconds" in first.stdout
    assert "+ plan free" in first.stdout and "+ plan pro" in first.stdout
    assert "applied 4 change(s)" in first.stdout

    plans = await _stored_plans(client)
    assert plans["free"].quotas == {"sandbox_create": 10, "api_call": 1000}
    assert plans["pro"].account_kit_id == "starter"
    assert plans["pro"].prices["gpu_seconds"].unit_price.value == "0.0004"
    kit = await client.kits.GetAccountKit(
        account_kit_pb2.GetAccountKitRequest(id="starter"), metadata=client.auth
    )
    assert list(kit.account_kit.primitives) == ["api_call", "sandbox_create"]

    second = await _plans(server, client, "apply", str(EXAMPLE))
    assert second.returncode == 0, second
    assert "nothing to apply" in second.stdout
    assert "+" not in second.stdout and "~" not in second.stdout
    after = await _stored_plans(client)
    assert {k: p.update_time for k, p in after.items()} == {
        k: p.update_time for k, p in plans.items()
    }


async def test_a_change_shows_its_difference_and_only_it_is_written(
    server: RunningServer, client: Client, tmp_path: Path
) -> None:
    assert (await _plans(server, client, "apply", str(EXAMPLE))).returncode == 0
    before = await _stored_plans(client)
    changed = tmp_path / "catalog.yaml"
    changed.write_text(EXAMPLE.read_text().replace("sandbox_create: 500", "sandbox_create: 750"))

    dry = await _plans(server, client, "apply", "--dry-run", str(changed))
    assert dry.returncode == 0, dry
    assert "~ plan pro" in dry.stdout and "500" in dry.stdout and "750" in dry.stdout
    assert (await _stored_plans(client))["pro"].quotas["sandbox_create"] == 500

    applied = await _plans(server, client, "apply", str(changed))
    assert applied.returncode == 0, applied
    assert "applied 1 change(s)" in applied.stdout
    after = await _stored_plans(client)
    assert after["pro"].quotas["sandbox_create"] == 750
    assert after["free"].update_time == before["free"].update_time


async def test_export_then_apply_is_a_no_op(
    server: RunningServer, client: Client, tmp_path: Path
) -> None:
    # A catalog made through the API, with what a file must carry exactly.
    await client.kits.UpsertAccountKit(
        account_kit_pb2.UpsertAccountKitRequest(id="all", name="Everything", primitives=["*"]),
        metadata=client.auth,
    )
    await client.meters.UpsertMeter(
        meter_pb2.UpsertMeterRequest(
            key="gb_stored",
            display_name="Storage",
            unit="GB",
            aggregation=meter_pb2.AGGREGATION_MAX,
            scale=3,
        ),
        metadata=client.auth,
    )
    request = plan_pb2.UpsertPlanRequest(
        key="team",
        name="2024",  # a name YAML would read as a number
        account_kit_id="all",
        stripe_price_id="price_123",
        quotas={"api_call": 0},
        period=plan_pb2.PERIOD_YEAR,
        currency="eur",
    )
    request.prices["gb_stored"].unit_price.value = "0.10"
    request.prices["gb_stored"].included.value = "1000000"
    await client.plans.UpsertPlan(request, metadata=client.auth)

    exported = tmp_path / "exported.yaml"
    export = await _plans(server, client, "export", "--output", str(exported))
    assert export.returncode == 0, export
    text = exported.read_text()
    assert "gb_stored" in text and "price_123" in text
    assert "sandbox_compute_hours" not in text  # built-in meters are not the operator's

    applied = await _plans(server, client, "apply", str(exported))
    assert applied.returncode == 0, applied
    assert "nothing to apply" in applied.stdout


async def test_a_faulty_file_is_refused_at_its_line_and_nothing_is_written(
    server: RunningServer, client: Client, tmp_path: Path
) -> None:
    faulty = tmp_path / "catalog.yaml"
    faulty.write_text(
        "kits:\n  k:\n    name: K\nplans:\n  p:\n    name: P\n    quotas:\n      api_call: lots\n"
    )
    result = await _plans(server, client, "apply", str(faulty))
    assert result.returncode == 1
    assert f"{faulty}:line 8:" in result.stderr and "whole number" in result.stderr
    assert await _stored_plans(client) == {}

    faulty.write_text("plans:\n  p:\n    name: P\n    quota: {}\n")
    result = await _plans(server, client, "apply", str(faulty))
    assert "line 4: plan p: unknown field 'quota'" in result.stderr

    faulty.write_text("plans:\n  p:\n    name: P\n    account_kit: nowhere\n")
    result = await _plans(server, client, "apply", str(faulty))
    assert result.returncode == 1
    assert "line 2: plan p: account_kit 'nowhere'" in result.stderr
    assert await _stored_plans(client) == {}


async def test_a_refusal_of_the_server_names_the_entry_s_line(
    server: RunningServer, client: Client, tmp_path: Path
) -> None:
    # A Stripe price links to one plan: the second plan with it is refused.
    two = tmp_path / "catalog.yaml"
    two.write_text(
        "plans:\n  a:\n    name: A\n    stripe_price_id: price_1\n"
        "  b:\n    name: B\n    stripe_price_id: price_1\n"
    )
    result = await _plans(server, client, "apply", str(two))
    assert result.returncode == 1
    assert "line 5: plan b refused: FAILED_PRECONDITION" in result.stderr


@pytest.mark.parametrize("args", [["--key", "secret"], []])
async def test_the_key_comes_from_the_environment_or_a_file_only(
    server: RunningServer, client: Client, args: list[str], tmp_path: Path
) -> None:
    target = ["--target", f"127.0.0.1:{server.port}"]
    result = await run_cli(_env(None), "plans", "export", *args, *target)
    assert result.returncode == 2
    assert "BILLING_API_KEY" in result.stderr or "unrecognized arguments" in result.stderr

    key_file = tmp_path / "key"
    key_file.write_text(client.key + "\n")
    result = await run_cli(_env(None), "plans", "export", "--key-file", str(key_file), *target)
    assert result.returncode == 0, result
    assert client.key not in result.stdout + result.stderr
