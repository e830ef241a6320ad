"""The throttles on guessing an end user's password, over real gRPC on both
databases: parallel sign-ins (per email and per client address) and the
password asked again by ChangePassword, RequestEmailChange and
RequestDeletion. At most 5 failures a window are ever evaluated, however
many guesses arrive at once, and exactly 5 when more do."""

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from billing.v1 import settings_pb2, user_pb2, user_pb2_grpc
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from billing_service.app import App
from billing_service.clock import FixedClock
from billing_service.config import Settings
from tests.cli_subprocess import serve, service_env
from tests.conftest import Client, create_operator_key, make_client
from tests.end_users.end_user_helpers import PASSWORD, Signed, create_user, sign_in
from tests.rpc_errors import failure_of

WRONG = "not the password at all"
NEW_PASSWORD = "a much longer passphrase 42"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Hashes slow enough that parallel guesses overlap their verifications.
    return settings.model_copy(
        update={
            "password_time_cost": 2,
            "password_memory_kib": 4096,
            "secrets_key": SecretStr(Fernet.generate_key().decode()),
        }
    )


async def outcome(call: object) -> str:
    """OK, or the refusal's reason."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return failure_of(error).reason or error.code().name
    return "OK"


def sign_in_call(
    client: Client, email: str, password: str, metadata: tuple[tuple[str, str], ...] = ()
) -> object:
    return user_pb2_grpc.UserServiceStub(client.channel).SignIn(
        user_pb2.SignInRequest(email=email, password=password, user_agent="guesser"),
        metadata=[*client.auth, *metadata],
    )


async def test_parallel_guesses_evaluate_at_most_five_and_the_right_one_last_is_refused(
    client: Client,
) -> None:
    await create_user(client, "ada@example.com")
    guesses = [sign_in_call(client, "ada@example.com", f"{WRONG} {i}") for i in range(29)]
    guesses.append(sign_in_call(client, "ada@example.com", PASSWORD))
    outcomes = Counter(await asyncio.gather(*(outcome(call) for call in guesses)))

    evaluated = outcomes["INVALID_CREDENTIALS"] + outcomes["OK"]
    assert evaluated == 5, outcomes
    assert outcomes["SIGN_IN_THROTTLED"] == 30 - evaluated, outcomes


async def test_forty_parallel_wrong_guesses_are_throttled_past_five(client: Client) -> None:
    await create_user(client, "ada@example.com")
    guesses = [sign_in_call(client, "ada@example.com", f"{WRONG} {i}") for i in range(40)]
    outcomes = Counter(await asyncio.gather(*(outcome(call) for call in guesses)))

    assert outcomes["INVALID_CREDENTIALS"] == 5, outcomes
    assert outcomes["SIGN_IN_THROTTLED"] == 40 - outcomes["INVALID_CREDENTIALS"], outcomes
    # Closed now, to the right password too.
    assert await outcome(sign_in_call(client, "ada@example.com", PASSWORD)) == "SIGN_IN_THROTTLED"


class TestPerClientAddress:
    """A second limit, on the failures from one client address (any email):
    the gRPC peer's, or the x-forwarded-for it sends when it is a trusted
    proxy (loopback by default: the gateway beside the server)."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"sign_in_address_max_failures": 3})

    async def test_failures_from_one_address_close_it_for_every_email(self, client: Client) -> None:
        for n in range(4):
            await create_user(client, f"user{n}@example.com")
        for n in range(3):
            wrong = sign_in_call(client, f"user{n}@example.com", WRONG)
            assert await outcome(wrong) == "INVALID_CREDENTIALS"
        right = sign_in_call(client, "user3@example.com", PASSWORD)
        refused = await outcome(right)
        assert refused == "SIGN_IN_THROTTLED"
        # Another client behind the trusted proxy (loopback) is not.
        elsewhere = (("x-forwarded-for", "198.51.100.7"),)
        assert await outcome(sign_in_call(client, "user3@example.com", PASSWORD, elsewhere)) == "OK"

    async def test_parallel_guesses_over_many_emails_evaluate_at_most_the_limit(
        self, client: Client
    ) -> None:
        for n in range(20):
            await create_user(client, f"user{n}@example.com")
        guesses = [sign_in_call(client, f"user{n}@example.com", WRONG) for n in range(20)]
        outcomes = Counter(await asyncio.gather(*(outcome(call) for call in guesses)))
        assert outcomes["INVALID_CREDENTIALS"] == 3, outcomes
        assert outcomes["SIGN_IN_THROTTLED"] == 20 - outcomes["INVALID_CREDENTIALS"], outcomes


