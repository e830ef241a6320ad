"""Operators' API keys at the API's door, over real gRPC on both backends."""

import asyncio
from collections.abc import Sequence

import grpc
import pytest
from billing.v1 import account_kit_pb2, plan_pb2, subscription_pb2, usage_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import event
from sqlalchemy.engine import Engine

from billing_service.app import App
from billing_service.catalog.keys import Authenticator, mint_key
from billing_service.domain.errors import Unauthenticated

from ..conftest import Client, create_operator_key, make_client
from ..rpc_errors import ERROR_DOMAIN, Failure, refused

BILLING_SERVICES = [
    account_kit_pb2.DESCRIPTOR.services_by_name["AccountKitService"],
    plan_pb2.DESCRIPTOR.services_by_name["PlanService"],
    subscription_pb2.DESCRIPTOR.services_by_name["SubscriptionService"],
    usage_pb2.DESCRIPTOR.services_by_name["UsageService"],
]
EVERY_METHOD = [f"/{s.full_name}/{m.name}" for s in BILLING_SERVICES for m in s.methods]


def assert_unauthenticated(failure: Failure) -> None:
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED, failure
    assert failure.reason == "UNAUTHENTICATED", failure
    assert failure.domain == ERROR_DOMAIN, failure


async def list_plans_as(client: Client, metadata: Sequence[tuple[str, str]]) -> Failure:
    return await refused(client.plans.ListPlans(plan_pb2.ListPlansRequest(), metadata=metadata))


async def revoke_every_key(app: App, operator_name: str) -> None:
    operator = await app.store.get_operator(operator_name)
    for key in await app.store.list_api_keys(operator.id):
        await app.store.revoke_api_key(key.id, app.clock.now())


async def create_operator_key_for(app: App, operator_name: str) -> str:
    """A new key of an existing operator."""
    operator = await app.store.get_operator(operator_name)
    key = mint_key()
    await app.store.add_api_key(operator.id, key.id, key.hash, key.prefix, app.clock.now())
    return key.secret


async def test_every_billing_rpc_needs_a_key(channel: grpc.aio.Channel) -> None:
    assert len(EVERY_METHOD) == 15
    for method in EVERY_METHOD:
        # An empty request: authentication comes before any look at the request.
        call = channel.unary_unary(method)(b"")
        failure = await refused(call)
        try:
            assert_unauthenticated(failure)
        except AssertionError as error:
            raise AssertionError(f"{method}: {error}") from error


async def test_a_valid_key_is_let_in(client: Client) -> None:
    response = await client.plans.ListPlans(plan_pb2.ListPlansRequest(), metadata=client.auth)

    assert list(response.plans) == []


async def test_the_bearer_scheme_is_case_insensitive(client: Client) -> None:
    for scheme in ("bearer", "BEARER"):
        await client.plans.ListPlans(
            plan_pb2.ListPlansRequest(), metadata=[("authorization", f"{scheme} {client.key}")]
        )


async def test_malformed_authorization_is_unauthenticated(client: Client) -> None:
    for value in (
        "",
        "Bearer",
        "Bearer    ",
        client.key,
        f"Basic {client.key}",
        f"Token {client.key}",
        f"Bearer{client.key}",
    ):
        failure = await list_plans_as(client, [("authorization", value)])
        try:
            assert_unauthenticated(failure)
        except AssertionError as error:
            raise AssertionError(f"authorization {value!r}: {error}") from error


async def test_a_key_under_another_header_name_is_not_read(client: Client) -> None:
    assert_unauthenticated(await list_plans_as(client, [("x-api-key", client.key)]))


async def test_an_unknown_key_is_unauthenticated(client: Client) -> None:
    unknown = mint_key().secret

    for secret in (unknown, client.key + "x", client.key[:-1], "bsk_", "not even a key"):
        assert_unauthenticated(await list_plans_as(client, [("authorization", f"Bearer {secret}")]))


async def test_a_revoked_key_is_unauthenticated(app: App, client: Client) -> None:
    await client.plans.ListPlans(plan_pb2.ListPlansRequest(), metadata=client.auth)

    await revoke_every_key(app, "acme")

    failure = await list_plans_as(client, client.auth)
    assert_unauthenticated(failure)


async def test_revoking_one_key_leaves_the_operators_other_keys_working(
    app: App, client: Client, channel: grpc.aio.Channel
) -> None:
    operator = await app.store.get_operator("acme")
    second_key = mint_key()
    await app.store.add_api_key(
        operator.id, second_key.id, second_key.hash, second_key.prefix, app.clock.now()
    )
    first_key_id = next(
        k.id for k in await app.store.list_api_keys(operator.id) if k.id != second_key.id
    )
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro"), metadata=client.auth
    )

    await app.store.revoke_api_key(first_key_id, app.clock.now())

    assert_unauthenticated(await list_plans_as(client, client.auth))
    second = make_client(channel, second_key.secret)
    listed = await second.plans.ListPlans(plan_pb2.ListPlansRequest(), metadata=second.auth)
    assert [p.key for p in listed.plans] == ["pro"]


