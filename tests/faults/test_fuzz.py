"""Random messages for every RPC of the service (billing.v1 and Envoy's
rate-limit service), from their descriptors, through real gRPC to a real
`billing-service serve`: no answer is UNKNOWN or INTERNAL, and the server
logs no traceback. A few hundred cases in `make test`; thousands under
`make soak`."""

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from billing.v1 import account_kit_pb2, plan_pb2, subscription_pb2, usage_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..cli_subprocess import BILLING_SERVICE, free_port, service_env
from .harness import NEVER, SOAK
from .messages import messages

METHODS = [
    method
    for module, service in (
        (account_kit_pb2, "AccountKitService"),
        (plan_pb2, "PlanService"),
        (subscription_pb2, "SubscriptionService"),
        (usage_pb2, "UsageService"),
        (rls_pb2, "RateLimitService"),
    )
    for method in module.DESCRIPTOR.services_by_name[service].methods
]
EXAMPLES = 400 if SOAK else 12


class Server:
    def __init__(self, target: str, key: str, log: Path) -> None:
        self.target, self.key, self.log = target, key, log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`billing-service serve` on a SQLite file, with an operator and its key."""
    directory = tmp_path_factory.mktemp("fuzz")
    env = service_env(f"sqlite+aiosqlite:///{directory / 'billing.db'}")
    run = [BILLING_SERVICE]
    for args in (["migrate"], ["operators", "create", "acme"]):
        subprocess.run([*run, *args], env=env, check=True, capture_output=True, timeout=60)
    made = subprocess.run(
        [*run, "keys", "create", "--operator", "acme"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    key = made.stdout.splitlines()[-1]
    port = free_port()
    log = directory / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*run, "serve"],
            env={**env, "BILLING_GRPC_ADDR": f"127.0.0.1:{port}", "BILLING_HTTP_ADDR": ""},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_serving(f"127.0.0.1:{port}", process)
        yield Server(f"127.0.0.1:{port}", key, log)
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text()


def _wait_serving(target: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(target) as channel:
        while time.monotonic() < deadline:
            assert process.poll() is None, "billing-service serve exited"
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return
            except grpc.FutureTimeoutError:
                continue
    raise TimeoutError("billing-service serve never became ready")


def _call(server: Server, method: MethodDescriptor, request: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(server.target) as channel:
        rpc = channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=None,
            response_deserializer=None,
        )
        try:
            rpc(request, metadata=[("authorization", f"Bearer {server.key}")], timeout=10)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.containing_service.name}.{m.name}")
def test_random_messages_are_answered_cleanly(server: Server, method: MethodDescriptor) -> None:
    request_class = GetMessageClass(method.input_type)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(messages(method.input_type))
    def check(request: object) -> None:
        assert isinstance(request, request_class)
        code = _call(server, method, request.SerializeToString())
        assert code not in NEVER, (method.full_name, request)

    check()


@given(st.binary(max_size=256), st.sampled_from(METHODS))
@settings(max_examples=EXAMPLES * 10, deadline=None, database=None)
def test_raw_bytes_are_answered_cleanly(
    server: Server, data: bytes, method: MethodDescriptor
) -> None:
    assert _call(server, method, data) not in NEVER


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.containing_service.name}.{m.name}")
def test_undecodable_bytes_are_invalid_argument(server: Server, method: MethodDescriptor) -> None:
    # A field 1 of type "length-delimited" whose length runs past the end.
    assert _call(server, method, b"\x0a\xff\xff\xff\x0f") is grpc.StatusCode.INVALID_ARGUMENT
