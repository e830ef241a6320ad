"""clients/python (billing_client) against a real server: the seed's shape,
typed errors with the ErrorInfo, same-key retries of lost answers (through a
proxy that loses them), and the README's quick start run as written in a
virtualenv holding only the client's own dependencies."""

import asyncio
import os
import socket
import subprocess
import sys
import tomllib
import venv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import billing_client
import grpc
import pytest
from billing.v1 import usage_pb2
from billing_client import AsyncBillingClient, BillingClient, RetryPolicy
from billing_client._methods import TABLES

from billing_service.api.server import RunningServer
from billing_service.app import App
from tests.client_packages import CLIENTS, ROOT, code_block, server_services, versions
from tests.conftest import create_operator_key
from tests.lossy_proxy import lossy_proxy

# The clients, not storage: one engine is enough.
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

CONSUME = "/billing.v1.UsageService/ConsumeQuota"
ARCHIVE = "/billing.v1.PlanService/ArchivePlan"
LIST_PLANS = "/billing.v1.PlanService/ListPlans"
PYTHON_CLIENT = CLIENTS / "python"
VENV = ROOT / "build" / "python-client-venv"


async def _subscribed(client: AsyncBillingClient, quota: int = 2) -> None:
    await client.plans.upsert(
        key="starter", name="Starter", quotas={"seo": quota}, period="PERIOD_MONTH"
    )
    await client.billing.set_subscription(user_id="user-1", plan_key="starter")


@SQLITE
async def test_the_seed_shape_consumes_until_quota_exceeded(
    app: App, server: RunningServer
) -> None:
    key = await create_operator_key(app, "acme")
    async with AsyncBillingClient(f"127.0.0.1:{server.port}", key) as client:
        await _subscribed(client)
        first = await client.billing.consume(user_id="user-1", primitive="seo")
        second = await client.usage.consume_quota(
            usage_pb2.ConsumeQuotaRequest(user_id="user-1", primitive="seo")
        )
        assert (first.standing.used_decimal.value, second.standing.used_decimal.value) == (
            "1",
            "2",
        )
        with pytest.raises(billing_client.QuotaExceeded) as refused:
            await client.billing.consume(user_id="user-1", primitive="seo")
        usage = await client.billing.get_usage(user_id="user-1")
    error = refused.value
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (error.reason, error.domain) == ("RATE_LIMITED", "billing.v1")
    assert error.message == "Plan quota exceeded for 'seo' (2/2 this period)"
    assert (error.primitive, error.used, error.limit) == ("seo", Decimal(2), Decimal(2))
    assert error.resets_at == datetime(2026, 7, 1, tzinfo=UTC)
    assert error.metadata["used"] == "2"
    assert usage.plan == "starter" and usage.usage_decimal["seo"].value == "2"


@SQLITE
async def test_refusals_are_typed_errors_with_their_reason(app: App, server: RunningServer) -> None:
    key = await create_operator_key(app, "acme")
    target = f"127.0.0.1:{server.port}"
    async with AsyncBillingClient(target, key) as client:
        with pytest.raises(billing_client.NotFound) as missing:
            await client.plans.get(key="nope")
        with pytest.raises(billing_client.InvalidArgument) as invalid:
            await client.billing.consume(user_id="", primitive="seo")
        with pytest.raises(billing_client.DeadlineExceeded):
            await client.plans.list(timeout=0)
    async with AsyncBillingClient(target, "bsk_wrong") as stranger:
        with pytest.raises(billing_client.Unauthenticated) as unauthenticated:
            await stranger.plans.list()
    assert missing.value.reason == "NOT_FOUND"
    assert invalid.value.reason == "INVALID_ARGUMENT"
    assert unauthenticated.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert isinstance(missing.value, billing_client.BillingError)


