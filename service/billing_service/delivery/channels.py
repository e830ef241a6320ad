"""The three ways a delivery travels. Each send either returns (delivered)
or raises DeliveryFailed, saying whether trying again could help."""

import asyncio
import hashlib
import hmac
import smtplib
import time
from email.message import EmailMessage

import httpx

from ..storage.alerts import Delivery

TIMEOUT_SECONDS = 10.0


class DeliveryFailed(Exception):
    def __init__(self, reason: str, *, retry: bool, forget_token: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.forget_token = forget_token


class SmtpMailer:
    """Mail through an SMTP server (stdlib smtplib, in a thread): one
    connection per mail, which a mail's rarity makes cheap enough."""

    def __init__(
        self, host: str, port: int, security: str, username: str, password: str, sender: str
    ) -> None:
        self._host, self._port, self._security = host, port, security
        self._username, self._password, self._sender = username, password, sender

    async def send(self, delivery: Delivery) -> None:
        message = EmailMessage()
        message["From"], message["To"] = self._sender, delivery.target
        message["Subject"] = delivery.subject
        message["Message-ID"] = f"<delivery-{delivery.id}@{self._sender.rpartition('@')[2]}>"
        message.set_content(delivery.body)
        try:
            await asyncio.to_thread(self._send, message)
        except smtplib.SMTPRecipientsRefused as error:
            raise DeliveryFailed(f"recipient refused: {error.recipients}", retry=False) from None
        except smtplib.SMTPResponseException as error:
            permanent = 500 <= error.smtp_code < 600
            raise DeliveryFailed(f"SMTP {error.smtp_code}", retry=not permanent) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(f"SMTP: {type(error).__name__}", retry=True) from None

    def _send(self, message: EmailMessage) -> None:
        connect = smtplib.SMTP_SSL if self._security == "tls" else smtplib.SMTP
        with connect(self._host, self._port, timeout=TIMEOUT_SECONDS) as smtp:
            if self._security == "starttls":
                smtp.starttls()
            if self._username:
                smtp.login(self._username, self._password)
            smtp.send_message(message)


class ExpoPush:
    """Expo's push API: one message per call, its ticket read. A token Expo
    no longer knows (DeviceNotRegistered) is forgotten."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self._url = url
        self._client = client

    async def send(self, delivery: Delivery) -> None:
        try:
            response = await self._client.post(
                self._url,
                content=f"[{delivery.body}]",
                headers={"content-type": "application/json", "accept": "application/json"},
            )
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"Expo: {type(error).__name__}", retry=True) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise DeliveryFailed(f"Expo answered {response.status_code}", retry=True)
        if response.status_code != 200:
            raise DeliveryFailed(f"Expo answered {response.status_code}", retry=False)
        try:
            ticket = response.json()["data"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise DeliveryFailed("Expo's answer has no ticket", retry=True) from None
        if ticket.get("status") == "ok":
            return
        code = (ticket.get("details") or {}).get("error", "")
        raise DeliveryFailed(
            f"Expo: {code or 'error'}",
            retry=code == "MessageRateExceeded",
            forget_token=code == "DeviceNotRegistered",
        )


class WebhookPoster:
    """POSTs an alert to the operator's URL, signed: `Billing-Signature:
    t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">` with the operator's
    secret; anything but a 2xx is tried again."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, delivery: Delivery, secret: str) -> None:
        body = delivery.body.encode()
        headers = {
            "content-type": "application/json",
            "billing-signature": sign(secret, body, int(time.time())),
            "billing-delivery-id": f"dlv_{delivery.id}",
        }
        try:
            response = await self._client.post(delivery.target, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"webhook: {type(error).__name__}", retry=True) from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"webhook answered {response.status_code}", retry=True)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
