"""The services the gRPC server serves, as one table: each service's
descriptor, the generated function that adds it to a server, the servicer it
is served by (made from the App), and who may call it. Registration, health
and reflection are all driven by this table (api/server.py)."""

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from billing.v1 import (
    account_kit_pb2,
    account_kit_pb2_grpc,
    admin_pb2,
    admin_pb2_grpc,
    billing_pb2,
    billing_pb2_grpc,
    meter_pb2,
    meter_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    plan_pb2,
    plan_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
    settings_pb2,
    settings_pb2_grpc,
    stripe_pb2,
    stripe_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf.descriptor import ServiceDescriptor

from ..app import App
from ..catalog.admin import Admin
from ..catalog.admin_auth import AdminAuthenticator
from ..domain.networks import networks
from .admin_servicer import ADMIN, AdminServicer
from .billing_servicers import BillingServicer, MeterServicer, ProjectServicer
from .envoy_servicer import RateLimitServicer
from .guard import guard, user_guard
from .servicers import AccountKitServicer, PlanServicer, SubscriptionServicer, UsageServicer
from .stripe_servicers import StripeServicer, StripeWebhookServicer
from .user_servicers import (
    NotificationServicer,
    SettingsServicer,
    UsageAlertServicer,
    UserServicer,
)


class Caller(Enum):
    """Who may call a service, and so which guard its methods run through."""

    OPERATOR = "an operator's API key"
    END_USER = "an end user's session token"
    # The payload's Stripe signature is checked by the servicer itself.
    STRIPE = "Stripe, by the payload's signature"
    # The admin credential (BILLING_ADMIN_KEY_HASH), never an operator's key.
    ADMIN = "the admin credential"


@dataclass(frozen=True)
class Service:
    descriptor: ServiceDescriptor
    add_to_server: Callable[[Any, Any], None]
    servicer: Callable[[App], Any]
    caller: Caller

    @property
    def name(self) -> str:
        return str(self.descriptor.full_name)

    def guarded(self, app: App) -> Any:
        """The servicer, each method behind the guard its callers pass."""
        servicer = self.servicer(app)
        if self.caller is Caller.END_USER:
            return user_guard(servicer, self.descriptor, app.sessions)
        if self.caller is Caller.ADMIN:
            admin = AdminAuthenticator(app.settings.admin_key_hash)
            return guard(servicer, self.descriptor, admin, ADMIN)
        authenticator = app.authenticator if self.caller is Caller.OPERATOR else None
        return guard(servicer, self.descriptor, authenticator)


def _descriptor(module: Any, name: str) -> ServiceDescriptor:
    descriptor: ServiceDescriptor = module.DESCRIPTOR.services_by_name[name]
    return descriptor


# The metered calls' service first: a call's method is looked up in the
# services in the order they were added.
SERVICES = (
    Service(
        _descriptor(usage_pb2, "UsageService"),
        usage_pb2_grpc.add_UsageServiceServicer_to_server,
        lambda app: UsageServicer(app.engine),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(account_kit_pb2, "AccountKitService"),
        account_kit_pb2_grpc.add_AccountKitServiceServicer_to_server,
        lambda app: AccountKitServicer(app.catalog),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(plan_pb2, "PlanService"),
        plan_pb2_grpc.add_PlanServiceServicer_to_server,
        lambda app: PlanServicer(app.catalog),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(subscription_pb2, "SubscriptionService"),
        subscription_pb2_grpc.add_SubscriptionServiceServicer_to_server,
        lambda app: SubscriptionServicer(app.subscriptions, app.clock),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(project_pb2, "ProjectService"),
        project_pb2_grpc.add_ProjectServiceServicer_to_server,
        lambda app: ProjectServicer(app.projects),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(meter_pb2, "MeterService"),
        meter_pb2_grpc.add_MeterServiceServicer_to_server,
        lambda app: MeterServicer(app.meters),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(billing_pb2, "BillingService"),
        billing_pb2_grpc.add_BillingServiceServicer_to_server,
        lambda app: BillingServicer(app.billing),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(stripe_pb2, "StripeService"),
        stripe_pb2_grpc.add_StripeServiceServicer_to_server,
        lambda app: StripeServicer(app.payments, app.clock),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(stripe_pb2, "StripeWebhookService"),
        stripe_pb2_grpc.add_StripeWebhookServiceServicer_to_server,
        lambda app: StripeWebhookServicer(app.webhooks),
        Caller.STRIPE,
    ),
    Service(
        _descriptor(rls_pb2, "RateLimitService"),
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server,
        lambda app: RateLimitServicer(app.engine, app.clock),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(user_pb2, "UserService"),
        user_pb2_grpc.add_UserServiceServicer_to_server,
        lambda app: UserServicer(app.end_users, networks(app.settings.trusted_proxies)),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(notification_pb2, "UsageAlertService"),
        notification_pb2_grpc.add_UsageAlertServiceServicer_to_server,
        lambda app: UsageAlertServicer(app.notifications),
        Caller.OPERATOR,
    ),
    Service(
        _descriptor(settings_pb2, "SettingsService"),
        settings_pb2_grpc.add_SettingsServiceServicer_to_server,
        lambda app: SettingsServicer(app.end_users),
        Caller.END_USER,
    ),
    Service(
        _descriptor(notification_pb2, "NotificationService"),
        notification_pb2_grpc.add_NotificationServiceServicer_to_server,
        lambda app: NotificationServicer(app.notifications),
        Caller.END_USER,
    ),
    Service(
        _descriptor(admin_pb2, "AdminService"),
        admin_pb2_grpc.add_AdminServiceServicer_to_server,
        lambda app: AdminServicer(Admin(app.store, app.clock)),
        Caller.ADMIN,
    ),
)

SERVICE_NAMES = tuple(service.name for service in SERVICES)
