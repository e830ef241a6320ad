"""AdminService: operators and their keys managed over gRPC and REST with
the admin credential, on both backends, and that credential refused
everywhere else and never shown."""

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from billing.v1 import admin_pb2, admin_pb2_grpc, plan_pb2, plan_pb2_grpc
from google.protobuf import duration_pb2

from billing_service.app import App
from billing_service.catalog.admin_auth import AdminAuthenticator, mint_admin_key
from billing_service.catalog.keys import hash_key
from billing_service.clock import FixedClock
from billing_service.config import Settings
from billing_service.domain.errors import Unauthenticated
from billing_service.gateway.server import RunningGateway

from .cli_subprocess import run_cli, run_cli_ok, service_env
from .conftest import create_operator_key
from .gateway_fixtures import gateway_fixture, gateway_url
from .rpc_errors import refused

ADMIN_KEY = mint_admin_key()
ADMIN = [("authorization", f"Bearer {ADMIN_KEY.secret}")]
__all__ = ["gateway_fixture"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.admin_key_hash = ADMIN_KEY.hash
    return settings


@pytest.fixture
def admin(channel: grpc.aio.Channel) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(channel)


async def list_plans(channel: grpc.aio.Channel, secret: str) -> grpc.StatusCode:
    """How ListPlans answers a call with this key."""
    plans = plan_pb2_grpc.PlanServiceStub(channel)
    try:
        await plans.ListPlans(
            plan_pb2.ListPlansRequest(), metadata=[("authorization", f"Bearer {secret}")]
        )
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_operators_are_created_listed_by_page_and_disabled(
    admin: admin_pb2_grpc.AdminServiceStub, channel: grpc.aio.Channel
) -> None:
    for name in ("acme", "globex", "initech"):
        await admin.CreateOperator(admin_pb2.CreateOperatorRequest(name=name), metadata=ADMIN)
    again = await refused(
        admin.CreateOperator(admin_pb2.CreateOperatorRequest(name="acme"), metadata=ADMIN)
    )
    assert again.code == grpc.StatusCode.ALREADY_EXISTS

    names, token = [], ""
    while True:
        page = await admin.ListOperators(
            admin_pb2.ListOperatorsRequest(page_size=2, page_token=token), metadata=ADMIN
        )
        names += [o.name for o in page.operators]
        token = page.next_page_token
        if not token:
            break
    assert names == ["acme", "globex", "initech"]

    created = await admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(operator="globex"), metadata=ADMIN
    )
    assert await list_plans(channel, created.secret) == grpc.StatusCode.OK
    disabled = await admin.DisableOperator(
        admin_pb2.DisableOperatorRequest(operator="globex"), metadata=ADMIN
    )
    assert disabled.operator.HasField("disable_time")
    got = await admin.GetOperator(admin_pb2.GetOperatorRequest(operator="globex"), metadata=ADMIN)
    assert got.operator.disable_time == disabled.operator.disable_time
    assert await list_plans(channel, created.secret) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_key_is_shown_once_listed_without_its_secret_and_revoked(
    admin: admin_pb2_grpc.AdminServiceStub, channel: grpc.aio.Channel
) -> None:
    await admin.CreateOperator(admin_pb2.CreateOperatorRequest(name="acme"), metadata=ADMIN)
    created = await admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(operator="acme", scopes=["read"]), metadata=ADMIN
    )
    assert created.secret.startswith("bsk_") and list(created.key.scopes) == ["read"]

    listed = await admin.ListApiKeys(admin_pb2.ListApiKeysRequest(operator="acme"), metadata=ADMIN)
    assert [k.key_id for k in listed.keys] == [created.key.key_id]
    assert created.secret.encode() not in listed.SerializeToString()
    assert await list_plans(channel, created.secret) == grpc.StatusCode.OK

    revoked = await admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(key_id=created.key.key_id), metadata=ADMIN
    )
    assert revoked.key.HasField("revoke_time") and revoked.key.operator == "acme"
    assert await list_plans(channel, created.secret) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_bad_scope_or_a_past_expiry_is_invalid_and_creates_nothing(
    admin: admin_pb2_grpc.AdminServiceStub, clock: FixedClock
) -> None:
    await admin.CreateOperator(admin_pb2.CreateOperatorRequest(name="acme"), metadata=ADMIN)
    bad_scope = await refused(
        admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(operator="acme", scopes=["root"]), metadata=ADMIN
        )
    )
    assert bad_scope.code == grpc.StatusCode.INVALID_ARGUMENT and bad_scope.fields == ("scopes",)
    past = admin_pb2.CreateApiKeyRequest(operator="acme")
    past.expire_time.FromDatetime(clock.now() - timedelta(seconds=1))
    expired = await refused(admin.CreateApiKey(past, metadata=ADMIN))
    assert expired.code == grpc.StatusCode.INVALID_ARGUMENT
    assert expired.fields == ("expire_time",)
    listed = await admin.ListApiKeys(admin_pb2.ListApiKeysRequest(operator="acme"), metadata=ADMIN)
    assert list(listed.keys) == []


