"""BillingClient (blocking) and AsyncBillingClient (asyncio): one channel,
one bearer credential, a namespace per area (`client.billing.consume(...)`).

A call takes a request message or its fields as keyword arguments, and
`timeout` (seconds, the whole call's deadline, retries included). A call
answered UNAVAILABLE is retried, with backoff, when repeating it cannot
count twice: a request with an idempotency key (one is generated when the
caller gives none, and every attempt sends the same), or a read or upsert.
"""

from __future__ import annotations

import asyncio
import copy
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import grpc
from google.protobuf.message import Message

from . import errors
from ._methods import IDEMPOTENCY_KEY, TABLES, Rpc

DEFAULT_TIMEOUT = 10.0
Metadata = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all (1: no retry) and the exponential backoff between
    them, with full jitter."""

    attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier**attempt)
        return random.uniform(0, ceiling)


OWNER_FIELDS = ("tenant_id", "user_id", "organization_id")


def _request(
    rpc: Rpc, request: Message | None, fields: dict[str, Any], owner: dict[str, str]
) -> Message:
    if request is None:
        request = rpc.request(**fields)
    elif fields:
        raise TypeError("give a request message or its fields, not both")
    else:
        copy = rpc.request()
        copy.CopyFrom(request)  # the caller's message keeps its (empty) key
        request = copy
    if rpc.keyed and not getattr(request, IDEMPOTENCY_KEY):
        setattr(request, IDEMPOTENCY_KEY, str(uuid.uuid4()))
    named = request.DESCRIPTOR.fields_by_name
    if owner and not any(getattr(request, f) for f in OWNER_FIELDS if f in named):
        for name, value in owner.items():
            if name in named:
                setattr(request, name, value)
    return request


class _Core:
    def __init__(
        self,
        credential: str | None,
        timeout: float,
        retry: RetryPolicy,
        metadata: Metadata,
    ) -> None:
        auth = [("authorization", f"Bearer {credential}")] if credential else []
        self.extra = tuple(metadata)  # the caller's own, kept by with_credential
        self.metadata = (*auth, *self.extra)
        self.timeout = timeout
        self.retry = retry

    def attempts(self, rpc: Rpc) -> int:
        return self.retry.attempts if rpc.retriable else 1

    def deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)


def _give_up(error: grpc.RpcError, attempt: int, attempts: int, deadline: float) -> bool:
    unavailable = error.code() == grpc.StatusCode.UNAVAILABLE
    return not unavailable or attempt + 1 >= attempts or time.monotonic() >= deadline


class _Namespace:
    """A namespace's methods, as attributes: reads the table on access."""

    def __init__(self, name: str, invoke: Callable[..., Any], owner: dict[str, str]) -> None:
        self._name, self._invoke, self._table = name, invoke, TABLES[name]
        self._owner = owner

    def __getattr__(self, attribute: str) -> Callable[..., Any]:
        rpc = self._table.get(attribute)
        if rpc is None:
            raise AttributeError(f"client.{self._name} has no method {attribute!r}")

        def method(
            request: Message | None = None,
            /,
            *,
            timeout: float | None = None,
            metadata: Metadata = (),
            **fields: Any,
        ) -> Any:
            built = _request(rpc, request, fields, self._owner)
            return self._invoke(rpc, built, timeout, metadata)

        method.__name__ = attribute
        return method

    def __dir__(self) -> list[str]:
        return sorted(self._table)


class _Namespaces:
    billing: Any
    usage: Any
    plans: Any
    kits: Any
    meters: Any
    projects: Any
    subscriptions: Any
    stripe: Any
    stripe_webhooks: Any
    users: Any
    settings: Any
    notifications: Any
    alerts: Any

    def __getattr__(self, name: str) -> Any:
        # Only for names _bind did not set; it lets type checkers accept the
        # namespaces of services newer than the annotations above.
        raise AttributeError(f"the client has no namespace {name!r}")

    _own_channel: bool

    def _bind(self, invoke: Callable[..., Any], owner: dict[str, str] | None = None) -> None:
        for name in TABLES:
            setattr(self, name, _Namespace(name, invoke, dict(owner or {})))

    def _scoped(self, owner: dict[str, str]) -> Self:
        scoped = copy.copy(self)  # the same channel, credential and policy
        scoped._own_channel = False
        scoped._bind(scoped._invoke, owner)
        return scoped

    def for_user(self, user_id: str) -> Self:
        """This client for one end user (the seed's `forUser(id)`): a call
        whose request names an owner, and gives none, names this user."""
        return self._scoped({"user_id": user_id})

    def for_organization(self, organization_id: str) -> Self:
        """This client for one organization, as for_user."""
        return self._scoped({"organization_id": organization_id})


