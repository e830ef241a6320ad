"""No text of any request takes a control character: NUL in every string
field of every RPC (read from the services' descriptors) is INVALID_ARGUMENT
naming the field, before the caller is looked at, on both engines
(PostgreSQL cannot store NUL: it used to answer INTERNAL), over gRPC and
over REST."""

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
from billing.v1 import user_pb2
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import Message

from billing_service.api.services import SERVICE_NAMES
from billing_service.gateway.jsonmap import is_map, is_repeated

from .conftest import Client
from .gateway_fixtures import gateway_fixture, http_fixture  # noqa: F401
from .rpc_errors import refused

POISON = "a\x00b"
Poisoning = Callable[[Any], None]


def _methods() -> Iterator[MethodDescriptor]:
    pool = descriptor_pool.Default()
    for name in SERVICE_NAMES:
        yield from pool.FindServiceByName(name).methods


def _text_fields(message: Descriptor, depth: int = 0) -> Iterator[tuple[str, Poisoning]]:
    """(field as the error names it, how to put POISON there) for every
    place of `message` that holds text, at any depth."""
    for field in message.fields:
        name = field.name
        inner = field.message_type
        if is_map(field):
            assert inner is not None
            key, value = inner.fields_by_name["key"], inner.fields_by_name["value"]
            if key.type == key.TYPE_STRING:
                yield name, _map_key(name, value.message_type is not None)
            if value.type == value.TYPE_STRING:
                yield f"{name}[k]", _map_text(name)
            elif value.message_type is not None and depth < 4:
                for shown, poison in _text_fields(value.message_type, depth + 1):
                    yield f"{name}[k].{shown}", _map_message(name, poison)
        elif inner is not None and depth < 4:
            for shown, poison in _text_fields(inner, depth + 1):
                if is_repeated(field):
                    yield f"{name}[0].{shown}", _repeated_message(name, poison)
                else:
                    yield f"{name}.{shown}", _message(name, poison)
        elif field.type == field.TYPE_STRING:
            yield name, _repeated_text(name) if is_repeated(field) else _text(name)


def _text(name: str) -> Poisoning:
    return lambda message: setattr(message, name, POISON)


def _repeated_text(name: str) -> Poisoning:
    return lambda message: getattr(message, name).append(POISON)


def _map_key(name: str, message_values: bool) -> Poisoning:
    def poison(message: Any) -> None:
        entries = getattr(message, name)
        if message_values:
            entries.get_or_create(POISON)
        else:
            default = entries["k"]  # the value type's zero
            del entries["k"]
            entries[POISON] = default

    return poison


def _map_text(name: str) -> Poisoning:
    return lambda message: getattr(message, name).__setitem__("k", POISON)


def _map_message(name: str, inner: Poisoning) -> Poisoning:
    return lambda message: inner(getattr(message, name)["k"])


def _message(name: str, inner: Poisoning) -> Poisoning:
    return lambda message: inner(getattr(message, name))


def _repeated_message(name: str, inner: Poisoning) -> Poisoning:
    return lambda message: inner(getattr(message, name).add())


def _poisoned_requests() -> Iterator[tuple[MethodDescriptor, str, Message]]:
    for method in _methods():
        request_class = message_factory.GetMessageClass(method.input_type)
        for shown, poison in _text_fields(method.input_type):
            request = request_class()
            poison(request)
            yield method, shown, request


def test_the_sweep_reaches_nested_and_secret_fields() -> None:
    reached = {(method.name, shown) for method, shown, _ in _poisoned_requests()}
    assert ("SignIn", "password") in reached
    assert ("RevokeSession", "id") in reached
    assert ("UpsertPlan", "quotas") in reached
    assert ("ShouldRateLimit", "descriptors[0].entries[0].value") in reached
    assert len(reached) > 100


async def test_nul_in_any_text_of_any_rpc_is_invalid_argument(client: Client) -> None:
    wrong = []
    for method, shown, request in _poisoned_requests():
        call = client.channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=message_factory.GetMessageClass(method.output_type).FromString,
        )
        failure = await refused(call(request, metadata=client.auth, timeout=30))
        if failure.code != grpc.StatusCode.INVALID_ARGUMENT or failure.fields != (shown,):
            wrong.append((method.full_name, shown, failure.code.name, failure.fields))
    assert wrong == []


@pytest.mark.parametrize(
    "password", ["\x00" * 10, "correct horse\x00battery", "tab\tinside-passw0rd"]
)
async def test_a_password_with_control_characters_is_refused(client: Client, password: str) -> None:
    stub = client.channel.unary_unary(
        "/billing.v1.UserService/SignIn",
        request_serializer=user_pb2.SignInRequest.SerializeToString,
        response_deserializer=user_pb2.SignInResponse.FromString,
    )
    failure = await refused(
        stub(user_pb2.SignInRequest(email="a@x.com", password=password), metadata=client.auth)
    )
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == ("password",)
    assert password not in failure.message


async def test_nul_over_rest_is_a_400_naming_the_field(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/plans/a%00b")
    assert response.status_code == 400, response.text
    body = response.json()["error"]
    assert body["code"] == "invalid_argument" and body["field"] == "key"