async def test_a_rotated_key_keeps_working_until_the_overlap_ends(
    admin: admin_pb2_grpc.AdminServiceStub, channel: grpc.aio.Channel, clock: FixedClock
) -> None:
    await admin.CreateOperator(admin_pb2.CreateOperatorRequest(name="acme"), metadata=ADMIN)
    old = await admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(operator="acme", scopes=["metering"]), metadata=ADMIN
    )
    rotated = await admin.RotateApiKey(
        admin_pb2.RotateApiKeyRequest(
            key_id=old.key.key_id, overlap=duration_pb2.Duration(seconds=3600)
        ),
        metadata=ADMIN,
    )
    assert list(rotated.new_key.scopes) == ["metering"]
    assert rotated.old_key.expire_time.ToDatetime().timestamp() == pytest.approx(
        (clock.now() + timedelta(hours=1)).timestamp()
    )
    # A metering key: ListPlans is PERMISSION_DENIED, which says the key authenticated.
    assert await list_plans(channel, old.secret) == grpc.StatusCode.PERMISSION_DENIED
    assert await list_plans(channel, rotated.secret) == grpc.StatusCode.PERMISSION_DENIED

    clock.set(clock.now() + timedelta(hours=1))
    assert await list_plans(channel, old.secret) == grpc.StatusCode.UNAUTHENTICATED
    assert await list_plans(channel, rotated.secret) == grpc.StatusCode.PERMISSION_DENIED
    again = await refused(
        admin.RotateApiKey(admin_pb2.RotateApiKeyRequest(key_id=old.key.key_id), metadata=ADMIN)
    )
    assert again.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_the_admin_credential_is_refused_elsewhere_and_operator_keys_here(
    app: App, admin: admin_pb2_grpc.AdminServiceStub, channel: grpc.aio.Channel
) -> None:
    assert await list_plans(channel, ADMIN_KEY.secret) == grpc.StatusCode.UNAUTHENTICATED
    operator_key = await create_operator_key(app, "acme")
    for secret in (operator_key, mint_admin_key().secret):
        failure = await refused(
            admin.ListOperators(
                admin_pb2.ListOperatorsRequest(), metadata=[("authorization", f"Bearer {secret}")]
            )
        )
        assert failure.code == grpc.StatusCode.UNAUTHENTICATED, failure
        assert ADMIN_KEY.secret not in failure.message and ADMIN_KEY.hash not in failure.message
    missing = await refused(admin.ListOperators(admin_pb2.ListOperatorsRequest()))
    assert missing.code == grpc.StatusCode.UNAUTHENTICATED


