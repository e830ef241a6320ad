"""The one registry of RPCs: which scopes of an API key admit each one.

Keyed by the method's full name, as its descriptor gives it. The guard
(api/guard.py) refuses to wrap a method missing here, so a new RPC cannot be
served until it is given its scopes; tests/test_scopes.py walks every method
of every served service from the descriptors against this table.

A key carries one or more scopes:
- `full` admits every RPC an API key may call;
- `metering` admits the metered calls only (quota checks, consumption,
  usage records and refunds, reading usage, Envoy's ShouldRateLimit): the
  key of a sidecar or a gateway;
- `read` admits every Get and List, and no write.
"""

from collections.abc import Iterable

FULL = "full"
METERING = "metering"
READ = "read"
SCOPES = (FULL, METERING, READ)

_WRITE = frozenset({FULL})
_READ = frozenset({FULL, READ})
_METERED = frozenset({FULL, METERING})
_METERED_READ = frozenset({FULL, METERING, READ})
# Not called with an API key: the admin credential, an end user's session,
# or (the Stripe webhook) a payload signature authenticates these.
NO_API_KEY: frozenset[str] = frozenset()


def _service(name: str, **methods: frozenset[str]) -> dict[str, frozenset[str]]:
    return {f"{name}.{method}": admitted for method, admitted in methods.items()}


ADMITTED_BY: dict[str, frozenset[str]] = {
    **_service(
        "billing.v1.UsageService",
        CheckQuota=_METERED,
        ConsumeQuota=_METERED,
        RecordUsage=_METERED,
        RefundUsage=_METERED,
        GetUsage=_METERED_READ,
    ),
    **_service("envoy.service.ratelimit.v3.RateLimitService", ShouldRateLimit=_METERED),
    **_service(
        "billing.v1.AccountKitService",
        UpsertAccountKit=_WRITE,
        GetAccountKit=_READ,
        ListAccountKits=_READ,
    ),
    **_service(
        "billing.v1.PlanService",
        UpsertPlan=_WRITE,
        GetPlan=_READ,
        ListPlans=_READ,
        ArchivePlan=_WRITE,
    ),
    **_service(
        "billing.v1.SubscriptionService",
        SetSubscription=_WRITE,
        GetSubscription=_READ,
        ListSubscriptions=_READ,
    ),
    **_service(
        "billing.v1.ProjectService", UpsertProject=_WRITE, GetProject=_READ, ListProjects=_READ
    ),
    **_service("billing.v1.MeterService", UpsertMeter=_WRITE, GetMeter=_READ, ListMeters=_READ),
    **_service(
        "billing.v1.BillingService",
        RecordAiUsage=_METERED,
        GetUsageSummary=_READ,
        GetUsageByProject=_READ,
        GetProjectUsage=_READ,
        GetBillingPeriods=_READ,
        GrantCredits=_WRITE,
        GetCreditBalance=_READ,
    ),
    **_service(
        "billing.v1.StripeService",
        ConnectStripeAccount=_WRITE,
        GetStripeAccount=_READ,
        EnsureCustomer=_WRITE,
        CreateCheckoutSession=_WRITE,
        CreatePortalSession=_WRITE,
        GetBilling=_READ,
        GetBillingStatus=_READ,
        CanCreateApiKey=_READ,
        GetUsageFromMeters=_READ,
        ListStripeEvents=_READ,
        GetMeterOutbox=_READ,
    ),
    **_service("billing.v1.StripeWebhookService", HandleStripeWebhook=NO_API_KEY),
    **_service("billing.v1.UserService", CreateUser=_WRITE, SignIn=_WRITE),
    **_service("billing.v1.UsageAlertService", SetAlertWebhook=_WRITE, ListUsageAlerts=_READ),
    **_service(
        "billing.v1.SettingsService",
        **dict.fromkeys(
            (
                "GetPreferences",
                "UpdateNotifications",
                "UpdatePrivacy",
                "UpdateAppearance",
                "ListSessions",
                "RevokeSession",
                "RevokeAllSessions",
                "ChangePassword",
                "RequestEmailChange",
                "VerifyEmailChange",
                "RequestDeletion",
                "CancelDeletion",
                "GetDeletionStatus",
                "GetLoginHistory",
            ),
            NO_API_KEY,
        ),
    ),
    **_service(
        "billing.v1.NotificationService",
        **dict.fromkeys(
            ("RegisterToken", "UnregisterToken", "ListNotifications", "MarkNotificationRead"),
            NO_API_KEY,
        ),
    ),
    **_service(
        "billing.v1.AdminService",
        **dict.fromkeys(
            (
                "CreateOperator",
                "GetOperator",
                "ListOperators",
                "DisableOperator",
                "CreateApiKey",
                "ListApiKeys",
                "RevokeApiKey",
                "RotateApiKey",
            ),
            NO_API_KEY,
        ),
    ),
}


class UnregisteredRpc(LookupError):
    """An RPC served without an entry in ADMITTED_BY: a programming error,
    raised at start-up."""


def admitted_by(rpc: str) -> frozenset[str]:
    """The scopes admitting `rpc` (a method's full name)."""
    try:
        return ADMITTED_BY[rpc]
    except KeyError:
        raise UnregisteredRpc(f"{rpc} has no scopes in api/scopes.py ADMITTED_BY") from None


def scope_needed(admitted: frozenset[str]) -> str:
    """The narrowest scope to name when a key's scopes do not admit an RPC."""
    for scope in (METERING, READ):
        if scope in admitted:
            return scope
    return FULL


def admits(held: Iterable[str], admitted: frozenset[str]) -> bool:
    return any(scope in admitted for scope in held)
