"""gRPC core's process-wide settings, which it reads once, when grpc loads.

Since grpcio 1.80, gRPC core runs a Python process's sockets (the server's,
and the gateway's client channel) on EventEngine threads of its own: every
call then crosses from those threads to the thread that polls for
completions, and from there to the event loop. With the EventEngine
experiments off, the polling thread does the socket I/O itself, one crossing
fewer (docs/performance.md has the measured gain). gRPC plans to remove these
experiment switches a couple of releases after 1.80 (grpc/grpc#42150): remove
this default then, or once the benchmark shows no gain. An operator's own
GRPC_EXPERIMENTS wins; set it to the empty string to run gRPC core's defaults.
"""

import os
import sys

GRPC_EXPERIMENTS = ",".join(
    (
        "-event_engine_listener",
        "-event_engine_for_all_other_endpoints",
        "-event_engine_callback_cq",
        "-event_engine_client",
    )
)


def apply_defaults() -> bool:
    """Set this service's gRPC core defaults where the environment names none;
    False when too late (grpc is loaded already: an embedding process, a test),
    where the environment is left as it is."""
    if "grpc" in sys.modules:
        return False
    os.environ.setdefault("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS)
    return True
