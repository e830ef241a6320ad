"""The processes of `billing-service serve` and `billing-service jobs`.

`serve` runs BILLING_WORKERS server processes on one address and, by
default (BILLING_BACKGROUND_JOBS=process), one process more for the
background jobs: the Stripe meter sender, end users' deliveries and due
deletions. Those jobs then never hold up a call in a server's event loop.
A process that ends on its own (a crash, a taken port) ends the others, so
that the service never runs with a part missing: its supervisor (a pod, a
systemd unit) sees it exit and starts it again."""

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from .app import App, CannotListen, CannotOpen, open_app, prepare_database
from .config import Settings, server_processes
from .logs import configure_logging
from .orphans import until_stopped
from .storage.engine import create_engines

log = logging.getLogger(__name__)


def run_serve(settings: Settings) -> int:
    # The cores this process may run on: a cpuset or taskset narrows them.
    workers = server_processes(settings, len(os.sched_getaffinity(0)))
    jobs = settings.background_jobs == "process"
    if workers == 1 and not jobs:
        run_loop(_serve(settings, reuse_port=False))
        return 0
    # Several processes: migrate (or check) once here, then spawn them, so
    # that a database that cannot serve is said once.
    asyncio.run(_prepare_database(settings))
    metrics_dir = None
    if settings.metrics_addr and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each server writes its metrics there; the first serves their sum.
        metrics_dir = tempfile.mkdtemp(prefix="billing-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    context = multiprocessing.get_context("spawn")
    values = settings.model_dump()
    processes = [
        context.Process(
            target=_serve_worker,
            args=(values, index, workers > 1, os.getpid()),
            name=f"server {index}",
        )
        for index in range(workers)
    ]
    if jobs:
        processes.append(
            context.Process(target=_jobs_worker, args=(values, os.getpid()), name="jobs")
        )
    try:
        return _supervise(processes)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(processes: Sequence[BaseProcess]) -> int:
    """Start the processes, forward SIGTERM and SIGINT to them; when one
    ends unasked, stop the others. The exit code is the worst of theirs, a
    signal's told as a shell would (128 + N)."""
    stopping = False
    forwarded: set[int] = set()

    def signal_all(signum: int) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        forwarded.add(signum)
        signal_all(signum)

    # Before starting them: a stop asked for meanwhile reaches each.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.start()
    running = list(processes)
    while running:
        ended = wait([process.sentinel for process in running])
        for process in [p for p in running if p.sentinel in ended]:
            process.join()
            running.remove(process)
            if not stopping:
                stopping = True
                _tell_ended(process)
                signal_all(signal.SIGTERM)
    # A process still starting when asked to stop dies of the signal it was
    # sent: that is the stop asked for, not a failure.
    codes = [process.exitcode or 0 for process in processes]
    return max(0 if -code in forwarded else 128 - code if code < 0 else code for code in codes)


def _tell_ended(process: BaseProcess) -> None:
    code = process.exitcode or 0
    if code < 0:
        log.error("%s was killed by signal %d: stopping the others", process.name, -code)
    else:  # it said why itself
        log.info("%s exited with status %d: stopping the others", process.name, code)


def _serve_worker(
    settings_values: dict[str, Any], index: int, reuse_port: bool, parent: int
) -> None:
    settings = Settings(**settings_values)
    configure_logging(settings)
    settings.migrate_on_start = False
    if index > 0:
        settings.http_addr = ""  # one gateway, in the first server
    try:
        # Every server records metrics; the first serves /metrics, summing them all.
        run_loop(_serve(settings, reuse_port, serves_metrics=index == 0, parent=parent))
    except (CannotOpen, CannotListen) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def _jobs_worker(settings_values: dict[str, Any], parent: int) -> None:
    settings = Settings(**settings_values)
    configure_logging(settings)
    settings.migrate_on_start = False
    try:
        run_loop(run_jobs_until_signalled(settings, parent))
    except CannotOpen as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


async def run_jobs_until_signalled(settings: Settings, parent: int | None = None) -> None:
    """Run the background jobs until SIGTERM or SIGINT, or until `parent`
    (the `serve` that started them) is gone."""
    # Before opening: a SIGTERM while the database opens is a stop, not a death.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = await open_app(settings)
    app.start_background_work()
    log.info(
        "background jobs running in process %d: Stripe meter events, end users' deliveries"
        " and deletions",
        os.getpid(),
    )
    try:
        await until_stopped(stop, parent, "the background jobs")
    finally:
        log.info("background jobs stopping")
        await app.close()


async def _serve(
    settings: Settings, reuse_port: bool, serves_metrics: bool = True, parent: int | None = None
) -> None:
    app = await open_app(settings)
    await serve_until_signalled(app, reuse_port, serves_metrics, parent)


async def serve_until_signalled(
    app: App, reuse_port: bool = False, serves_metrics: bool = True, parent: int | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, or until `parent` (the `serve` that
    started this process) is gone, then shut down gracefully."""
    from .api.server import start_server  # loaded by serving processes only, as before
    from .catalog.bootstrap import bootstrap

    try:
        await bootstrap(app.store, app.settings, app.clock)
        running = await start_server(
            app,
            app.settings.grpc_addr,
            reuse_port,
            serves_metrics,
            background=app.settings.background_jobs == "inline",
        )
    except BaseException:
        await app.close()
        raise
    # gRPC core's experiments change how it does I/O (grpc_core.py): say which ran.
    log.info(
        "gRPC listening on %s (GRPC_EXPERIMENTS=%r)",
        app.settings.grpc_addr,
        os.environ.get("GRPC_EXPERIMENTS", ""),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gateway = None
    try:
        if app.settings.http_addr:
            from .gateway.server import start_gateway

            gateway = await start_gateway(
                app.settings.http_addr,
                f"127.0.0.1:{running.port}",
                access_log=app.settings.http_access_log,
            )
        await until_stopped(stop, parent, "this server")
    finally:
        log.info(
            "shutting down: NOT_SERVING, draining for %ss", app.settings.shutdown_grace_seconds
        )
        if gateway is not None:
            await gateway.stop()
        await running.stop(app.settings.shutdown_grace_seconds)
        await app.close()


async def _prepare_database(settings: Settings) -> None:
    writer, reader = create_engines(settings.database_url)
    try:
        await prepare_database(settings, writer)
    finally:
        await writer.dispose()
        await reader.dispose()


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(main)
    else:
        uvloop.run(main)
