"""AccountKitService over real gRPC, on SQLite and PostgreSQL."""

import re
from datetime import timedelta

from billing.v1 import account_kit_pb2

from billing_service.clock import FixedClock

from ..conftest import Client
from ..rpc_errors import assert_invalid_argument, assert_not_found


async def upsert_kit(
    client: Client,
    kit_id: str,
    name: str = "Kit",
    primitives: list[str] | None = None,
    permissions: list[str] | None = None,
) -> account_kit_pb2.UpsertAccountKitResponse:
    response: account_kit_pb2.UpsertAccountKitResponse = await client.kits.UpsertAccountKit(
        account_kit_pb2.UpsertAccountKitRequest(
            id=kit_id, name=name, primitives=primitives or [], permissions=permissions or []
        ),
        metadata=client.auth,
    )
    return response


async def get_kit(client: Client, kit_id: str) -> account_kit_pb2.AccountKit:
    response = await client.kits.GetAccountKit(
        account_kit_pb2.GetAccountKitRequest(id=kit_id), metadata=client.auth
    )
    kit: account_kit_pb2.AccountKit = response.account_kit
    return kit


async def list_kit_ids(client: Client) -> list[str]:
    response = await client.kits.ListAccountKits(
        account_kit_pb2.ListAccountKitsRequest(), metadata=client.auth
    )
    assert response.next_page_token == ""
    return [k.id for k in response.account_kits]


async def test_upsert_creates_a_kit_with_sorted_unique_lists(
    client: Client, clock: FixedClock
) -> None:
    response = await upsert_kit(
        client,
        "seo-kit",
        name="SEO tools",
        primitives=["seo", "crawl", "seo"],
        permissions=["reports:read", "admin panel", "reports:read"],
    )

    assert response.created
    kit = response.account_kit
    assert kit.id == "seo-kit"
    assert kit.name == "SEO tools"
    assert list(kit.primitives) == ["crawl", "seo"]
    assert list(kit.permissions) == ["admin panel", "reports:read"]
    assert kit.create_time.ToDatetime(tzinfo=clock.now().tzinfo) == clock.now()
    assert kit.update_time == kit.create_time
    assert await get_kit(client, "seo-kit") == kit


async def test_wildcard_and_empty_primitive_lists_are_kept(client: Client) -> None:
    everything = (await upsert_kit(client, "all", primitives=["*"])).account_kit
    nothing = (await upsert_kit(client, "none")).account_kit

    assert list(everything.primitives) == ["*"]
    assert list(nothing.primitives) == []
    assert list(nothing.permissions) == []


async def test_empty_id_creates_a_new_kit_each_time(client: Client) -> None:
    first = await upsert_kit(client, "", name="Generated")
    second = await upsert_kit(client, "", name="Generated")

    assert first.created and second.created
    for kit in (first.account_kit, second.account_kit):
        assert re.fullmatch(r"kit_[a-z0-9_-]+", kit.id), kit.id
    assert first.account_kit.id != second.account_kit.id
    assert await list_kit_ids(client) == sorted([first.account_kit.id, second.account_kit.id])
    assert (await get_kit(client, first.account_kit.id)).name == "Generated"


async def test_same_upsert_twice_leaves_the_same_kit(client: Client) -> None:
    first = await upsert_kit(client, "k", primitives=["seo"], permissions=["p"])
    second = await upsert_kit(client, "k", primitives=["seo"], permissions=["p"])

    assert (first.created, second.created) == (True, False)
    assert second.account_kit == first.account_kit
    assert await list_kit_ids(client) == ["k"]


async def test_upsert_replaces_the_kit_and_keeps_create_time(
    client: Client, clock: FixedClock
) -> None:
    first = await upsert_kit(client, "k", name="Old", primitives=["seo"], permissions=["p"])
    clock.set(clock.now() + timedelta(days=1))

    second = await upsert_kit(client, "k", name="New", primitives=["crawl"])

    assert not second.created
    kit = second.account_kit
    assert (kit.name, list(kit.primitives), list(kit.permissions)) == ("New", ["crawl"], [])
    assert kit.create_time == first.account_kit.create_time
    assert kit.update_time.ToDatetime(tzinfo=clock.now().tzinfo) == clock.now()
    assert await get_kit(client, "k") == kit


async def test_get_unknown_kit_is_not_found(client: Client) -> None:
    failure = await assert_not_found(
        client.kits.GetAccountKit(
            account_kit_pb2.GetAccountKitRequest(id="ghost"), metadata=client.auth
        )
    )
    assert failure.metadata == {"resource": "account kit", "name": "ghost"}


async def test_list_pages_through_every_kit_once_in_id_order(client: Client) -> None:
    ids = [f"kit-{i}" for i in range(5)]
    for kit_id in reversed(ids):
        await upsert_kit(client, kit_id)

    seen: list[list[str]] = []
    token = ""
    while True:
        page = await client.kits.ListAccountKits(
            account_kit_pb2.ListAccountKitsRequest(page_size=2, page_token=token),
            metadata=client.auth,
        )
        seen.append([k.id for k in page.account_kits])
        token = page.next_page_token
        if not token:
            break

    assert seen == [["kit-0", "kit-1"], ["kit-2", "kit-3"], ["kit-4"]]


async def test_list_page_size_bounds_and_bad_tokens(client: Client) -> None:
    await upsert_kit(client, "k")

    for page_size in (1, 1000):
        page = await client.kits.ListAccountKits(
            account_kit_pb2.ListAccountKitsRequest(page_size=page_size), metadata=client.auth
        )
        assert [k.id for k in page.account_kits] == ["k"]
    for page_size in (-5, 1001):
        await assert_invalid_argument(
            client.kits.ListAccountKits(
                account_kit_pb2.ListAccountKitsRequest(page_size=page_size), metadata=client.auth
            ),
            "page_size",
        )
    await assert_invalid_argument(
        client.kits.ListAccountKits(
            account_kit_pb2.ListAccountKitsRequest(page_token="%%%"), metadata=client.auth
        ),
        "page_token",
    )


async def test_another_operators_kits_are_invisible(client: Client, other_client: Client) -> None:
    await upsert_kit(client, "acme-kit", primitives=["seo"])

    await assert_not_found(
        other_client.kits.GetAccountKit(
            account_kit_pb2.GetAccountKitRequest(id="acme-kit"), metadata=other_client.auth
        )
    )
    assert await list_kit_ids(other_client) == []


async def test_the_same_kit_id_in_two_operators_is_two_kits(
    client: Client, other_client: Client
) -> None:
    await upsert_kit(client, "shared", name="Acme's", primitives=["seo"])

    theirs = await upsert_kit(other_client, "shared", name="Globex's", primitives=["crawl"])

    assert theirs.created
    ours = await get_kit(client, "shared")
    assert (ours.name, list(ours.primitives)) == ("Acme's", ["seo"])
    assert await list_kit_ids(client) == ["shared"]
    assert await list_kit_ids(other_client) == ["shared"]
