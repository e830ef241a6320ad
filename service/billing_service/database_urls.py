"""PostgreSQL URLs in every form users bring (docs/postgres-urls-and-poolers.md):
libpq's comma host list and SQLAlchemy's `?host=` list, a password with
URL-special characters, and the query options meant for the driver, each
checked here and handed to asyncpg with its proper type.

Loads nothing heavy at import: config.py checks URLs with it."""

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

DEFAULT_PORT = 5432
# libpq's sslmode values, which asyncpg's `ssl` takes as they are.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# asyncpg's target_session_attrs; with several hosts and none given, the
# service asks for a server that takes writes.
SESSION_ATTRS = ("any", "primary", "standby", "read-write", "read-only", "prefer-standby")
WRITABLE = "read-write"
_INTEGER_OPTIONS = (
    "statement_cache_size",
    "max_cached_statement_lifetime",
    "max_cacheable_statement_size",
)
_SECONDS_OPTIONS = {"command_timeout": "command_timeout", "connect_timeout": "timeout"}
_FILE_OPTIONS = ("sslrootcert", "sslcert", "sslkey")
# Options SQLAlchemy itself reads from the URL, left there.
_SQLALCHEMY_OPTIONS = ("host", "prepared_statement_cache_size")
OPTIONS = (
    *_SQLALCHEMY_OPTIONS,
    *_INTEGER_OPTIONS,
    *_SECONDS_OPTIONS,
    *_FILE_OPTIONS,
    "sslmode",
    "target_session_attrs",
    "application_name",
)


@dataclass
class PostgresTarget:
    """A PostgreSQL URL split into what SQLAlchemy reads (`url`) and asyncpg's
    own connect arguments, typed (`driver`)."""

    url: str
    driver: dict[str, Any] = field(default_factory=dict)
    hosts: int = 1

    @property
    def pooled(self) -> bool:
        """Behind a transaction pooler: no statement may outlive its
        transaction, so neither asyncpg nor SQLAlchemy caches statements."""
        return self.driver.get("statement_cache_size") == 0


def normalised_postgres(rest: str) -> str:
    """The part of a PostgreSQL URL after `scheme://`, with a comma host list
    turned into `?host=` options (each with its port), URL-special characters
    of the user's part escaped, and its options checked; ValueError naming the
    rule broken (never the password)."""
    rest, _, query = rest.partition("?")
    user, at, rest = rest.rpartition("@")
    hostlist, slash, database = rest.partition("/")
    options = parse_qsl(query, keep_blank_values=True)
    if "," in hostlist:
        options = [("host", host) for host in hostlist.split(",")] + options
        hostlist = ""
    hosts = [value for name, value in options if name == "host"]
    if len(hosts) > 1:
        options = [(n, v) for n, v in options if n != "host"]
        options = [("host", _with_port(host)) for host in hosts] + options
    for name, value in options:
        check_option(name, value)
    userinfo = quote(user, safe=":%") + at
    shown_query = f"?{urlencode(options, safe=':/[]')}" if options else ""
    return f"{userinfo}{hostlist}{slash}{database}{shown_query}"


def _with_port(host: str) -> str:
    """`host:port` of one entry of a host list, the default port added."""
    if host.startswith("/"):
        raise ValueError("a host list holds host:port entries, not Unix socket directories")
    if host.endswith("]"):  # [IPv6] without a port
        name, port = host, str(DEFAULT_PORT)
    else:
        name, colon, port = host.rpartition(":")
        if not colon:
            name, port = host, str(DEFAULT_PORT)
    if not name or (":" in name and not name.startswith("[")):
        raise ValueError(f"host list entry {host!r} must be HOST:PORT ([ADDRESS]:PORT for IPv6)")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"the port of host {name} must be a number from 1 to 65535")
    return f"{name}:{port}"


def check_option(name: str, value: str) -> None:
    """ValueError saying what `name=value` in the URL's query must be."""
    if name not in OPTIONS:
        raise ValueError(f"unknown option {name}; the options are {', '.join(OPTIONS)}")
    if name in (*_INTEGER_OPTIONS, "prepared_statement_cache_size"):
        if not value.isdigit():
            raise ValueError(f"option {name} must be an integer ≥ 0")
    elif name in _SECONDS_OPTIONS:
        if not _seconds(value):
            raise ValueError(f"option {name} must be a number of seconds > 0")
    elif name == "sslmode" and value not in SSL_MODES:
        raise ValueError(f"option sslmode must be one of {', '.join(SSL_MODES)}")
    elif name == "target_session_attrs" and value not in SESSION_ATTRS:
        raise ValueError(f"option target_session_attrs must be one of {', '.join(SESSION_ATTRS)}")
    elif name in _FILE_OPTIONS and not Path(value).is_file():
        raise ValueError(f"option {name}: no file at {value}")


def _seconds(value: str) -> bool:
    try:
        return float(value) > 0
    except ValueError:
        return False


def postgres_target(url: str) -> PostgresTarget:
    """What an engine and the metering core's connection need to reach the
    PostgreSQL of `url`, a URL config.py normalised."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    query = {name: parsed.query[name] for name in parsed.query}
    driver: dict[str, Any] = {}
    for name in _INTEGER_OPTIONS:
        if name in query:
            driver[name] = int(_one(query.pop(name)))
    for name, argument in _SECONDS_OPTIONS.items():
        if name in query:
            driver[argument] = float(_one(query.pop(name)))
    if "application_name" in query:
        driver["server_settings"] = {"application_name": _one(query.pop("application_name"))}
    files = {name: _one(query.pop(name)) for name in _FILE_OPTIONS if name in query}
    mode = _one(query.pop("sslmode")) if "sslmode" in query else None
    if mode is not None or files:
        driver["ssl"] = _ssl(mode or "prefer", files)
    hosts = query.get("host", ())
    count = len(hosts) if isinstance(hosts, tuple) else 1
    attrs = query.pop("target_session_attrs", None)
    if attrs is not None:
        driver["target_session_attrs"] = _one(attrs)
    elif count > 1:
        driver["target_session_attrs"] = WRITABLE
    rest = parsed.set(query=query).render_as_string(hide_password=False)
    return PostgresTarget(rest, driver, count)


def _one(value: str | tuple[str, ...]) -> str:
    return value[-1] if isinstance(value, tuple) else value


def _ssl(mode: str, files: dict[str, str]) -> str | ssl.SSLContext:
    """asyncpg's `ssl`: the mode itself, or with certificate files a context
    that checks the server against sslrootcert (as libpq does) and presents
    sslcert/sslkey; certificate files do not turn the modes that allow a
    plain connection into ones that require TLS."""
    if not files or mode in ("disable", "allow", "prefer"):
        return mode
    context = ssl.create_default_context(cafile=files.get("sslrootcert"))
    context.check_hostname = mode == "verify-full"
    if "sslrootcert" not in files and mode == "require":
        context.verify_mode = ssl.CERT_NONE
    if "sslcert" in files:
        context.load_cert_chain(files["sslcert"], files.get("sslkey"))
    return context


def standby_message(shown_url: str) -> str:
    return (
        f"the database at {shown_url} is a standby; add target_session_attrs=read-write"
        " to BILLING_DATABASE_URL (with the primary among its hosts)"
    )
