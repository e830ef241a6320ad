"""The floor: the cheapest unary RPC a grpc.aio server can answer.

One method, /bench.v1.Floor/Empty, that ignores its request and answers an
empty message. The handler is generic with no (de)serializers, so grpc hands
over and takes back raw bytes: what is left is the cost of grpc.aio itself.
It runs on uvloop with the server options the billing service uses, so that
the billing service's throughput divided by this one's is the cost of the
service's own work. With BENCH_FLOOR_POSTGRES_URL and
BENCH_FLOOR_STATEMENT (`read` or `commit`, dblatency.py's statements), each
call first awaits that statement on PostgreSQL over asyncpg (prepared,
autocommit): a database floor, what one call at a time gets when it waits for
the database once and does nothing else.

Usage: floor_server.py HOST:PORT  (stops on SIGTERM or SIGINT)
"""

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable

import grpc
import uvloop

SERVICE = "bench.v1.Floor"
METHOD = "Empty"
PATH = f"/{SERVICE}/{METHOD}"


async def empty(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
    return b""


Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


async def waiting_for_postgres(url: str, statement: str) -> Handler:
    """A handler that awaits `statement` (a key of dblatency.POSTGRES_STATEMENTS)
    on one asyncpg connection to `url`, then answers as `empty` does."""
    import asyncpg
    from dblatency import POSTGRES_PROBE_TABLE, POSTGRES_STATEMENTS, asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url))
    await conn.execute(POSTGRES_PROBE_TABLE)
    prepared = await conn.prepare(POSTGRES_STATEMENTS[statement])

    async def waiting(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        await prepared.fetch()
        return b""

    return waiting


async def serve(address: str) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handler: Handler = empty
    postgres_url = os.environ.get("BENCH_FLOOR_POSTGRES_URL")
    if postgres_url:
        handler = await waiting_for_postgres(postgres_url, os.environ["BENCH_FLOOR_STATEMENT"])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(handler)}
            ),
        )
    )
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"cannot listen on {address}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    uvloop.run(serve(sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
