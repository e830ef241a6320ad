"""The one place that wires settings -> storage -> logic."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from .billing.ledger import LedgerStore
from .billing.page import Billing
from .catalog.keys import Authenticator
from .catalog.meters import Meters
from .catalog.plans import Catalog
from .catalog.projects import Projects
from .catalog.store import Store
from .catalog.subscriptions import Subscriptions
from .clock import Clock, SystemClock
from .config import Settings
from .domain.networks import networks
from .domain.policy import enforcement
from .end_users.accounts import EndUsers
from .end_users.alerts import AlertsStore
from .end_users.notifications import Notifications
from .end_users.passwords import Passwords
from .end_users.push_tokens import PushTokensStore
from .end_users.sessions import SessionAuthenticator
from .end_users.store import UsersStore
from .end_users.worker import EndUserWorker
from .metering.batcher import Batcher
from .metering.engines import open_backend
from .metering.quota_engine import QuotaEngine
from .metering.terms_cache import TermsCache
from .startup import CannotListen as CannotListen  # where servers and tests look for it
from .startup import CannotOpen as CannotOpen
from .storage import migrate
from .storage.engine import create_engines, is_sqlite, require_writable, what_to_do
from .storage.secrets import SecretBox, SecretsKeyInvalid
from .stripe.accounts import Payments
from .stripe.client import StripeApi
from .stripe.cursor import MeterCursor
from .stripe.meter_sender import MeterSender
from .stripe.outbox import OutboxStore
from .stripe.store import PaymentsStore
from .stripe.webhooks import StripeWebhooks


@contextlib.asynccontextmanager
async def opening_database(url: str) -> AsyncIterator[None]:
    """Turn what goes wrong when the database at `url` is first used into
    CannotOpen, whose message says what happened and what to do, instead of
    a driver's traceback."""
    try:
        yield
    except migrate.SchemaNotCurrent as error:
        raise CannotOpen(str(error)) from error
    except (OSError, DBAPIError) as error:
        reason = error.orig if isinstance(error, DBAPIError) else error
        advice = what_to_do(url, reason if reason is not None else error)
        raise CannotOpen(f"cannot open the database: {reason}; {advice}") from error


@dataclass
class App:
    settings: Settings
    clock: Clock
    store: Store
    authenticator: Authenticator
    catalog: Catalog
    subscriptions: Subscriptions
    engine: QuotaEngine
    batcher: Batcher
    projects: Projects
    meters: Meters
    billing: Billing
    payments: Payments
    webhooks: StripeWebhooks
    meter_sender: MeterSender
    stripe_api: StripeApi
    end_users: EndUsers
    notifications: Notifications
    sessions: SessionAuthenticator
    end_user_worker: EndUserWorker

    def start_background_work(self) -> None:
        """What a serving process does besides answering calls."""
        self.meter_sender.start()
        self.end_user_worker.start()

    async def outbox_depths(self) -> dict[str, int]:
        """Rows waiting in each outbox (the metrics' gauges)."""
        return {
            "stripe_meter_events": await self.meter_sender.pending(),
            **await self.end_user_worker.pending(),
        }

    async def close(self) -> None:
        await self.end_user_worker.stop()
        await self.meter_sender.stop()
        await self.batcher.close()
        await self.stripe_api.close()
        await self.store.close()


async def prepare_database(settings: Settings, writer: AsyncEngine) -> None:
    """Migrate where settings ask (by default on SQLite, the embedded
    engine), then make sure the schema is one this code can serve."""
    migrate_now = settings.migrate_on_start
    if migrate_now is None:
        migrate_now = is_sqlite(settings.database_url)
    async with opening_database(settings.database_url):
        if migrate_now:
            await require_writable(writer, settings.database_url)
            await migrate.upgrade(writer)
        await migrate.require_current(writer)


async def open_app(settings: Settings, clock: Clock | None = None) -> App:
    clock = clock or SystemClock()
    try:
        box = SecretBox(settings.secrets_key)
    except SecretsKeyInvalid as error:
        raise CannotOpen(str(error)) from None
    writer, reader = create_engines(settings.database_url, settings.db_pool_size)
    try:
        await prepare_database(settings, writer)
    except BaseException:
        await writer.dispose()
        await reader.dispose()
        raise
    store, ledger = Store(writer, reader), LedgerStore(writer, reader)
    batcher = Batcher(open_backend(settings.database_url), TermsCache(enforcement))
    projects, meters = Projects(ledger, clock), Meters(ledger, clock)
    subscriptions = Subscriptions(store, clock)
    billing = Billing(store, ledger, meters, projects, batcher, clock)
    # Every store shares the same two engines; App.close disposes them once.
    payments_store, outbox = PaymentsStore(writer, reader), OutboxStore(writer, reader)
    stripe_api = StripeApi(
        settings.stripe_api_base,
        settings.stripe_max_network_retries,
        settings.stripe_timeout_seconds,
    )
    users, alerts = UsersStore(writer, reader), AlertsStore(writer, reader)
    end_users = EndUsers(
        users,
        Passwords(
            settings.password_time_cost,
            settings.password_memory_kib,
            settings.password_parallelism,
        ),
        clock,
        timedelta(days=settings.session_days),
        timedelta(days=settings.deletion_grace_days),
        box=box,
        address_max_failures=settings.sign_in_address_max_failures,
        mail_configured=bool(settings.smtp_host),
    )
    return App(
        settings=settings,
        clock=clock,
        store=store,
        authenticator=Authenticator(store, settings.auth_cache_seconds, now=clock.now),
        catalog=Catalog(store, clock),
        subscriptions=subscriptions,
        engine=QuotaEngine(store, batcher, clock, projects, meters),
        batcher=batcher,
        projects=projects,
        meters=meters,
        billing=billing,
        payments=Payments(payments_store, outbox, store, billing, meters, stripe_api, box, clock),
        webhooks=StripeWebhooks(payments_store, subscriptions, stripe_api, box, clock),
        meter_sender=MeterSender(
            MeterCursor(writer, reader), outbox, payments_store, stripe_api, box, clock, settings
        ),
        stripe_api=stripe_api,
        end_users=end_users,
        notifications=Notifications(
            PushTokensStore(writer, reader),
            alerts,
            box,
            clock,
            networks(settings.alert_webhook_allow_networks),
        ),
        sessions=SessionAuthenticator(users, clock),
        end_user_worker=EndUserWorker(alerts, end_users, box, clock, settings),
    )
