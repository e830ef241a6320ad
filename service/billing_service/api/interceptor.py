"""The interceptor every billing.v1 RPC runs through: authenticate the
operator, run the servicer, and turn domain errors into statuses."""

import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ..domain.errors import DomainError
from ..logic.auth import Authenticator
from .errors import internal_status, to_status

log = logging.getLogger(__name__)

_OPERATOR: contextvars.ContextVar[int] = contextvars.ContextVar("operator_id")
API_PREFIX = "/billing.v1."


def current_operator() -> int:
    """The operator of the RPC being served (set by the interceptor)."""
    return _OPERATOR.get()


Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class ApiInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        # Health checks and reflection stay open: meshes and grpcurl need them.
        if handler is None or not method.startswith(API_PREFIX) or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(handler.unary_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, behavior: Behavior, method: str) -> Behavior:
        authenticator = self._authenticator

        async def serve(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                operator_id = await authenticator.authenticate(context.invocation_metadata() or ())
                token = _OPERATOR.set(operator_id)
                try:
                    return await behavior(request, context)
                finally:
                    _OPERATOR.reset(token)
            except DomainError as error:
                await context.abort_with_status(to_status(error))
            except grpc.aio.AbortError:
                raise
            except Exception:
                log.exception("unhandled error in %s", method)
                await context.abort_with_status(internal_status())

        return serve
