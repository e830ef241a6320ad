"""billing.v1.AdminService over catalog/admin.py; its guard authenticates the
admin credential (catalog/admin_auth.py) and puts it in ADMIN."""

import contextvars
from datetime import timedelta
from typing import TypeAlias

import grpc
from billing.v1 import admin_pb2, admin_pb2_grpc

from ..catalog.admin import Admin
from ..catalog.admin_auth import AdminCaller
from ..domain.errors import InvalidArgument
from ..domain.models import ApiKeyInfo, Operator
from ..domain.pagination import encode
from . import convert as c

ADMIN: contextvars.ContextVar[AdminCaller] = contextvars.ContextVar("admin")
Context: TypeAlias = grpc.aio.ServicerContext


def _by() -> str:
    return ADMIN.get().key_id


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, admin: Admin) -> None:
        self._admin = admin

    async def CreateOperator(
        self, request: admin_pb2.CreateOperatorRequest, context: Context
    ) -> admin_pb2.CreateOperatorResponse:
        operator = await self._admin.create_operator(_by(), request.name)
        return admin_pb2.CreateOperatorResponse(operator=_operator(operator))

    async def GetOperator(
        self, request: admin_pb2.GetOperatorRequest, context: Context
    ) -> admin_pb2.GetOperatorResponse:
        operator = await self._admin.get_operator(request.operator)
        return admin_pb2.GetOperatorResponse(operator=_operator(operator))

    async def ListOperators(
        self, request: admin_pb2.ListOperatorsRequest, context: Context
    ) -> admin_pb2.ListOperatorsResponse:
        page = await self._admin.list_operators(request.page_size, request.page_token)
        return admin_pb2.ListOperatorsResponse(
            operators=[_operator(o) for o in page.items], next_page_token=encode(page.next_cursor)
        )

    async def DisableOperator(
        self, request: admin_pb2.DisableOperatorRequest, context: Context
    ) -> admin_pb2.DisableOperatorResponse:
        operator = await self._admin.disable_operator(_by(), request.operator)
        return admin_pb2.DisableOperatorResponse(operator=_operator(operator))

    async def CreateApiKey(
        self, request: admin_pb2.CreateApiKeyRequest, context: Context
    ) -> admin_pb2.CreateApiKeyResponse:
        expires_at = c.optional_datetime("expire_time", request, "expire_time")
        info, key = await self._admin.create_key(
            _by(), request.operator, request.scopes, expires_at
        )
        return admin_pb2.CreateApiKeyResponse(key=_key(info, request.operator), secret=key.secret)

    async def ListApiKeys(
        self, request: admin_pb2.ListApiKeysRequest, context: Context
    ) -> admin_pb2.ListApiKeysResponse:
        keys = await self._admin.list_keys(request.operator)
        return admin_pb2.ListApiKeysResponse(keys=[_key(k, request.operator) for k in keys])

    async def RevokeApiKey(
        self, request: admin_pb2.RevokeApiKeyRequest, context: Context
    ) -> admin_pb2.RevokeApiKeyResponse:
        key = await self._admin.revoke_key(_by(), request.key_id)
        return admin_pb2.RevokeApiKeyResponse(key=await self._named(key))

    async def RotateApiKey(
        self, request: admin_pb2.RotateApiKeyRequest, context: Context
    ) -> admin_pb2.RotateApiKeyResponse:
        overlap = _duration("overlap", request)
        old, new, key = await self._admin.rotate_key(_by(), request.key_id, overlap)
        return admin_pb2.RotateApiKeyResponse(
            old_key=await self._named(old), new_key=await self._named(new), secret=key.secret
        )

    async def _named(self, key: ApiKeyInfo) -> admin_pb2.ApiKey:
        return _key(key, await self._admin.operator_name(key.operator_id))


def _duration(field: str, request: admin_pb2.RotateApiKeyRequest) -> timedelta:
    if not request.HasField(field):
        return timedelta(0)
    value = request.overlap
    if value.seconds < 0 or value.nanos < 0:
        raise InvalidArgument(field, "must not be negative")
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def _operator(operator: Operator) -> admin_pb2.Operator:
    message = admin_pb2.Operator(name=operator.name, create_time=c.timestamp(operator.created_at))
    if operator.disabled_at is not None:
        message.disable_time.CopyFrom(c.timestamp(operator.disabled_at))
    return message


def _key(key: ApiKeyInfo, operator: str) -> admin_pb2.ApiKey:
    message = admin_pb2.ApiKey(
        key_id=key.id,
        operator=operator,
        prefix=key.prefix,
        scopes=key.scopes,
        create_time=c.timestamp(key.created_at),
    )
    if key.expires_at is not None:
        message.expire_time.CopyFrom(c.timestamp(key.expires_at))
    if key.revoked_at is not None:
        message.revoke_time.CopyFrom(c.timestamp(key.revoked_at))
    return message