@SQLITE
async def test_a_lost_answer_is_retried_with_the_same_generated_key(
    app: App, server: RunningServer
) -> None:
    key = await create_operator_key(app, "acme")
    async with lossy_proxy(f"127.0.0.1:{server.port}", {CONSUME: 2}) as proxy:
        retry = RetryPolicy(attempts=4, initial_backoff=0.01)
        async with AsyncBillingClient(f"127.0.0.1:{proxy.port}", key, retry=retry) as client:
            await _subscribed(client, quota=5)
            consumed = await client.billing.consume(user_id="user-1", primitive="seo")
            usage = await client.billing.get_usage(user_id="user-1")
    sent = [usage_pb2.ConsumeQuotaRequest.FromString(raw) for raw in proxy.forwarded[CONSUME]]
    assert len(sent) == 3
    assert len({request.idempotency_key for request in sent}) == 1
    assert sent[0].idempotency_key  # generated: the caller gave none
    # The server acted on all three attempts: one unit was counted.
    assert consumed.standing.used_decimal.value == "1"
    assert usage.usage_decimal["seo"].value == "1"


@SQLITE
async def test_a_caller_key_is_kept_and_a_write_without_one_is_not_retried(
    app: App, server: RunningServer
) -> None:
    key = await create_operator_key(app, "acme")
    async with lossy_proxy(f"127.0.0.1:{server.port}", {CONSUME: 1, ARCHIVE: 1}) as proxy:
        retry = RetryPolicy(attempts=3, initial_backoff=0.01)
        async with AsyncBillingClient(f"127.0.0.1:{proxy.port}", key, retry=retry) as client:
            await _subscribed(client)
            await client.billing.consume(
                user_id="user-1", primitive="seo", idempotency_key="req-42"
            )
            with pytest.raises(billing_client.Unavailable):
                await client.plans.archive(key="starter")
    sent = [usage_pb2.ConsumeQuotaRequest.FromString(raw) for raw in proxy.forwarded[CONSUME]]
    assert [request.idempotency_key for request in sent] == ["req-42", "req-42"]
    assert len(proxy.forwarded[ARCHIVE]) == 1


@SQLITE
async def test_settings_with_an_end_users_session(app: App, server: RunningServer) -> None:
    key = await create_operator_key(app, "acme")
    async with AsyncBillingClient(f"127.0.0.1:{server.port}", key) as client:
        await client.users.create_user(email="ann@example.com", password="correct horse battery")
        signed = await client.users.sign_in(
            email="ann@example.com", password="correct horse battery"
        )
        ann = client.with_credential(signed.session_token)
        await ann.settings.update_notifications(push=False)
        preferences = (await ann.settings.get_preferences()).preferences
        with pytest.raises(billing_client.Unauthenticated):
            await client.settings.get_preferences()  # an operator key is refused there
    assert preferences.notifications.push is False
    assert preferences.notifications.email is True


@SQLITE
async def test_the_blocking_client_has_the_same_shape(app: App, server: RunningServer) -> None:
    key = await create_operator_key(app, "acme")

    def run() -> str:
        with BillingClient(f"127.0.0.1:{server.port}", key) as client:
            client.plans.upsert(key="starter", name="Starter", quotas={"seo": 1})
            client.billing.set_subscription(user_id="user-1", plan_key="starter")
            client.billing.consume(user_id="user-1", primitive="seo")
            try:
                client.billing.consume(user_id="user-1", primitive="seo")
            except billing_client.QuotaExceeded as error:
                return f"{error.used}/{error.limit}"
        return "admitted"

    assert await asyncio.to_thread(run) == "1/1"


def test_every_rpc_of_every_service_is_a_method() -> None:
    reachable = {rpc.path for table in TABLES.values() for rpc in table.values()}
    for service in server_services():
        for method in service.methods:
            assert f"/{service.full_name}/{method.name}" in reachable


def test_the_clients_carry_the_services_version() -> None:
    found = versions()
    assert len(set(found.values())) == 1, found
    assert billing_client.__version__ == found["service"]


