"""What the end users' tests share: stubs for a signed-in user, a local
SMTP server (aiosmtpd) and a fake of Expo's push API and of an operator's
webhook receiver, both recording what they were sent."""

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from billing.v1 import (
    notification_pb2_grpc,
    settings_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)

from billing_service.clock import FixedClock
from tests.cli_subprocess import free_port
from tests.conftest import Client

PASSWORD = "correct horse battery staple"


@dataclass
class Signed:
    """A signed-in end user's stubs."""

    token: str
    session_id: str
    user_id: str
    settings: settings_pb2_grpc.SettingsServiceStub
    notifications: notification_pb2_grpc.NotificationServiceStub

    @property
    def auth(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")]


async def create_user(
    client: Client, email: str, user_id: str = "", password: str = PASSWORD
) -> str:
    users = user_pb2_grpc.UserServiceStub(client.channel)
    created = await users.CreateUser(
        user_pb2.CreateUserRequest(email=email, password=password, user_id=user_id),
        metadata=client.auth,
    )
    made: str = created.user.id
    return made


async def sign_in(
    client: Client, email: str, password: str = PASSWORD, agent: str = "pytest/1"
) -> Signed:
    users = user_pb2_grpc.UserServiceStub(client.channel)
    signed = await users.SignIn(
        user_pb2.SignInRequest(
            email=email, password=password, ip_address="203.0.113.7", user_agent=agent
        ),
        metadata=client.auth,
    )
    return Signed(
        token=signed.session_token,
        session_id=signed.session_id,
        user_id=signed.user.id,
        settings=settings_pb2_grpc.SettingsServiceStub(client.channel),
        notifications=notification_pb2_grpc.NotificationServiceStub(client.channel),
    )


async def eventually(
    check: Callable[[], Any], seconds: float = 10.0, clock: FixedClock | None = None
) -> Any:
    """Poll an async `check` until it answers something truthy; with a
    `clock`, moving it on 10 s a poll (retries come due)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        if clock is not None:
            clock.set(clock.now() + timedelta(seconds=10))
        await asyncio.sleep(0.05)


# -- a local SMTP server --------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    inbox: _Inbox

    @property
    def messages(self) -> list[Message]:
        return self.inbox.messages


def smtp_server() -> Iterator[SmtpServer]:
    inbox = _Inbox()
    # aiosmtpd's controller checks it serves by connecting to its port: a
    # free port is found first rather than port 0.
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(port, inbox)
    finally:
        controller.stop()


# -- fakes of Expo's push API and of a webhook receiver ------------------------


@dataclass
class Recorder:
    """An HTTP server on 127.0.0.1 that records every POST and answers
    what `answer` says (status, JSON body) for it."""

    answer: Callable[[bytes], tuple[int, Any]]
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def recorder(answer: Callable[[bytes], tuple[int, Any]]) -> Iterator[Recorder]:
    record = Recorder(answer)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            if len(body) < length:  # the sender died mid-request: nothing was delivered
                return
            record.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status, payload = record.answer(body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()


def expo_ok(body: bytes) -> tuple[int, Any]:
    messages = json.loads(body)
    return 200, {"data": [{"status": "ok", "id": f"ticket-{i}"} for i, _ in enumerate(messages)]}
