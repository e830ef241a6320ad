"""Settings as an operator gives them, through the real command: the URL every
managed PostgreSQL hands out works as it is, and every setting given a bad
value stops the command with one line naming the variable and the rule, never
a traceback nor pydantic's report."""

import typing
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal

import pytest
from pydantic.fields import FieldInfo

from billing_service.config import Settings

from .cli_subprocess import run_cli, run_cli_ok, service_env

pytestmark = pytest.mark.slow

# Text settings with a rule of their own, and a value each that breaks it.
# Others (names, hosts, URLs of remote services) take any text here.
TEXT_RULES = {
    "database_url": ("mysql://billing:pw@db/billing", "not a url", "postgres://h:port/db"),
    "grpc_addr": ("localhost",),
    "http_addr": ("8080",),
    "metrics_addr": ("[::1]:metrics",),
    "gateway_grpc_target": ("billing:65536",),
    "log_level": ("LOUD",),
}


def _kinds(field: FieldInfo) -> list[Any]:
    annotation = field.annotation
    union = isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union
    alternatives = typing.get_args(annotation) if union else (annotation,)
    return [kind for kind in alternatives if kind is not NoneType]


def _beyond_bounds(field: FieldInfo) -> list[str]:
    """A value just past each of the field's bounds."""
    values = []
    for constraint in field.metadata:
        for bound, step in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
            if hasattr(constraint, bound):
                values.append(str(getattr(constraint, bound) + step))
    return values


def bad_values() -> list[tuple[str, str]]:
    """(setting, a bad value) for every setting a rule applies to."""
    cases = []
    for name, field in Settings.model_fields.items():
        kinds = _kinds(field)
        kind = kinds[0] if len(kinds) == 1 else None
        if kind in (int, float):
            cases += [(name, "abc"), *((name, value) for value in _beyond_bounds(field))]
        elif kind is bool:
            cases.append((name, "maybe"))
        elif typing.get_origin(kind) is Literal:
            cases.append((name, "bogus"))
        else:
            cases += [(name, value) for value in TEXT_RULES.get(name, ())]
    return cases


def test_every_typed_setting_and_every_text_rule_is_tried() -> None:
    tried = {name for name, _ in bad_values()}
    free_text = set(Settings.model_fields) - tried
    assert tried >= set(TEXT_RULES)
    for name in free_text:
        assert _kinds(Settings.model_fields[name])[0].__name__ in ("str", "SecretStr"), name


@pytest.mark.parametrize(("setting", "value"), bad_values())
async def test_a_bad_setting_is_one_line_naming_the_variable_and_the_rule(
    tmp_path: Path, setting: str, value: str
) -> None:
    env = service_env(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    env[f"BILLING_{setting.upper()}"] = value
    result = await run_cli(env, "migrate")
    variable = f"BILLING_{setting.upper()}"
    assert result.returncode != 0, result
    assert len(result.stderr.splitlines()) == 1, result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"error: {variable}: must be "), line
    assert "Traceback" not in line and "pydantic" not in line, line
    assert not (tmp_path / "b.db").exists()


async def test_a_database_password_is_not_in_the_refusal(tmp_path: Path) -> None:
    env = service_env("mysql://billing:s3cret-pw@db.internal/billing")
    result = await run_cli(env, "migrate")
    assert result.returncode != 0
    assert "s3cret-pw" not in result.stderr and "db.internal" not in result.stderr
    assert "sqlite+aiosqlite:///" in result.stderr and "postgresql://" in result.stderr


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_a_managed_postgresqls_url_works_as_given(
    empty_database_url: str, scheme: str
) -> None:
    url = empty_database_url.replace("postgresql+asyncpg://", f"{scheme}://")
    env = service_env(url)
    migrated = await run_cli_ok(env, "migrate")
    assert "database at revision" in migrated.stdout
    await run_cli_ok(env, "operators", "create", "acme")
    listed = await run_cli_ok(env, "operators", "list")
    assert "acme" in listed.stdout
    # The command says which driver it uses.
    assert "database: postgresql+asyncpg://" in listed.stderr


async def test_a_plain_sqlite_url_is_read_as_aiosqlites(tmp_path: Path) -> None:
    env = service_env(f"sqlite:///{tmp_path / 'b.db'}")
    await run_cli_ok(env, "migrate")
    listed = await run_cli_ok(env, "operators", "list")
    assert f"database: sqlite+aiosqlite:///{tmp_path / 'b.db'}" in listed.stderr