def _client_venv() -> Path:
    """A virtualenv with the client installed from clients/python (built as
    a user's pip builds it) and nothing else: reinstalled when its
    pyproject.toml changes."""
    python = VENV / "bin" / "python"
    stamp = VENV / "client-pyproject.toml"
    pyproject = (PYTHON_CLIENT / "pyproject.toml").read_bytes()
    if not python.exists() or not stamp.exists() or stamp.read_bytes() != pyproject:
        venv.create(VENV, with_pip=True, clear=True)
        stamp.write_bytes(b"")
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--force-reinstall",
            "--no-deps",
            str(PYTHON_CLIENT),
        ],
        check=True,
        timeout=600,
    )
    if stamp.read_bytes() != pyproject:
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                str(PYTHON_CLIENT),
            ],
            check=True,
            timeout=600,
        )
        stamp.write_bytes(pyproject)
    return python


@SQLITE
@pytest.mark.slow
async def test_the_readme_quick_start_runs_as_written(app: App, server: RunningServer) -> None:
    python = await asyncio.to_thread(_client_venv)
    listed = await asyncio.create_subprocess_exec(
        python, "-m", "pip", "list", "--format=freeze", stdout=asyncio.subprocess.PIPE
    )
    installed = (await listed.communicate())[0].decode().lower()
    dependencies = tomllib.loads((PYTHON_CLIENT / "pyproject.toml").read_text())
    assert "sqlalchemy" not in installed and "customer-billing==" not in installed
    assert len(dependencies["project"]["dependencies"]) == 4
    quick_start = code_block(PYTHON_CLIENT / "README.md", "Quick start", "python")
    key = await create_operator_key(app, "acme")
    env = {**os.environ, "BILLING_TARGET": f"127.0.0.1:{server.port}", "BILLING_API_KEY": key}
    env.pop("PYTHONPATH", None)
    process = await asyncio.create_subprocess_exec(
        python,
        "-c",
        quick_start,
        env=env,
        cwd="/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().splitlines() == [
        "consumed, used 1",
        "consumed, used 2",
        "quota exceeded: 2/2 seo until 2026-07-01 00:00:00+00:00",
        "starter {'seo': '2'}",
    ]
    assert sys.executable != str(python)


@SQLITE
async def test_a_hung_server_is_a_deadline_and_a_down_one_unavailable(
    app: App, server: RunningServer
) -> None:
    key = await create_operator_key(app, "acme")
    retry = RetryPolicy(attempts=3, initial_backoff=0.01)
    hung = frozenset({LIST_PLANS})
    async with lossy_proxy(f"127.0.0.1:{server.port}", {}, hung) as proxy:
        client = AsyncBillingClient(f"127.0.0.1:{proxy.port}", key, retry=retry)
        with pytest.raises(billing_client.DeadlineExceeded):
            await client.plans.list(timeout=1)
        await client.close()
    assert len(proxy.forwarded[LIST_PLANS]) == 1  # a deadline is not retried
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        down = f"127.0.0.1:{bound.getsockname()[1]}"
        async with AsyncBillingClient(down, key, retry=retry) as client:
            with pytest.raises(billing_client.Unavailable) as unavailable:
                await client.plans.list()
    assert unavailable.value.reason == ""  # the transport's, not the service's


@SQLITE
async def test_a_client_for_one_user_names_it_in_every_call(
    app: App, server: RunningServer
) -> None:
    key = await create_operator_key(app, "acme")
    async with AsyncBillingClient(f"127.0.0.1:{server.port}", key) as client:
        await client.plans.upsert(key="starter", name="Starter", quotas={"seo": 5})
        tenant = client.for_user("user-7")
        await tenant.billing.set_subscription(plan_key="starter")
        await tenant.billing.consume(primitive="seo")
        await client.billing.consume(user_id="user-8", primitive="seo")  # not user-7's
        await tenant.billing.consume(primitive="seo", user_id="user-8")  # given: kept
        mine = await tenant.billing.usage()
        with pytest.raises(billing_client.NotFound):  # an organization of that id: another owner
            await client.for_organization("user-7").billing.get_subscription()
    assert mine.plan == "starter" and mine.usage_decimal["seo"].value == "1"
