"""An email change's mailed code, over real gRPC on both databases: never in
plain text in the database (the outbox keeps it sealed with the secrets box,
then clears it once sent), and said to be queued, not sent, when there is no
mail server. The rows are read directly from the database."""

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from billing.v1 import settings_pb2
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from billing_service.app import App
from billing_service.config import Settings
from billing_service.storage.secrets import SecretBox
from tests.conftest import Client
from tests.end_users.end_user_helpers import (
    PASSWORD,
    Signed,
    SmtpServer,
    create_user,
    eventually,
    sign_in,
    smtp_server,
)
from tests.rpc_errors import failure_of


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "secrets_key": SecretStr(Fernet.generate_key().decode()),
            "delivery_poll_seconds": 0.05,
        }
    )


async def rows(database_url: str, query: str) -> list[Any]:
    """What a reader of the database sees, through a connection of its own."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(query))).all())
    finally:
        await engine.dispose()


async def ask(me: Signed, new_email: str) -> settings_pb2.RequestEmailChangeResponse:
    asked: settings_pb2.RequestEmailChangeResponse = await me.settings.RequestEmailChange(
        settings_pb2.RequestEmailChangeRequest(new_email=new_email, password=PASSWORD),
        metadata=me.auth,
    )
    return asked


def code_in(body: str) -> str:
    return next(word for word in body.split() if word.startswith("bec_"))


async def test_without_a_mail_server_the_code_waits_sealed_in_the_outbox(
    client: Client, database_url: str, settings: Settings
) -> None:
    await create_user(client, "ada@example.com")
    me = await sign_in(client, "ada@example.com")
    await ask(me, "new@example.com")

    queued = await rows(database_url, "SELECT body FROM deliveries WHERE channel = 'email'")
    assert len(queued) == 1
    assert "bec_" not in queued[0].body
    changes = await rows(database_url, "SELECT * FROM email_changes")
    assert len(changes) == 1 and "bec_" not in str(tuple(changes[0]))
    # Sealed, not lost: the key opens it, and its code verifies.
    code = code_in(SecretBox(settings.secrets_key).open(queued[0].body))
    verified = await me.settings.VerifyEmailChange(
        settings_pb2.VerifyEmailChangeRequest(token=code), metadata=me.auth
    )
    assert verified.email == "new@example.com"


async def test_without_a_mail_server_the_answer_says_queued_and_the_log_why_once(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await create_user(client, "ada@example.com")
    me = await sign_in(client, "ada@example.com")
    for new_email in ("new@example.com", "other@example.com"):
        asked = await ask(me, new_email)
        assert "queued" in asked.message and "was sent" not in asked.message
    said = [
        r
        for r in caplog.records
        if r.name == "billing_service.end_users.accounts" and "BILLING_SMTP_HOST" in r.getMessage()
    ]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert "bec_" not in caplog.text


class TestWithAMailServer:
    @pytest.fixture
    def smtp(self) -> Iterator[SmtpServer]:
        yield from smtp_server()

    @pytest.fixture
    def settings(self, settings: Settings, smtp: SmtpServer) -> Settings:
        return settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_security": "none"}
        )

    async def test_the_code_is_mailed_in_clear_and_gone_from_the_outbox_once_sent(
        self, client: Client, database_url: str, smtp: SmtpServer
    ) -> None:
        await create_user(client, "ada@example.com")
        me = await sign_in(client, "ada@example.com")
        asked = await ask(me, "new@example.com")
        assert asked.message == "A confirmation code was sent to the new address."

        async def mailed() -> bool:
            return bool(smtp.messages)

        assert await eventually(mailed)
        code = code_in(smtp.messages[0].get_payload(decode=True).decode())  # type: ignore[union-attr]

        async def settled() -> list[Any]:
            query = "SELECT body FROM deliveries WHERE delivered_at IS NOT NULL"
            return await rows(database_url, query)

        assert [row.body for row in await eventually(settled)] == [""]
        assert code not in str(await rows(database_url, "SELECT * FROM email_changes"))


class TestWithoutASecretsKey:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"secrets_key": None})

    async def test_an_email_change_is_refused_and_nothing_is_kept(
        self, app: App, client: Client, database_url: str
    ) -> None:
        await create_user(client, "ada@example.com")
        me = await sign_in(client, "ada@example.com")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ask(me, "new@example.com")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert failure_of(refused.value).reason == "SECRETS_KEY_MISSING"
        assert await rows(database_url, "SELECT * FROM deliveries") == []
        assert await rows(database_url, "SELECT * FROM email_changes") == []
