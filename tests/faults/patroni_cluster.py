"""A real failover manager for the failover test: one etcd and three Patroni
nodes from Debian's packages (`make test-tools` installs them), each running
PostgreSQL 15 on a free loopback port with its data in a temporary folder.
Patroni and PostgreSQL run as the `postgres` OS user when the tests run as
root, since initdb refuses root. Every process is killed when the cluster
closes, the failed leader's included."""

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from ..cli_subprocess import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PATRONI = shutil.which("patroni")
PATRONICTL = shutil.which("patronictl")
ETCD = shutil.which("etcd")
MISSING = [
    name
    for name, found in (
        ("patroni", PATRONI),
        ("etcd", ETCD),
        ("PostgreSQL 15", (PG_BIN / "postgres").exists()),
    )
    if not found
]
SCOPE = "billing"
# A short leader lease, so that a failover takes seconds: Patroni requires
# ttl >= loop_wait + 2 * retry_timeout.
TTL_SECONDS = 10
LOOP_WAIT_SECONDS = 1
RETRY_TIMEOUT_SECONDS = 4
# initdb refuses root: the cluster runs as `postgres` when the tests run as root.
RUN_AS = "postgres" if os.geteuid() == 0 else None
# Under root, commands run as RUN_AS through setpriv rather than subprocess's
# user=/group= arguments: those make Python fork instead of vfork, and a child
# forked from a process running gRPC's threads can crash (SIGSEGV) before exec.
AS_CLUSTER_USER = (
    ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--clear-groups"] if RUN_AS else []
)
# Generous: three initdb/basebackup runs on a loaded two-core machine.
START_TIMEOUT_SECONDS = 240.0


@dataclass
class Node:
    name: str
    pg_port: int
    api_port: int
    data_dir: Path
    config: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.pg_port}"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """kill -9 of Patroni and its postmaster, as a machine dying would."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        pid = self.postmaster_pid()
        if pid is not None:
            # Its whole group: Patroni starts it in a session of its own, and
            # the backends left behind would keep answering.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)


