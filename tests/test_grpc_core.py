"""The gRPC core settings the `billing-service` command gives its processes.

Each case runs in a fresh interpreter: gRPC core reads them when grpc loads,
and this test process has loaded it long ago."""

import os
import subprocess
import sys

from billing_service.grpc_core import GRPC_EXPERIMENTS

_APPLY = (
    "import os, sys\n"
    "import billing_service.cli\n"
    "assert 'grpc' not in sys.modules, 'the command module loads grpc before its settings'\n"
    "from billing_service.grpc_core import apply_defaults\n"
    "applied = apply_defaults()\n"
    "print(applied, repr(os.environ.get('GRPC_EXPERIMENTS')))\n"
)


def _run(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"} | env
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_command_turns_the_event_engine_experiments_off_by_default() -> None:
    assert GRPC_EXPERIMENTS.split(",") == [
        "-event_engine_listener",
        "-event_engine_for_all_other_endpoints",
        "-event_engine_callback_cq",
        "-event_engine_client",
    ]
    assert _run(_APPLY) == f"True {GRPC_EXPERIMENTS!r}"


def test_an_operators_grpc_experiments_win_even_empty() -> None:
    assert _run(_APPLY, GRPC_EXPERIMENTS="-event_engine_listener") == (
        "True '-event_engine_listener'"
    )
    assert _run(_APPLY, GRPC_EXPERIMENTS="") == "True ''"


def test_once_grpc_is_loaded_the_environment_is_left_alone() -> None:
    code = _APPLY.replace("import billing_service.cli\n", "import grpc\n").replace(
        "assert 'grpc' not in", "assert 'grpc' in"
    )
    assert _run(code) == "False None"
