"""Alembic environment. Migrations run on a connection handed in by
billing_service.storage.migrate (config.attributes["connection"]), so they
work inside a running event loop, on SQLite and PostgreSQL alike."""

from alembic import context

from billing_service.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
