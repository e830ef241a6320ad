"""Alert webhooks reach global addresses only: a URL naming the cloud's
metadata service, a private network or this host (in any spelling the
resolver reads) is refused when set, and a name that resolves there is
refused when delivered, once, with the reason kept; the post goes to the
address checked, under the URL's own name (Host and TLS server name).

No test traffic leaves loopback: names are answered by a resolver the test
injects, and refused addresses are refused before any connection (the
direct tests' client has no network at all)."""

import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from billing.v1 import notification_pb2, notification_pb2_grpc, usage_pb2
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from sqlalchemy import select

from billing_service.app import App
from billing_service.clock import FixedClock
from billing_service.config import Settings
from billing_service.domain.networks import networks
from billing_service.end_users.alerts import Delivery
from billing_service.end_users.channels import DeliveryFailed, WebhookPoster
from billing_service.end_users.model import Channel
from billing_service.storage.engine import create_engines
from billing_service.storage.tables.end_users import deliveries
from tests.conftest import Client
from tests.end_users.end_user_helpers import eventually
from tests.gateway_fixtures import gateway_fixture, http_fixture
from tests.metering.usage_helpers import subscribe

__all__ = ["gateway_fixture", "http_fixture"]

# Refused when set, with what the refusal says.
INSIDE = [
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://metadata.google.internal/computeMetadata/v1/", "private network"),
    ("https://metadata/computeMetadata/v1/", "private network"),
    ("https://10.0.0.1/hook", "10.0.0.1 is a private address"),
    ("https://192.168.1.1/hook", "192.168.1.1 is a private address"),
    ("https://127.0.0.1:5432/", "127.0.0.1 is a loopback address"),
    ("https://localhost:50051/", "localhost (127.0.0.1) is a loopback address"),
    ("https://0177.0.0.1/", "0177.0.0.1 (127.0.0.1) is a loopback address"),
    ("https://2130706433/", "2130706433 (127.0.0.1) is a loopback address"),
    ("https://0x7f000001/", "0x7f000001 (127.0.0.1) is a loopback address"),
    ("https://127.1/", "127.1 (127.0.0.1) is a loopback address"),
    ("https://0.0.0.0/", "the unspecified address"),
    ("http://127.0.0.1:8080/", "loopback"),
    ("http://localhost:8080/", "loopback"),
    ("http://[::1]:8080/", "::1 is a loopback address"),
]


@pytest.fixture
def allow_networks() -> str:
    return ""


@pytest.fixture
def settings(settings: Settings, allow_networks: str) -> Settings:
    return settings.model_copy(
        update={
            "secrets_key": SecretStr(Fernet.generate_key().decode()),
            "delivery_poll_seconds": 0.05,
            "alert_webhook_allow_networks": allow_networks,
        }
    )


async def _set_webhook(client: Client, url: str) -> str:
    stub = notification_pb2_grpc.UsageAlertServiceStub(client.channel)
    request = notification_pb2.SetAlertWebhookRequest(url=url)
    secret: str = (await stub.SetAlertWebhook(request, metadata=client.auth)).signing_secret
    return secret


