"""Numbers that are a few bytes of JSON and millions of digits written out
(`1e100000000`): refused as the body is read, 400 `invalid_argument`, in
every decimal field of every route, with or without a key, and without
holding up anyone else's call; over gRPC, refused without being expanded."""

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from billing.v1 import usage_pb2
from google.protobuf.descriptor import Descriptor
from google.type import decimal_pb2

from billing_service.gateway.jsonmap import is_decimal, is_map, is_repeated, is_well_known
from billing_service.gateway.routes import Binding, api_files, load_bindings
from billing_service.gateway.server import RunningGateway

from .conftest import Client
from .gateway_fixtures import gateway_fixture, gateway_url, http_fixture  # noqa: F401
from .rpc_errors import refused

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

BOMBS = (
    "1e100000000",
    "-1E+100000000",
    "1e-100000000",
    "1e10000000",
    "1e1000000",
    "1" + "0" * 1000,
    "0." + "0" * 1000 + "1",
)
# Seconds vs milliseconds: a bomb held the gateway for 8-9 s on an idle
# machine; answered as it is read, it takes about a millisecond.
PROMPT_SECONDS = 4.0
_PLACEHOLDER = "__bomb__"


def _decimal_paths(message: Descriptor, depth: int = 0) -> Iterator[list[str]]:
    """Where a decimal can be put in a JSON object of `message`: a list of
    keys (a map's entry under the key 'seo')."""
    for field in message.fields:
        inner = field
        steps = [field.name]
        if is_map(field):
            assert field.message_type is not None
            inner = field.message_type.fields_by_name["value"]
            steps.append("seo")
        if is_decimal(inner):
            yield steps
        elif (
            inner.message_type is not None
            and not is_well_known(inner.message_type)
            and depth < 4
            and not is_repeated(inner)
        ):
            for rest in _decimal_paths(inner.message_type, depth + 1):
                yield steps + rest


def _nested(steps: list[str], leaf: Any) -> Any:
    value = leaf
    for step in reversed(steps):
        value = {step: value}
    return value


def _targets() -> Iterator[tuple[Binding, str, dict[str, Any] | None, str | None]]:
    """(binding, path, body or None, query parameter or None) for every
    decimal field every route takes, from the route table."""
    for binding in load_bindings(api_files()):
        path = re.sub(r"\{[^}]*\}", "x1", binding.template)
        if binding.body == "*":
            for steps in _decimal_paths(binding.method.input_type):
                yield binding, path, _nested(steps, _PLACEHOLDER), None
        elif binding.body:
            field = binding.method.input_type.fields_by_name[binding.body]
            if is_decimal(field):
                yield binding, path, _nested([binding.body], _PLACEHOLDER), None
            elif field.message_type is not None:
                for steps in _decimal_paths(field.message_type):
                    yield binding, path, {binding.body: _nested(steps, _PLACEHOLDER)}, None
        for query_field in binding.query_fields:
            if is_decimal(query_field):
                yield binding, path, None, query_field.name


TARGETS = list(_targets())


def _target_id(target: tuple[Binding, str, dict[str, Any] | None, str | None]) -> str:
    binding, _, body, query = target
    return f"{binding.http_method} {binding.template} {query or json.dumps(body)}"


async def _send_bomb(
    http: httpx.AsyncClient,
    target: tuple[Binding, str, dict[str, Any] | None, str | None],
    bomb: str,
    authorization: str,
) -> tuple[httpx.Response, float]:
    binding, path, body, query = target
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    started = time.perf_counter()
    if query is not None:
        response = await http.request(
            binding.http_method, path, params={query: bomb}, headers=headers
        )
    else:
        content = json.dumps(body).replace(json.dumps(_PLACEHOLDER), bomb)
        response = await http.request(
            binding.http_method, path, content=content.encode(), headers=headers
        )
    return response, time.perf_counter() - started


async def _ordinary_calls(http: httpx.AsyncClient, until: asyncio.Event) -> list[float]:
    """GET /v1/plans over and over until `until`: how long each took."""
    took = []
    while not until.is_set():
        started = time.perf_counter()
        assert (await http.get("/v1/plans")).status_code == 200
        took.append(time.perf_counter() - started)
    return took


@SQLITE_ONLY
@pytest.mark.parametrize("target", TARGETS, ids=_target_id)
async def test_a_number_bomb_is_refused_as_read_without_holding_up_others(
    http: httpx.AsyncClient,
    gateway: RunningGateway,
    target: tuple[Binding, str, dict[str, Any] | None, str | None],
) -> None:
    valid = http.headers["Authorization"]
    async with httpx.AsyncClient(base_url=gateway_url(gateway), timeout=120) as bomber:
        done = asyncio.Event()
        ordinary = asyncio.create_task(_ordinary_calls(http, done))
        try:
            answers = await asyncio.gather(
                *(
                    _send_bomb(bomber, target, bomb, authorization)
                    for bomb in BOMBS
                    for authorization in (valid, "Bearer bsk_not-a-key-of-anyone")
                )
            )
        finally:
            done.set()
        took = await ordinary
    _, _, _, query = target
    keys = [valid, "other"] * len(BOMBS)
    for (response, seconds), authorization in zip(answers, keys, strict=True):
        if query is not None and authorization != valid:
            # A query value is text, never expanded: the service asks for a key first.
            assert response.status_code == 401, response.text
        else:
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "invalid_argument"
        assert seconds < PROMPT_SECONDS
    assert took and max(took) < PROMPT_SECONDS


def test_every_decimal_field_of_the_routes_is_covered() -> None:
    # The table above is read from the routes: it must find the known ones.
    covered = {
        (binding.method.name, query or json.dumps(body)) for binding, _, body, query in TARGETS
    }
    assert ("ConsumeQuota", json.dumps({"quantity_decimal": _PLACEHOLDER})) in covered
    assert ("CheckQuota", "quantity_decimal") in covered
    assert any(method == "UpsertPlan" and "unit_price" in shown for method, shown in covered)


@SQLITE_ONLY
@pytest.mark.parametrize("bomb", ["1e100000000", "1" + "0" * 100_000, "1e-100000000"])
async def test_a_decimal_string_bomb_over_grpc_is_invalid_argument(
    client: Client, bomb: str
) -> None:
    failure = await refused(
        client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(
                user_id="t1", primitive="seo", quantity_decimal=decimal_pb2.Decimal(value=bomb)
            ),
            metadata=client.auth,
            timeout=PROMPT_SECONDS,
        )
    )
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == ("quantity_decimal",)