class TestUntrustedForwarding:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"sign_in_address_max_failures": 3, "trusted_proxies": ""}
        )

    async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(
        self, client: Client
    ) -> None:
        await create_user(client, "ada@example.com")
        for n in range(3):
            claimed = (("x-forwarded-for", f"198.51.100.{n}"),)
            wrong = sign_in_call(client, f"nobody{n}@example.com", WRONG, claimed)
            assert await outcome(wrong) == "INVALID_CREDENTIALS"
        claimed = (("x-forwarded-for", "198.51.100.99"),)
        right = sign_in_call(client, "ada@example.com", PASSWORD, claimed)
        assert await outcome(right) == "SIGN_IN_THROTTLED"


# -- the password asked again ------------------------------------------------


def change_password(me: Signed, current: str) -> object:
    return me.settings.ChangePassword(
        settings_pb2.ChangePasswordRequest(current_password=current, new_password=NEW_PASSWORD),
        metadata=me.auth,
    )


def request_email_change(me: Signed, password: str) -> object:
    return me.settings.RequestEmailChange(
        settings_pb2.RequestEmailChangeRequest(new_email="new@example.com", password=password),
        metadata=me.auth,
    )


def request_deletion(me: Signed, password: str) -> object:
    return me.settings.RequestDeletion(
        settings_pb2.RequestDeletionRequest(password=password, confirm_text="DELETE MY ACCOUNT"),
        metadata=me.auth,
    )


async def test_wrong_passwords_asked_again_revoke_the_session_and_throttle_the_account(
    client: Client, clock: FixedClock
) -> None:
    await create_user(client, "ada@example.com")
    me = await sign_in(client, "ada@example.com")
    for guess in range(4):
        asked = (change_password, request_email_change, request_deletion)[guess % 3]
        assert await outcome(asked(me, f"{WRONG} {guess}")) == "WRONG_PASSWORD"
    # The fifth wrong one revokes the session that guessed.
    assert await outcome(change_password(me, f"{WRONG} 4")) == "WRONG_PASSWORD"
    for _ in range(10):
        assert await outcome(change_password(me, WRONG)) == "UNAUTHENTICATED"
    assert await outcome(change_password(me, PASSWORD)) == "UNAUTHENTICATED"
    # A new session finds the account's re-checks closed, right password or not.
    again = await sign_in(client, "ada@example.com")
    for asked in (change_password, request_email_change, request_deletion):
        assert await outcome(asked(again, PASSWORD)) == "PASSWORD_CHECK_THROTTLED"
    clock.set(clock.now() + timedelta(minutes=15, seconds=1))
    assert await outcome(change_password(again, PASSWORD)) == "OK"


async def test_parallel_guesses_from_many_sessions_evaluate_at_most_five(client: Client) -> None:
    await create_user(client, "ada@example.com")
    sessions = [await sign_in(client, "ada@example.com") for _ in range(4)]
    asks = (change_password, request_email_change, request_deletion)
    guesses = [asks[n % 3](sessions[n % 4], f"{WRONG} {n}") for n in range(15)]
    guesses.append(change_password(sessions[0], PASSWORD))
    outcomes = Counter(await asyncio.gather(*(outcome(call) for call in guesses)))

    evaluated = outcomes["WRONG_PASSWORD"] + outcomes["OK"]
    assert evaluated == 5, outcomes
    refused = outcomes["PASSWORD_CHECK_THROTTLED"] + outcomes["UNAUTHENTICATED"]
    assert refused == 16 - evaluated, outcomes


async def test_two_processes_on_one_database_evaluate_five_between_them(
    app: App, database_url: str, tmp_path: Path
) -> None:
    key = await create_operator_key(app, "acme")
    env = service_env(
        database_url,
        background_jobs="off",
        password_time_cost="2",
        password_memory_kib="4096",
        password_parallelism="1",
    )
    async with (
        serve(env, tmp_path) as first,
        serve(env, tmp_path) as second,
        grpc.aio.insecure_channel(first.target) as one,
        grpc.aio.insecure_channel(second.target) as two,
    ):
        clients = [make_client(one, key), make_client(two, key)]
        await create_user(clients[0], "ada@example.com")
        guesses = [
            sign_in_call(clients[n % 2], "ada@example.com", f"{WRONG} {n}") for n in range(30)
        ]
        outcomes = Counter(await asyncio.gather(*(outcome(call) for call in guesses)))
        right = [sign_in_call(c, "ada@example.com", PASSWORD) for c in clients]
        late = [await outcome(call) for call in right]

    assert outcomes["INVALID_CREDENTIALS"] == 5, outcomes
    assert outcomes["SIGN_IN_THROTTLED"] == 30 - 5, outcomes
    assert late == ["SIGN_IN_THROTTLED", "SIGN_IN_THROTTLED"]


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    assert Settings(trusted_proxies=" 10.0.0.0/8 , 192.0.2.1,::1").trusted_proxies
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.0/8,gateway.internal")
