"""The first operator and its key, made at start-up without a shell:
BILLING_BOOTSTRAP_OPERATOR names the operator, BILLING_BOOTSTRAP_KEY_FILE
holds the key's secret (a Kubernetes Secret mounted there, say). When that
file is absent or empty, a key is minted and written there (mode 0600).

Idempotent across restarts and replicas: the operator is inserted when
absent, the key by its hash (its id derives from that hash too), so
replicas starting together make one operator and one key; the file is
written under an exclusive lock, so that they share one secret.
"""

import fcntl
import logging
import os
import re
from pathlib import Path

from ..clock import Clock
from ..config import Settings
from ..domain import validation
from ..domain.errors import InvalidArgument
from ..startup import CannotOpen
from .key_store import NewKeyRow
from .keys import KEY_PREFIX, hash_key, mint_key
from .store import Store

log = logging.getLogger(__name__)

# What a key written by hand into the file must look like: `bsk_` and at
# least 32 characters of base64url (`bsk_$(openssl rand -hex 32)` is one).
_SECRET_RE = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{32,200}")


async def bootstrap(store: Store, settings: Settings, clock: Clock) -> None:
    name, file = settings.bootstrap_operator, settings.bootstrap_key_file
    if not name and not file:
        return
    if not (name and file):
        raise CannotOpen(
            "BILLING_BOOTSTRAP_OPERATOR and BILLING_BOOTSTRAP_KEY_FILE go together: set both"
        )
    try:
        validation.name("BILLING_BOOTSTRAP_OPERATOR", name)
    except InvalidArgument as error:
        raise CannotOpen(error.message) from None
    secret = _secret_in(Path(file))
    now = clock.now()
    operator, created = await store.ensure_operator(name, now)
    key_hash = hash_key(secret)
    row = NewKeyRow("key_" + key_hash[:16], key_hash, secret[:10], ("full",), None)
    key = await store.add_key(operator.id, row, now)
    if key.operator_id != operator.id:
        raise CannotOpen(
            "the key in BILLING_BOOTSTRAP_KEY_FILE is another operator's: give this one its own"
        )
    if key.revoked_at is not None:
        log.warning("bootstrap: key %s of operator '%s' is revoked: not renewed", key.id, name)
    log.info(
        "bootstrap: operator '%s' %s, key %s",
        name,
        "created" if created else "already there",
        key.id,
    )


def _secret_in(path: Path) -> str:
    """The secret the file holds; when it is absent or empty, a new one
    written there. The file is read first without writing: a mounted
    Kubernetes Secret is read-only."""
    try:
        held = path.read_text().strip()
    except FileNotFoundError:
        held = ""
    except OSError as error:
        raise CannotOpen(
            f"cannot read BILLING_BOOTSTRAP_KEY_FILE {path}: {error.strerror}"
        ) from None
    if not held:
        held = _written(path)
    if not _SECRET_RE.fullmatch(held):
        raise CannotOpen(
            f"BILLING_BOOTSTRAP_KEY_FILE {path} does not hold a key: write `{KEY_PREFIX}`"
            " and 32 to 200 letters, digits, '-' or '_', or leave it empty to have one made"
        )
    return held


def _written(path: Path) -> str:
    """A new secret in the file, unless another process wrote one first."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise CannotOpen(
            f"cannot write BILLING_BOOTSTRAP_KEY_FILE {path}: {error.strerror}"
        ) from None
    with os.fdopen(fd, "r+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
        held = file.read().strip()
        if held:
            return held
        os.fchmod(file.fileno(), 0o600)
        secret = mint_key().secret
        file.seek(0)
        file.truncate()
        file.write(secret + "\n")
        file.flush()
        os.fsync(file.fileno())
        log.info("bootstrap: a new key was written to %s", path)
        return secret