async def test_without_a_configured_hash_every_admin_key_is_refused() -> None:
    with pytest.raises(Unauthenticated, match="BILLING_ADMIN_KEY_HASH"):
        await AdminAuthenticator("").authenticate(ADMIN)


async def test_admin_actions_are_logged_with_the_key_id_and_no_secret(
    admin: admin_pb2_grpc.AdminServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await admin.CreateOperator(admin_pb2.CreateOperatorRequest(name="acme"), metadata=ADMIN)
    created = await admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(operator="acme"), metadata=ADMIN
    )
    await admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(key_id=created.key.key_id), metadata=ADMIN
    )

    admin_id = "admin_" + ADMIN_KEY.hash[:12]
    actions = [r.getMessage() for r in caplog.records if r.name == "billing_service.catalog.admin"]
    assert len(actions) == 3 and all(admin_id in line for line in actions), actions
    assert created.key.key_id in actions[1] and created.key.key_id in actions[2]
    assert ADMIN_KEY.secret not in caplog.text and created.secret not in caplog.text


@pytest.fixture
async def admin_http(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY.secret}"}
    async with httpx.AsyncClient(base_url=gateway_url(gateway), headers=headers) as http:
        yield http


async def test_the_admin_api_is_served_over_rest_and_in_openapi(
    admin_http: httpx.AsyncClient,
) -> None:
    created = await admin_http.post("/v1/admin/operators", json={"name": "acme"})
    assert created.status_code == 200, created.text
    key = await admin_http.post("/v1/admin/operators/acme/keys", json={"scopes": ["metering"]})
    assert key.status_code == 200, key.text
    assert key.json()["secret"].startswith("bsk_")
    listed = await admin_http.get("/v1/admin/operators/acme/keys")
    assert [k["scopes"] for k in listed.json()["keys"]] == [["metering"]]
    refused_key = await admin_http.get(
        "/v1/admin/operators", headers={"Authorization": f"Bearer {key.json()['secret']}"}
    )
    assert refused_key.status_code == 401
    document = (await admin_http.get("/openapi.json")).json()
    assert "/v1/admin/operators/{operator}/keys" in document["paths"]


async def test_admin_key_create_prints_a_key_and_the_hash_to_configure(tmp_path: Path) -> None:
    result = await run_cli_ok(
        service_env(f"sqlite+aiosqlite:///{tmp_path / 'none.db'}"), "admin-key", "create"
    )
    secret, key_hash = result.stdout.split()
    assert secret.startswith("bak_") and hash_key(secret) == key_hash
    assert "BILLING_ADMIN_KEY_HASH=" + key_hash in result.stderr
    with pytest.raises(Unauthenticated):
        await AdminAuthenticator(key_hash).authenticate(ADMIN)
    assert await AdminAuthenticator(key_hash).authenticate([("authorization", f"Bearer {secret}")])
    assert not (tmp_path / "none.db").exists()  # no database is touched


async def test_keys_create_takes_scopes_and_an_expiry(tmp_path: Path) -> None:
    env = service_env(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    await run_cli_ok(env, "migrate")
    await run_cli_ok(env, "operators", "create", "acme")
    created = await run_cli_ok(
        env,
        "keys",
        "create",
        "--operator",
        "acme",
        "--scope",
        "metering",
        "--scope",
        "read",
        "--expires",
        "2099-01-01T00:00Z",
    )
    assert "(metering read)" in created.stdout
    listing = await run_cli_ok(env, "keys", "list", "--operator", "acme")
    assert "metering read" in listing.stdout and "expires 2099-01-01" in listing.stdout
    for bad in (("--scope", "root"), ("--expires", "tomorrow"), ("--expires", "2099-01-01T00:00")):
        refused_run = await run_cli(env, "keys", "create", "--operator", "acme", *bad)
        assert refused_run.returncode != 0, bad
    listing = await run_cli_ok(env, "keys", "list", "--operator", "acme")
    assert len(listing.stdout.splitlines()) == 1
