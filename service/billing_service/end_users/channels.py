"""The three ways a delivery travels. Each send either returns (delivered)
or raises DeliveryFailed, saying whether trying again could help."""

import asyncio
import hashlib
import hmac
import ipaddress
import smtplib
import time
from collections.abc import Sequence
from email.message import EmailMessage

import httpx

from ..domain.networks import IPAddress, IPNetwork
from .addresses import (
    Resolve,
    is_allowed,
    literal_address,
    refusal,
    resolve_host,
)
from .alerts import Delivery

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
    secret; anything but a 2xx is tried again.

    The host is resolved here (`resolve`), every address it has checked
    (addresses.py), and the post connects to the address checked, with the
    URL's host as Host and TLS server name: a name cannot resolve to a global
    address for the check and to an inner one for the connection (DNS
    rebinding). An address refused is a final failure, saying why. The
    client must not pool connections (a connection made for one name would
    serve another name of the same address) nor go through a proxy."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        allowed: Sequence[IPNetwork] = (),
        resolve: Resolve = resolve_host,
    ) -> None:
        self._client = client
        self._allowed = allowed
        self.resolve = resolve

    async def send(self, delivery: Delivery, secret: str) -> None:
        try:
            url = httpx.URL(delivery.target)
        except httpx.InvalidURL:
            raise DeliveryFailed("webhook refused: not a URL", retry=False) from None
        address = await self._address(url)
        body = delivery.body.encode()
        headers = {
            "host": url.netloc.decode("ascii"),
            "content-type": "application/json",
            "billing-signature": sign(secret, body, int(time.time())),
            "billing-delivery-id": f"dlv_{delivery.id}",
        }
        pinned = url.copy_with(host=str(address))
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        try:
            response = await self._client.post(
                pinned, content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"webhook: {type(error).__name__}", retry=True) from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"webhook answered {response.status_code}", retry=True)

    async def _address(self, url: httpx.URL) -> IPAddress:
        """The address to post to: the URL's, or its host's, once checked."""
        host = url.raw_host.decode("ascii")
        if url.scheme not in ("https", "http") or not host:
            raise DeliveryFailed("webhook refused: not an http(s) URL", retry=False)
        literal = literal_address(host)
        if literal is not None:
            found = [literal]
        else:
            found = await self._resolved(host, url.port or _PORTS[url.scheme])
        for address in found:
            refused = refusal(host, address, self._allowed)
            if refused is not None:
                raise DeliveryFailed(f"webhook refused: {refused}", retry=False)
        if url.scheme == "http" and not is_allowed(found[0], self._allowed):
            raise DeliveryFailed(f"webhook refused: http:// to {host}, not https", retry=False)
        return found[0]

    async def _resolved(self, host: str, port: int) -> list[IPAddress]:
        """Every address of `host`; a name that does not resolve may yet."""
        try:
            answers = await self.resolve(host, port)
            found = [ipaddress.ip_address(answer.partition("%")[0]) for answer in answers]
        except (OSError, UnicodeError, ValueError) as error:
            raise DeliveryFailed(f"webhook: cannot resolve {host}: {error}", retry=True) from None
        if not found:
            raise DeliveryFailed(f"webhook: {host} has no address", retry=True)
        return found


_PORTS = {"https": 443, "http": 80}


def sign(secret: str, body: bytes, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
