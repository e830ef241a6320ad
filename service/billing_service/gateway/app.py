"""The ASGI application: one Starlette route per annotated path, each turning
the HTTP request into the RPC's request message, calling the RPC over a
grpc.aio channel with the caller's `Authorization` header, its address
(`x-forwarded-for`), the request's id and its trace context as metadata
(correlation.py), and answering with the response message or the error as
JSON."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from billing.v1 import stripe_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..catalog.keys import MAX_AUTHORIZATION
from ..forwarding import FORWARDED_FOR
from ..stripe.accounts import WEBHOOK_PATH
from .api_browser import api_browser_routes
from .correlation import RequestIds, TraceContext, forwarded_metadata
from .errors import GatewayError, error_response, gateway_error_response, rpc_error_response
from .json_numbers import NumberOutOfBounds, load_json
from .jsonmap import (
    ExactJSONResponse,
    JsonMappingError,
    is_repeated,
    merge_json,
    message_to_json,
)
from .openapi import openapi_document
from .routes import Binding

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_SECONDS = 30.0
MAX_BODY_BYTES = 1024 * 1024
MAX_FORWARDED_FOR = 1024  # a longer chain that came in is dropped, not passed on


def create_app(
    channel: grpc.aio.Channel,
    bindings: Sequence[Binding],
    *,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    trace_context: TraceContext = None,
) -> Starlette:
    by_path: dict[str, dict[str, _Rpc]] = {}
    for binding in bindings:
        rpc = _Rpc(binding, channel, deadline_seconds, trace_context)
        by_path.setdefault(binding.starlette_path, {})[binding.http_method] = rpc
    # A path with a custom verb (`{key}:archive`) before one whose variable
    # would take its last segment whole: the route that matches a path but
    # not the method is the first one, and its methods make the 405's Allow.
    ordered = sorted(by_path.items(), key=lambda item: "}:" not in item[0])
    routes = [_route(path, rpcs) for path, rpcs in ordered]
    document = openapi_document(bindings)

    async def serve_openapi(_: Request) -> Response:
        return JSONResponse(document)

    routes.append(Route("/openapi.json", serve_openapi, methods=["GET"]))
    routes.append(_stripe_webhook_route(channel, deadline_seconds, trace_context))
    for route in routes:
        # Starlette adds HEAD to GET routes; only the documented methods are served.
        if route.methods is not None:
            route.methods.discard("HEAD")
    app = Starlette(
        routes=[*routes, *api_browser_routes()],
        middleware=[Middleware(RequestIds)],
        exception_handlers={HTTPException: _http_exception, Exception: _unhandled},
    )
    # A trailing slash is an unknown route, not a redirect.
    app.router.redirect_slashes = False
    return app


def _route(path: str, rpcs: Mapping[str, "_Rpc"]) -> Route:
    async def endpoint(request: Request) -> Response:
        return await rpcs[request.method].serve(request)

    return Route(path, endpoint, methods=list(rpcs))


class _Rpc:
    """One binding, ready to serve."""

    def __init__(
        self,
        binding: Binding,
        channel: grpc.aio.Channel,
        deadline: float,
        trace_context: TraceContext,
    ) -> None:
        self.binding = binding
        self.deadline = deadline
        self.trace_context = trace_context

        self.call = channel.unary_unary(
            binding.grpc_path,
            request_serializer=binding.request_class.SerializeToString,
            response_deserializer=binding.response_class.FromString,
        )

    async def serve(self, request: Request) -> Response:
        try:
            metadata = (
                *_metadata(request),
                *_forwarded_for(request),
                *forwarded_metadata(request, self.trace_context),
            )
            message = await self._request_message(request)
            response: Message = await self.call(message, metadata=metadata, timeout=self.deadline)
        except GatewayError as error:
            return gateway_error_response(error)
        except grpc.aio.AioRpcError as error:
            return rpc_error_response(error)
        return ExactJSONResponse(message_to_json(response))

    async def _request_message(self, request: Request) -> Message:
        binding = self.binding
        message = binding.request_class()
        try:
            if binding.body == "*":
                merge_json(await _json_object(request), message)
            elif binding.body:
                merge_json({binding.body: await _json_value(request)}, message)
            elif await _has_body(request):
                raise GatewayError(
                    400, "invalid_argument", f"{request.method} {request.url.path} takes no body"
                )
            merge_json(_query_values(binding, request), message)
            merge_json(_path_values(binding, request.path_params), message)
        except JsonMappingError as error:
            raise GatewayError(400, "invalid_argument", str(error)) from error
        return message


def _stripe_webhook_route(
    channel: grpc.aio.Channel, deadline: float, trace_context: TraceContext
) -> Route:
    """POST /v1/stripe/webhooks/{operator_id}: Stripe's raw body and its
    Stripe-Signature header, passed to StripeWebhookService as they came
    (the signature is over the exact bytes; no API key is asked for)."""
    call = channel.unary_unary(
        "/billing.v1.StripeWebhookService/HandleStripeWebhook",
        request_serializer=stripe_pb2.HandleStripeWebhookRequest.SerializeToString,
        response_deserializer=stripe_pb2.HandleStripeWebhookResponse.FromString,
    )

    async def endpoint(request: Request) -> Response:
        operator = request.path_params["operator_id"]
        try:
            if not (operator.isascii() and operator.isdigit()) or len(operator) > 10:
                raise GatewayError(404, "not_found", f"no Stripe webhook at {request.url.path}")
            message = stripe_pb2.HandleStripeWebhookRequest(
                operator_id=int(operator),
                payload=await _read_body(request),
                signature=request.headers.get("stripe-signature", ""),
            )
            response = await call(
                message, metadata=forwarded_metadata(request, trace_context), timeout=deadline
            )
        except GatewayError as error:
            return gateway_error_response(error)
        except grpc.aio.AioRpcError as error:
            return rpc_error_response(error)
        return ExactJSONResponse(message_to_json(response))

    return Route(WEBHOOK_PATH, endpoint, methods=["POST"])


def _metadata(request: Request) -> tuple[tuple[str, str], ...]:
    """The call's gRPC metadata: the Authorization header, checked as HTTP
    sees it before it reaches gRPC (whose own limits on metadata would answer
    an oversized one with RESOURCE_EXHAUSTED)."""
    authorization = request.headers.get("authorization")
    if authorization is None:
        raise GatewayError(
            401,
            "unauthenticated",
            "missing Authorization header: send 'Authorization: Bearer <key>'",
        )
    if len(authorization) > MAX_AUTHORIZATION:
        raise GatewayError(401, "unauthenticated", "the Authorization header is too long")
    # gRPC metadata values are printable ASCII; anything else cannot be a key.
    if not authorization.isascii() or not authorization.isprintable():
        raise GatewayError(401, "unauthenticated", "malformed Authorization header")
    return (("authorization", authorization),)


def _forwarded_for(request: Request) -> tuple[tuple[str, str], ...]:
    """x-forwarded-for as the server reads it (forwarding.py): the chain that
    came in, if it can travel as metadata, with the HTTP client's address
    appended. The server believes it only from a trusted proxy."""
    if request.client is None:
        return ()
    came = ",".join(request.headers.getlist("x-forwarded-for"))
    if len(came) > MAX_FORWARDED_FOR or not (came.isascii() and came.isprintable()):
        came = ""
    chain = f"{came}, {request.client.host}" if came.strip() else request.client.host
    return ((FORWARDED_FOR, chain),)


def _path_values(binding: Binding, params: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for variable in binding.path_variables:
        *parents, leaf = variable.field_path
        target = values
        for parent in parents:
            target = target.setdefault(parent.name, {})
        target[leaf.name] = _text_value(leaf, params[variable.param], variable.name)
    return values


def _query_values(binding: Binding, request: Request) -> dict[str, Any]:
    fields: dict[str, FieldDescriptor] = {}
    for query_field in binding.query_fields:
        fields[query_field.name] = fields[query_field.json_name] = query_field
    aliases = dict(binding.query_aliases)
    fields.update(aliases)
    # Keyed by the name the client used, so that errors name it that way too
    # (an alias by its field's: the message has no field of the alias' name).
    values: dict[str, Any] = {}
    given: dict[str, str] = {}  # field name -> the name it was given by
    for name in request.query_params:
        field = fields.get(name)
        if field is None:
            raise GatewayError(400, "invalid_argument", f"unknown query parameter '{name}'")
        texts = request.query_params.getlist(name)
        if field.name in given:
            raise GatewayError(
                400,
                "invalid_argument",
                f"query parameters '{given[field.name]}' and '{name}' are one field: give one",
            )
        if len(texts) > 1 and not is_repeated(field):
            raise GatewayError(
                400, "invalid_argument", f"query parameter '{name}' is given more than once"
            )
        given[field.name] = name
        key = field.name if name in aliases else name
        if is_repeated(field):
            values[key] = [_text_value(field, text, name) for text in texts]
        else:
            values[key] = _text_value(field, texts[0], name)
    return values


def _text_value(field: FieldDescriptor, text: str, name: str) -> Any:
    """A path or query value as JSON; protobuf's mapping reads numbers, enums and
    timestamps from strings itself, but not booleans."""
    if field.type != FieldDescriptor.TYPE_BOOL:
        return text
    if text in ("true", "false"):
        return text == "true"
    raise GatewayError(400, "invalid_argument", f"'{name}' must be true or false, not '{text}'")


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:
                raise _too_large()
    except ClientDisconnect:
        # Nobody is left to answer: no error to log either.
        raise GatewayError(400, "client_disconnected", "the client left mid-body") from None
    return bytes(body)


def _too_large() -> GatewayError:
    return GatewayError(413, "payload_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")


async def _has_body(request: Request) -> bool:
    return bool((await _read_body(request)).strip())


async def _json_value(request: Request) -> Any:
    body = await _read_body(request)
    if not body.strip():
        return {}
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise GatewayError(
            415,
            "unsupported_media_type",
            f"the body must be JSON (application/json), not {media_type}",
        )
    try:
        return load_json(body)
    except NumberOutOfBounds as error:
        raise GatewayError(400, "invalid_argument", str(error)) from error
    except (ValueError, RecursionError) as error:
        raise GatewayError(400, "invalid_argument", f"malformed JSON body: {error}") from error


async def _json_object(request: Request) -> dict[str, Any]:
    value = await _json_value(request)
    if not isinstance(value, dict):
        raise GatewayError(400, "invalid_argument", "the body must be a JSON object")
    return value


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
        return error_response(404, "not_found", message, headers=exc.headers)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
        return error_response(405, "method_not_allowed", message, headers=exc.headers)
    code = exc.detail.lower().replace(" ", "_")
    return error_response(exc.status_code, code, exc.detail, headers=exc.headers)


async def _unhandled(request: Request, exc: Exception) -> Response:
    log.error("unhandled error serving %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal error")