class BillingClient(_Namespaces):
    """A blocking client. `credential`: an operator's API key, or an end
    user's session token (for `settings`); `target`: host:port."""

    def __init__(
        self,
        target: str,
        credential: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        metadata: Metadata = (),
        channel: grpc.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._own_channel = channel is None
        if channel is None:
            channel = (
                grpc.secure_channel(target, credentials)
                if credentials is not None
                else grpc.insecure_channel(target)
            )
        self.target, self.channel = target, channel
        self._core = _Core(credential, timeout, retry, metadata)
        self._bind(self._invoke)

    def with_credential(self, credential: str) -> BillingClient:
        """A client over the same channel, sending another credential (an
        end user's session token, say)."""
        core = self._core
        return BillingClient(
            self.target,
            credential,
            timeout=core.timeout,
            retry=core.retry,
            metadata=core.extra,
            channel=self.channel,
        )

    def _invoke(
        self, rpc: Rpc, request: Message, timeout: float | None, metadata: Metadata
    ) -> Message:
        call = self.channel.unary_unary(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        deadline, attempts = self._core.deadline(timeout), self._core.attempts(rpc)
        for attempt in range(attempts):
            try:
                response: Message = call(
                    request,
                    timeout=max(deadline - time.monotonic(), 0),
                    metadata=(*self._core.metadata, *metadata),
                )
                return response
            except grpc.RpcError as error:
                if _give_up(error, attempt, attempts, deadline):
                    raise errors.from_rpc_error(error) from None
            time.sleep(min(self._core.retry.backoff(attempt), max(deadline - time.monotonic(), 0)))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._own_channel:
            self.channel.close()

    def __enter__(self) -> BillingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncBillingClient(_Namespaces):
    """The asyncio client: the same namespaces, each method a coroutine."""

    def __init__(
        self,
        target: str,
        credential: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        metadata: Metadata = (),
        channel: grpc.aio.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._own_channel = channel is None
        if channel is None:
            channel = (
                grpc.aio.secure_channel(target, credentials)
                if credentials is not None
                else grpc.aio.insecure_channel(target)
            )
        self.target, self.channel = target, channel
        self._core = _Core(credential, timeout, retry, metadata)
        self._bind(self._invoke)

    def with_credential(self, credential: str) -> AsyncBillingClient:
        """A client over the same channel, sending another credential."""
        core = self._core
        return AsyncBillingClient(
            self.target,
            credential,
            timeout=core.timeout,
            retry=core.retry,
            metadata=core.extra,
            channel=self.channel,
        )

    def _invoke(
        self, rpc: Rpc, request: Message, timeout: float | None, metadata: Metadata
    ) -> Awaitable[Message]:
        return self._call(rpc, request, timeout, metadata)

    async def _call(
        self, rpc: Rpc, request: Message, seconds: float | None, metadata: Metadata
    ) -> Message:
        call = self.channel.unary_unary(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        deadline, attempts = self._core.deadline(seconds), self._core.attempts(rpc)
        for attempt in range(attempts):
            try:
                response: Message = await call(
                    request,
                    timeout=max(deadline - time.monotonic(), 0),
                    metadata=(*self._core.metadata, *metadata),
                )
                return response
            except grpc.RpcError as error:
                if _give_up(error, attempt, attempts, deadline):
                    raise errors.from_rpc_error(error) from None
            await asyncio.sleep(
                min(self._core.retry.backoff(attempt), max(deadline - time.monotonic(), 0))
            )
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._own_channel:
            await self.channel.close()

    async def __aenter__(self) -> AsyncBillingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
