"""PostgreSQL constants shared by the Store's transactions and the metering
core's own connection."""

import asyncio

import asyncpg

# The key of the terms lock: (TERMS_LOCK, operator id), an advisory lock
# taken shared by metered transactions and exclusively by terms changes.
TERMS_LOCK = 0x6D657465  # "mete"

# What says the connection (or the server behind it) is gone, rather than
# that a statement failed: the driver's own errors ("connection was closed
# in the middle of operation", "another operation is in progress"), the
# server's connection and shutdown classes (08, 57P), and the socket's; and a
# read-only answer (25006): the server became a standby in a failover, and
# the next connection, made with target_session_attrs, finds the primary.
CONNECTION_LOST = (
    OSError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,
)