async def _refusal(client: Client, url: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _set_webhook(client, url)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, url
    return caught.value.details() or ""


async def test_a_webhook_inside_the_network_is_refused_when_set(client: Client) -> None:
    for url, why in INSIDE:
        details = await _refusal(client, url)
        assert details.startswith("url: ") and why in details, (url, details)
    # A public name is not looked up here: what it resolves to is checked
    # when an alert is delivered.
    assert (await _set_webhook(client, "https://hooks.example.com/alerts")).startswith("whsec_")


async def test_the_gateway_answers_a_webhook_inside_the_network_400(
    http: httpx.AsyncClient,
) -> None:
    response = await http.put(
        "/v1/usage-alerts/webhook", json={"url": "https://169.254.169.254/latest/meta-data/"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_argument" and "link-local" in error["message"]


@pytest.mark.parametrize("allow_networks", ["127.0.0.0/8,::1/128"])
async def test_allowed_networks_admit_a_local_receiver_and_nothing_else(client: Client) -> None:
    for url in ("http://127.0.0.1:8080/", "http://localhost:8080/", "https://0x7f000001/"):
        assert (await _set_webhook(client, url)).startswith("whsec_"), url
    for url, why in INSIDE:
        if "169.254" in url or "10.0.0.1" in url or "192.168" in url:
            assert why in await _refusal(client, url), url


# -- at delivery: names are resolved, and every address checked ---------------


async def test_a_name_resolving_inside_is_refused_once_and_the_reason_kept(
    app: App, client: Client, clock: FixedClock, database_url: str
) -> None:
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["10.0.0.1"]  # refused before any connection

    app.end_user_worker.webhooks.resolve = resolve
    await _set_webhook(client, "https://hooks.example.test/alerts")
    await subscribe(client, "t", {"seo": 10})
    await client.usage.ConsumeQuota(
        usage_pb2.ConsumeQuotaRequest(user_id="t", primitive="seo", quantity=8),
        metadata=client.auth,
    )

    async def failed() -> list[Any]:
        rows = await _webhook_deliveries(database_url)
        return rows if rows and all(row.failed_at for row in rows) else []

    rows = await eventually(failed, clock=clock)
    assert len(rows) == 1
    assert rows[0].delivered_at is None and rows[0].attempts == 1
    assert "hooks.example.test (10.0.0.1) is a private address" in rows[0].last_error
    # A final failure: due again never, however late it gets.
    clock.set(clock.now() + timedelta(days=2))
    assert await app.end_user_worker.deliver_due() == 0
    assert asked == [("hooks.example.test", 443)]


async def _webhook_deliveries(database_url: str) -> list[Any]:
    writer, reader = create_engines(database_url, 1)
    try:
        async with reader.connect() as conn:
            query = select(deliveries).where(deliveries.c.channel == Channel.WEBHOOK.value)
            return list((await conn.execute(query)).all())
    finally:
        await writer.dispose()
        await reader.dispose()


def _delivery(target: str) -> Delivery:
    return Delivery(
        operator_id=1,
        channel=Channel.WEBHOOK,
        target=target,
        subject="usage_alert",
        body='{"type": "usage_alert"}',
        id=7,
        attempts=0,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _answering(*addresses: str) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


# A name and what it resolves to; every one refused without a connection.
RESOLVED_INSIDE = [
    ("https://hooks.example.test/", ["8.8.8.8", "10.0.0.1"], "(10.0.0.1) is a private"),
    ("https://hooks.example.test/", ["::ffff:169.254.169.254"], "link-local"),
    ("https://hooks.example.test/", ["64:ff9b::a00:1"], "private"),  # NAT64 of 10.0.0.1
    ("https://hooks.example.test/", ["fd00::1"], "private"),
    ("https://hooks.example.test/", ["fe80::1%eth0"], "link-local"),
    ("https://metadata.google.internal/", ["169.254.169.254"], "link-local"),
    ("https://localhost:50051/", ["127.0.0.1", "::1"], "loopback"),
    ("https://2130706433/", [], "2130706433 (127.0.0.1) is a loopback"),  # stored long ago
    ("http://hooks.example.test/", ["8.8.8.8"], "http:// to hooks.example.test, not https"),
]


async def test_every_address_of_a_name_is_checked_before_connecting() -> None:
    sent: list[httpx.Request] = []

    def nowhere(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(nowhere)) as http:
        for target, addresses, why in RESOLVED_INSIDE:
            poster = WebhookPoster(http, (), _answering(*addresses))
            with pytest.raises(DeliveryFailed) as caught:
                await poster.send(_delivery(target), "whsec_test")
            assert not caught.value.retry and why in caught.value.reason, (target, addresses)
        # A name that does not resolve (yet) is tried again later.
        poster = WebhookPoster(http, (), _answering())
        with pytest.raises(DeliveryFailed) as caught:
            await poster.send(_delivery("https://hooks.example.test/"), "whsec_test")
        assert caught.value.retry
        assert sent == []
        # DNS64's answer for a global IPv4 address is that address: posted to.
        poster = WebhookPoster(http, (), _answering("64:ff9b::808:808"))
        await poster.send(_delivery("https://hooks.example.test/a"), "whsec_test")
    [posted] = sent
    assert (posted.url.host, posted.headers["host"]) == ("64:ff9b::808:808", "hooks.example.test")


# -- the post goes to the address checked, under the URL's name --------------


@dataclass
class TlsReceiver:
    port: int
    ca: bytes
    server_names: list[str | None] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[TlsReceiver]:
    """An HTTPS server on 127.0.0.1 with a certificate for
    hooks.example.test only, recording the TLS server name and Host of
    every post."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.example.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example.test")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    record = TlsReceiver(0, pem)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            record.hosts.append(self.headers["host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.sni_callback = lambda sock, server_name, ctx: record.server_names.append(server_name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    record.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()


async def test_the_post_connects_to_the_address_checked_under_the_urls_name(
    tls_receiver: TlsReceiver,
) -> None:
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]  # checked once; the connection does not ask again

    trust = ssl.create_default_context(cadata=tls_receiver.ca.decode())
    async with httpx.AsyncClient(verify=trust, trust_env=False) as http:
        poster = WebhookPoster(http, networks("127.0.0.0/8"), resolve)
        port = tls_receiver.port
        await poster.send(_delivery(f"https://hooks.example.test:{port}/alerts"), "whsec_t")
        assert tls_receiver.hosts == [f"hooks.example.test:{port}"]
        assert tls_receiver.server_names == ["hooks.example.test"]
        # The certificate is checked against the URL's name, not the address.
        with pytest.raises(DeliveryFailed) as caught:
            await poster.send(_delivery(f"https://other.example.test:{port}/"), "whsec_t")
        assert caught.value.retry and len(tls_receiver.hosts) == 1
    assert asked == ["hooks.example.test", "other.example.test"]
