"""The metering core's own PostgreSQL connection goes where the database URL says,
as the Store's connections do: its query string's options included."""

import pytest
from sqlalchemy.engine import make_url

from billing_service.app import App
from billing_service.domain.errors import StorageUnavailable
from billing_service.domain.usage_keys import UsageKey
from billing_service.metering.backend import MeteringBackend
from billing_service.metering.engines import open_backend

from ..conftest import PG_HOST, PG_PORT

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def _with_query(database_url: str, **query: str) -> str:
    """The URL without host and port in its address, and with `query`."""
    url = make_url(database_url).set(host=None, port=None).update_query_dict(query)
    return url.render_as_string(hide_password=False)


async def _usage_read(db: MeteringBackend) -> tuple[int, int] | None:
    """A read of the migrated database (`app` migrated it) through `db`."""
    try:
        return await db.read_usage(UsageKey(1, "t", "p"), 0, 1)
    finally:
        await db.close()


async def test_host_and_port_in_the_query_string_are_used(app: App) -> None:
    url = _with_query(app.settings.database_url, host=PG_HOST, port=str(PG_PORT))
    assert await _usage_read(open_backend(url)) is None  # no operator yet


async def test_a_port_in_the_query_string_that_nothing_listens_on_fails(app: App) -> None:
    # Not a fallback to a default server: the one the URL names, or none.
    url = _with_query(app.settings.database_url, host=PG_HOST, port="1")
    with pytest.raises(StorageUnavailable):
        await _usage_read(open_backend(url))