async def test_revoking_twice_keeps_the_first_revocation(app: App, client: Client) -> None:
    operator = await app.store.get_operator("acme")
    (key,) = await app.store.list_api_keys(operator.id)
    first = await app.store.revoke_api_key(key.id, app.clock.now())

    again = await app.store.revoke_api_key(key.id, app.clock.now().replace(year=2030))

    assert again.revoked_at == first.revoked_at
    assert_unauthenticated(await list_plans_as(client, client.auth))


async def test_a_refused_call_writes_nothing(app: App, client: Client) -> None:
    await revoke_every_key(app, "acme")
    failure = await refused(
        client.plans.UpsertPlan(
            plan_pb2.UpsertPlanRequest(key="pro", name="Pro"), metadata=client.auth
        )
    )
    assert_unauthenticated(failure)
    fresh = make_client(client.channel, await create_operator_key_for(app, "acme"))

    listed = await fresh.plans.ListPlans(
        plan_pb2.ListPlansRequest(include_archived=True), metadata=fresh.auth
    )

    assert list(listed.plans) == []


async def test_each_key_acts_as_its_own_operator(
    app: App, client: Client, other_client: Client
) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="acme-plan", name="A"), metadata=client.auth
    )
    third = make_client(client.channel, await create_operator_key(app, "initech"))

    for someone, expected in ((client, ["acme-plan"]), (other_client, []), (third, [])):
        listed = await someone.plans.ListPlans(plan_pb2.ListPlansRequest(), metadata=someone.auth)
        assert [p.key for p in listed.plans] == expected


async def test_health_needs_no_key(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)

    response = await health.Check(health_pb2.HealthCheckRequest())

    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_cached_key_works_until_its_cache_entry_expires(app: App) -> None:
    # The service caches answers per raw authorization value; a revocation
    # reaches a replica that has just seen the key within cache_seconds.
    secret = await create_operator_key(app, "cached")
    metadata = [("authorization", f"Bearer {secret}")]
    now = [0.0]
    authenticator = Authenticator(app.store, cache_seconds=0.2, monotonic=lambda: now[0])
    assert authenticator.cached(metadata) is None  # never looked up yet
    operator_id = (await authenticator.authenticate(metadata)).operator_id
    cached = authenticator.cached(metadata)
    assert cached is not None and cached.operator_id == operator_id

    await revoke_every_key(app, "cached")
    cached = authenticator.cached(metadata)
    assert cached is not None and cached.operator_id == operator_id  # still trusted, as documented
    now[0] += 0.3
    assert authenticator.cached(metadata) is None
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(metadata)
    assert authenticator.cached(metadata) is None  # a refusal is never a hit


class KeyLookups:
    """Counts the statements that look up an API key, on every engine: what
    the database sees."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> "KeyLookups":
        event.listen(Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(Engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM api_keys" in statement:
            self.count += 1


async def test_callers_of_a_key_not_in_the_cache_share_one_lookup(app: App) -> None:
    # An entry expiring under load must not send every call in flight to
    # the database at once.
    secret = await create_operator_key(app, "herd")
    metadata = [("authorization", f"Bearer {secret}")]
    authenticator = Authenticator(app.store, cache_seconds=60)

    with KeyLookups() as lookups:
        answers = await asyncio.gather(*(authenticator.authenticate(metadata) for _ in range(50)))
        again = await authenticator.authenticate(metadata)

    operator = await app.store.get_operator("herd")
    assert {answer.operator_id for answer in answers} == {operator.id}
    assert again.operator_id == operator.id
    assert lookups.count == 1


async def test_a_caller_giving_up_leaves_the_shared_lookup_to_the_others(app: App) -> None:
    secret = await create_operator_key(app, "impatient")
    metadata = [("authorization", f"Bearer {secret}")]
    authenticator = Authenticator(app.store, cache_seconds=0)

    with KeyLookups() as lookups:
        first = asyncio.create_task(authenticator.authenticate(metadata))
        others = [asyncio.create_task(authenticator.authenticate(metadata)) for _ in range(5)]
        await asyncio.sleep(0)  # all of them waiting on the one lookup
        first.cancel()
        answers = await asyncio.gather(*others)

    assert first.cancelled()
    operator = await app.store.get_operator("impatient")
    assert {answer.operator_id for answer in answers} == {operator.id}
    assert lookups.count == 1


async def test_refusals_are_shared_too_and_every_caller_is_refused(app: App) -> None:
    metadata = [("authorization", f"Bearer {mint_key().secret}")]
    authenticator = Authenticator(app.store, cache_seconds=0)

    with KeyLookups() as lookups:
        results = await asyncio.gather(
            *(authenticator.authenticate(metadata) for _ in range(10)), return_exceptions=True
        )
        with pytest.raises(Unauthenticated):  # not cached: looked up again
            await authenticator.authenticate(metadata)

    assert all(isinstance(r, Unauthenticated) for r in results), results
    assert lookups.count == 2
