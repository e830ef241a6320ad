"""The guard every billing.v1 RPC runs through: refuse control characters in
any text of the request (api/text_rule.py), authenticate the caller, admit
an API key only to the RPCs its scopes admit (api/scopes.py), run the
servicer method, and turn domain errors into statuses (api/errors.py).

It wraps the servicers' methods directly rather than being a grpc.aio server
interceptor: an interceptor costs the server a second handler lookup and a
handler object per call, a third of an empty RPC's cost on the hot path.
Health and reflection are not guarded: meshes and grpcurl need them open.
"""

import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from ..catalog.key_store import KeyGrant
from ..domain.errors import DomainError, ScopeNotGranted
from ..end_users.model import Session
from .call_log import note_error, note_operator
from .errors import internal_status, to_status
from .scopes import admits, admitted_by, scope_needed
from .text_rule import refuse_control_characters

log = logging.getLogger(__name__)

_OPERATOR: contextvars.ContextVar[int] = contextvars.ContextVar("operator_id")
_SESSION: contextvars.ContextVar[Session] = contextvars.ContextVar("session")

Metadata = Any  # what invocation_metadata() answers: (name, value) pairs


class Gatekeeper(Protocol):
    """Who a call is, from its metadata: catalog/keys.py's Authenticator (an
    operator's key) or end_users/sessions.py's SessionAuthenticator."""

    def cached(self, metadata: Metadata) -> Any: ...

    async def authenticate(self, metadata: Metadata) -> Any: ...


Servicer = TypeVar("Servicer")
Method = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def current_operator() -> int:
    """The operator of the RPC being served (set by the guard)."""
    return _OPERATOR.get()


def current_session() -> Session:
    """The end user's session of the RPC being served (set by user_guard)."""
    return _SESSION.get()


def guard(
    servicer: Servicer,
    service: ServiceDescriptor,
    authenticator: Gatekeeper | None,
    into: contextvars.ContextVar[Any] = _OPERATOR,
) -> Servicer:
    """Wrap every RPC method of `servicer` (an instance) in the guard, which
    puts who the call is `into` a context variable (by default the
    operator's id). Without an authenticator, no credential is asked for
    (the Stripe webhook, which a signature authenticates): only errors are
    translated."""
    for method in service.methods:
        setattr(
            servicer,
            method.name,
            _guarded(getattr(servicer, method.name), method.full_name, authenticator, into),
        )
    return servicer


def user_guard(
    servicer: Servicer, service: ServiceDescriptor, authenticator: Gatekeeper
) -> Servicer:
    """The guard of end users' services: a session token, not an API key."""
    return guard(servicer, service, authenticator, _SESSION)


def _guarded(
    method: Method,
    name: str,
    authenticator: Gatekeeper | None,
    into: contextvars.ContextVar[Any],
) -> Method:
    admitted = admitted_by(name)  # an RPC missing from the registry is never served

    def admit(caller: Any) -> Any:
        """Who the call is, once an API key's scopes are found to admit it."""
        if not isinstance(caller, KeyGrant):
            return caller
        if not admits(caller.scopes, admitted):
            raise ScopeNotGranted(name, scope_needed(admitted))
        return caller.operator_id

    async def serve(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            # The request's form before its caller, as its decoding is: a
            # text no field takes costs no key lookup.
            refuse_control_characters(request)
            if authenticator is None:
                return await method(request, context)
            metadata = context.invocation_metadata() or ()
            caller = authenticator.cached(metadata)
            if caller is None:
                caller = await authenticator.authenticate(metadata)
            caller = admit(caller)
            if isinstance(caller, int | Session):
                note_operator(caller if isinstance(caller, int) else caller.operator_id)
            token = into.set(caller)
            try:
                return await method(request, context)
            finally:
                into.reset(token)
        except DomainError as error:
            note_error(error.reason)
            await context.abort_with_status(to_status(error))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unhandled error in %s", name)
            await context.abort_with_status(internal_status())

    return serve
