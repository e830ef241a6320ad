"""The client's table of RPCs, read from the vendored descriptors: every
method of every billing.v1 service, the namespace it is reached through
(`client.billing.consume`) and whether it may be retried."""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from ._proto.billing import v1 as _v1

# Every vendored file, so that a new proto file's services are here too.
FILES = tuple(
    importlib.import_module(f"{_v1.__name__}.{module.name}")
    for module in pkgutil.iter_modules(_v1.__path__)
    if module.name.endswith("_pb2")
)
SERVICES = {
    service.name: service
    for module in FILES
    for service in module.DESCRIPTOR.services_by_name.values()
}

# Each namespace: the services whose methods it offers (snake_case names),
# then short names of the seed's SDK shape (r.billing.getUsage, ...).
NAMESPACES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "billing": (
        ("UsageService", "SubscriptionService", "BillingService", "StripeService"),
        {
            "check": "CheckQuota",
            "consume": "ConsumeQuota",
            "record": "RecordUsage",
            "refund": "RefundUsage",
            "usage": "GetUsage",
            "get": "GetBilling",
            "get_status": "GetBillingStatus",
            "get_periods": "GetBillingPeriods",
        },
    ),
    "usage": (
        ("UsageService",),
        {
            "check": "CheckQuota",
            "consume": "ConsumeQuota",
            "record": "RecordUsage",
            "refund": "RefundUsage",
            "get": "GetUsage",
        },
    ),
    "plans": (
        ("PlanService",),
        {"upsert": "UpsertPlan", "get": "GetPlan", "list": "ListPlans", "archive": "ArchivePlan"},
    ),
    "kits": (
        ("AccountKitService",),
        {"upsert": "UpsertAccountKit", "get": "GetAccountKit", "list": "ListAccountKits"},
    ),
    "meters": (
        ("MeterService",),
        {"upsert": "UpsertMeter", "get": "GetMeter", "list": "ListMeters"},
    ),
    "projects": (
        ("ProjectService",),
        {"upsert": "UpsertProject", "get": "GetProject", "list": "ListProjects"},
    ),
    "subscriptions": (
        ("SubscriptionService",),
        {"set": "SetSubscription", "get": "GetSubscription", "list": "ListSubscriptions"},
    ),
    "stripe": (("StripeService",), {}),
    "stripe_webhooks": (("StripeWebhookService",), {}),
    "users": (("UserService",), {}),
    "settings": (("SettingsService",), {}),
    "notifications": (("NotificationService",), {}),
    "alerts": (("UsageAlertService",), {}),
}

# Methods that change nothing, or whose repetition changes nothing more.
SAFE_PREFIXES = ("Get", "List", "Check", "Can", "Upsert", "Set")
IDEMPOTENCY_KEY = "idempotency_key"


@dataclass(frozen=True)
class Rpc:
    path: str  # /billing.v1.UsageService/ConsumeQuota
    request: type[Message]
    response: type[Message]
    keyed: bool  # the request has an idempotency_key the client fills in
    retriable: bool


def _rpc(method: MethodDescriptor) -> Rpc:
    keyed = IDEMPOTENCY_KEY in method.input_type.fields_by_name
    return Rpc(
        path=f"/{method.containing_service.full_name}/{method.name}",
        request=message_factory.GetMessageClass(method.input_type),
        response=message_factory.GetMessageClass(method.output_type),
        keyed=keyed,
        retriable=keyed or method.name.startswith(SAFE_PREFIXES),
    )


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _unnamed_services() -> dict[str, tuple[tuple[str, ...], dict[str, str]]]:
    """A service no namespace names (one newer than this table) gets one of
    its own, named after it: AdminService is `client.admin`."""
    named = {service for services, _ in NAMESPACES.values() for service in services}
    return {
        snake(name.removesuffix("Service")): ((name,), {}) for name in SERVICES if name not in named
    }


NAMESPACES.update(_unnamed_services())


def namespace_table(namespace: str) -> dict[str, Rpc]:
    """A namespace's methods by attribute name."""
    services, aliases = NAMESPACES[namespace]
    methods = {m.name: m for s in services for m in SERVICES[s].methods}
    # Streaming methods need calls of their own: a stream RPC added to the
    # protos fails the suite's every-RPC-is-a-method test until they exist.
    unary = {
        name: m for name, m in methods.items() if not (m.client_streaming or m.server_streaming)
    }
    table = {snake(name): _rpc(method) for name, method in unary.items()}
    table.update({alias: _rpc(methods[name]) for alias, name in aliases.items()})
    return table


TABLES = {namespace: namespace_table(namespace) for namespace in NAMESPACES}