@dataclass
class Cluster:
    root: Path
    etcd_port: int
    nodes: list[Node] = field(default_factory=list)

    def hosts(self, first: Node | None = None) -> list[str]:
        ordered = sorted(self.nodes, key=lambda node: node is not first)
        return [node.host for node in ordered]

    def members(self) -> list[dict[str, object]]:
        """The members as Patroni's REST API lists them (any live node answers)."""
        for node in self.nodes:
            url = f"http://127.0.0.1:{node.api_port}/cluster"
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(url, timeout=2) as answer,
            ):
                members: list[dict[str, object]] = json.load(answer)["members"]
                return members
        return []

    def node(self, name: object) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def leader(self) -> Node | None:
        for member in self.members():
            if member.get("role") == "leader" and member.get("state") == "running":
                return self.node(member["name"])
        return None

    def replicating(self) -> bool:
        """Every other node replicates, one of them synchronously."""
        members = self.members()
        roles = [m.get("role") for m in members if m.get("state") in ("running", "streaming")]
        return (
            "sync_standby" in roles and roles.count("leader") == 1 and len(roles) == len(self.nodes)
        )

    async def wait_healthy(self) -> Node:
        """Until a leader accepts writes and the other nodes replicate from it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_SECONDS
        while loop.time() < deadline:
            leader = await asyncio.to_thread(self.leader)
            replicating = leader is not None and await asyncio.to_thread(self.replicating)
            if leader and replicating and await accepts_writes(leader):
                return leader
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the Patroni cluster never became healthy:\n{self.logs()}")

    async def switchover(self) -> None:
        """`patronictl switchover --force` to the synchronous standby."""
        assert PATRONICTL
        leader = self.leader()
        assert leader is not None
        command = [
            *AS_CLUSTER_USER,
            PATRONICTL,
            "-c",
            str(leader.config),
            "switchover",
            "--force",
            SCOPE,
        ]
        done = await asyncio.to_thread(
            subprocess.run,
            command,
            capture_output=True,
            text=True,
            cwd=self.root,
            env={"HOME": str(self.root), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            timeout=START_TIMEOUT_SECONDS,
        )
        assert done.returncode == 0 and "Successfully" in done.stdout, done

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.root.glob("*.log"))
        )


async def accepts_writes(node: Node) -> bool:
    try:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=node.pg_port, user="postgres", database="postgres", timeout=2
        )
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    try:
        return not await conn.fetchval("SELECT pg_is_in_recovery()")
    except (OSError, asyncpg.PostgresError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


def _give_to_postgres(path: Path) -> None:
    if RUN_AS:
        account = pwd.getpwnam(RUN_AS)
        os.chown(path, account.pw_uid, account.pw_gid)


def _node_config(cluster: Cluster, node: Node) -> str:
    config = {
        "scope": SCOPE,
        "name": node.name,
        "log": {"level": "WARNING"},
        "restapi": {
            "listen": f"127.0.0.1:{node.api_port}",
            "connect_address": f"127.0.0.1:{node.api_port}",
        },
        "etcd3": {"hosts": [f"127.0.0.1:{cluster.etcd_port}"]},
        "bootstrap": {
            "dcs": {
                "ttl": TTL_SECONDS,
                "loop_wait": LOOP_WAIT_SECONDS,
                "retry_timeout": RETRY_TIMEOUT_SECONDS,
                # Only the synchronous standby may take over: no acknowledged write is lost.
                "synchronous_mode": True,
                "postgresql": {
                    "use_pg_rewind": True,
                    "parameters": {"wal_log_hints": "on", "max_connections": 100},
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}],
        },
        "postgresql": {
            "listen": node.host,
            "connect_address": node.host,
            "data_dir": str(node.data_dir),
            "bin_dir": str(PG_BIN),
            "pgpass": str(cluster.root / f"pgpass-{node.name}"),
            "authentication": {
                "superuser": {"username": "postgres", "password": "postgres"},
                "replication": {"username": "postgres", "password": "postgres"},
            },
            "pg_hba": [
                "local all all trust",
                "host all all 127.0.0.1/32 trust",
                "host replication all 127.0.0.1/32 trust",
            ],
            "parameters": {"unix_socket_directories": str(cluster.root)},
        },
    }
    return json.dumps(config)  # JSON is YAML


async def _start(cluster: Cluster, name: str, *args: str) -> asyncio.subprocess.Process:
    log = (cluster.root / f"{name}.log").open("wb")
    try:
        return await asyncio.create_subprocess_exec(
            *AS_CLUSTER_USER,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cluster.root,
            start_new_session=True,
        )
    finally:
        log.close()


@asynccontextmanager
async def patroni_cluster(size: int = 3) -> AsyncIterator[Cluster]:
    """etcd and `size` Patroni nodes, yielded once healthy; all killed afterwards."""
    assert PATRONI and ETCD, MISSING
    # Not the test's tmp_path: pytest keeps that root's own, and postgres must enter it.
    root = Path(tempfile.mkdtemp(prefix="billing-patroni-"))
    _give_to_postgres(root)
    peer_port = free_port()
    cluster = Cluster(root, free_port())
    etcd = await _start(
        cluster,
        "etcd",
        ETCD,
        "--data-dir",
        str(root / "etcd"),
        "--listen-client-urls",
        f"http://127.0.0.1:{cluster.etcd_port}",
        "--advertise-client-urls",
        f"http://127.0.0.1:{cluster.etcd_port}",
        "--listen-peer-urls",
        f"http://127.0.0.1:{peer_port}",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{peer_port}",
        "--initial-cluster",
        f"default=http://127.0.0.1:{peer_port}",
    )
    try:
        for index in range(size):
            name = f"node{index}"
            node = Node(name, free_port(), free_port(), root / name, root / f"{name}.yml")
            node.config.write_text(_node_config(cluster, node))
            _give_to_postgres(node.config)
            cluster.nodes.append(node)
        for node in cluster.nodes:
            node.process = await _start(cluster, node.name, PATRONI, str(node.config))
            if node is cluster.nodes[0]:
                # The first node bootstraps alone; the others then clone it.
                await _wait_for_leader(cluster)
        await cluster.wait_healthy()
        yield cluster
    finally:
        for node in cluster.nodes:
            node.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(etcd.pid, signal.SIGKILL)
        await etcd.wait()
        for node in cluster.nodes:
            if node.process is not None:
                await node.process.wait()
        shutil.rmtree(root, ignore_errors=True)


async def _wait_for_leader(cluster: Cluster) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_SECONDS
    while await asyncio.to_thread(cluster.leader) is None:
        if loop.time() > deadline:
            raise TimeoutError(f"Patroni never elected a leader:\n{cluster.logs()}")
        await asyncio.sleep(0.5)
