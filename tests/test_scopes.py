"""Scoped API keys: every RPC of every served service, walked from the
descriptors, against keys of each scope, expired and revoked keys, over
real gRPC on both backends."""

from datetime import timedelta

import grpc
from google.protobuf import descriptor_pool

from billing_service.api.scopes import ADMITTED_BY, FULL, METERING, NO_API_KEY, READ
from billing_service.api.services import SERVICE_NAMES
from billing_service.app import App
from billing_service.catalog.admin import Admin
from billing_service.clock import FixedClock

from .rpc_errors import Failure, refused

# The metered calls: what a `metering` key may call, and nothing else.
METERED = {
    "billing.v1.UsageService.CheckQuota",
    "billing.v1.UsageService.ConsumeQuota",
    "billing.v1.UsageService.RecordUsage",
    "billing.v1.UsageService.RefundUsage",
    "billing.v1.UsageService.GetUsage",
    "billing.v1.BillingService.RecordAiUsage",
    "envoy.service.ratelimit.v3.RateLimitService.ShouldRateLimit",
}
READ_VERBS = ("Get", "List", "Can")
# The reasons of a refused key (SignIn's wrong password is UNAUTHENTICATED too).
KEY_REFUSALS = ("UNAUTHENTICATED", "SCOPE_NOT_GRANTED")


def served_methods() -> dict[str, str]:
    """Every method of every served service: full name -> gRPC path."""
    pool = descriptor_pool.Default()
    return {
        method.full_name: f"/{service}/{method.name}"
        for service in SERVICE_NAMES
        for method in pool.FindServiceByName(service).methods
    }


def key_methods() -> dict[str, str]:
    return {name: path for name, path in served_methods().items() if ADMITTED_BY[name]}


def test_every_served_rpc_is_in_the_registry_and_nothing_else() -> None:
    assert set(served_methods()) == set(ADMITTED_BY)


def test_a_read_key_is_admitted_to_reads_only_and_a_metering_key_to_metering_only() -> None:
    for name, admitted in ADMITTED_BY.items():
        if admitted is NO_API_KEY or not admitted:
            continue
        assert FULL in admitted, name
        method = name.rsplit(".", 1)[1]
        if READ in admitted:
            assert method.startswith(READ_VERBS), f"{name}: a write admitted to `read`"
        assert (METERING in admitted) == (name in METERED), name


async def call(channel: grpc.aio.Channel, path: str, secret: str) -> Failure | None:
    """The RPC with an empty request; how it failed, None if it did not."""
    answer = channel.unary_unary(path)(b"", metadata=[("authorization", f"Bearer {secret}")])
    try:
        await answer
    except grpc.aio.AioRpcError:
        return await refused(answer)
    return None


async def test_each_scope_calls_exactly_what_it_admits(app: App, channel: grpc.aio.Channel) -> None:
    admin = Admin(app.store, app.clock)
    await admin.create_operator("test", "scoped")
    for scope in (FULL, METERING, READ):
        _, key = await admin.create_key("test", "scoped", [scope], None)
        for name, path in key_methods().items():
            failure = await call(channel, path, key.secret)
            if scope in ADMITTED_BY[name]:
                # Let in: whatever the empty request gets, it is not a refusal of the key.
                assert failure is None or failure.reason not in KEY_REFUSALS, (
                    scope,
                    name,
                    failure,
                )
            else:
                assert failure is not None, (scope, name)
                assert failure.code == grpc.StatusCode.PERMISSION_DENIED, (scope, name, failure)
                assert failure.reason == "SCOPE_NOT_GRANTED", failure
                needed = failure.metadata["scope_needed"]
                assert needed in ADMITTED_BY[name] and needed in failure.message, failure


async def test_an_expired_or_revoked_key_calls_nothing(
    app: App, clock: FixedClock, channel: grpc.aio.Channel
) -> None:
    admin = Admin(app.store, app.clock)
    await admin.create_operator("test", "ending")
    _, expiring = await admin.create_key("test", "ending", [FULL], clock.now() + timedelta(hours=1))
    revoked_info, revoked = await admin.create_key("test", "ending", [FULL], None)
    path = "/billing.v1.PlanService/ListPlans"
    assert await call(channel, path, expiring.secret) is None  # works until it expires
    await admin.revoke_key("test", revoked_info.id)
    clock.set(clock.now() + timedelta(hours=1))

    for secret in (expiring.secret, revoked.secret):
        for name, path in key_methods().items():
            failure = await call(channel, path, secret)
            assert failure is not None and failure.code == grpc.StatusCode.UNAUTHENTICATED, (
                name,
                failure,
            )
            assert failure.reason == "UNAUTHENTICATED", failure


async def test_keys_made_before_scopes_existed_are_full(
    app: App, channel: grpc.aio.Channel
) -> None:
    from .conftest import create_operator_key

    secret = await create_operator_key(app, "legacy")
    operator = await app.store.get_operator("legacy")
    assert [k.scopes for k in await app.store.list_api_keys(operator.id)] == [(FULL,)]
    assert await call(channel, "/billing.v1.PlanService/ListPlans", secret) is None
