"""The one place that wires settings -> storage -> logic."""

from dataclasses import dataclass

from .clock import Clock, SystemClock
from .config import Settings
from .domain.policy import enforcement
from .logic.auth import Authenticator
from .logic.catalog import Catalog
from .logic.subscriptions import Subscriptions
from .logic.usage import QuotaEngine
from .storage import migrate
from .storage.engine import create_engines, is_sqlite
from .storage.hot_path import UsageBatcher, open_hot_path
from .storage.store import Store


@dataclass
class App:
    settings: Settings
    clock: Clock
    store: Store
    authenticator: Authenticator
    catalog: Catalog
    subscriptions: Subscriptions
    engine: QuotaEngine
    batcher: UsageBatcher

    async def close(self) -> None:
        await self.batcher.close()
        await self.store.close()


async def open_app(settings: Settings, clock: Clock | None = None) -> App:
    clock = clock or SystemClock()
    writer, reader = create_engines(settings.database_url, settings.db_pool_size)
    migrate_now = settings.migrate_on_start
    if migrate_now is None:
        migrate_now = is_sqlite(settings.database_url)
    if migrate_now:
        await migrate.upgrade(writer)
    store = Store(writer, reader)
    batcher = UsageBatcher(open_hot_path(settings.database_url), enforcement)
    return App(
        settings=settings,
        clock=clock,
        store=store,
        authenticator=Authenticator(store, settings.auth_cache_seconds),
        catalog=Catalog(store, clock),
        subscriptions=Subscriptions(store, clock),
        engine=QuotaEngine(store, batcher, clock),
        batcher=batcher,
    )
