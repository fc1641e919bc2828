"""A local DMS network: N real ``nunet run`` processes on loopback, wired as a user would.

Used by the integration tests, the README demo and the benchmarks. ``up`` creates, under one base
directory, a ``user`` identity and one directory per node (its ``dms`` key and context, its
``dms_config.json`` with its own REST and p2p ports), and sets up the capabilities a user would:

* the user's DID is a root anchor of every node's ``dms`` context (the user may do anything);
* the user grants every node ``/public``, ``/broadcast`` and ``/dms/deployment`` on topic
  ``/nunet``, which the node keeps as a provide anchor — so node A's messages to node B carry a
  chain ending in the user's DID, which B trusts as a root.

Then it starts the daemons (node 0 first; the others bootstrap from it), waits for each REST API,
and writes ``devnet.json`` describing the network so ``status``, ``down`` and tests can find it.
All keys share one passphrase (``DEVNET_PASSPHRASE``), which is fine for a throw-away network.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from dms.crypto import Ed25519PrivateKey, peer_id_from_public_key
from dms.did import KeyProvider, did_from_public_key, keystore_for
from dms.errors import DMSError, InvalidInput
from dms.ucan import CapabilityContext, new_context, save_context

DEVNET_PASSPHRASE = "devnet passphrase, not for real keys"
STATE_FILE = "devnet.json"
GRANTED_CAPS = ("/public", "/broadcast", "/dms/deployment")
GRANT_TOPICS = ("/nunet",)
GRANT_LIFETIME_NS = 30 * 24 * 3600 * 10**9
START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class DevnetNode:
    """One daemon of the devnet."""

    name: str
    directory: str
    peer_id: str
    did: str
    rest_port: int
    p2p_port: int
    pid: int = 0

    @property
    def config_path(self) -> Path:
        return Path(self.directory) / "dms_config.json"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def address(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{self.peer_id}"

    @property
    def log_path(self) -> Path:
        return Path(self.directory) / "dms.log"


@dataclass
class Devnet:
    """A running (or described) local network."""

    base: str
    user_did: str
    nodes: list[DevnetNode] = field(default_factory=list)

    @property
    def user_dir(self) -> Path:
        """Where the ``user`` identity lives (the CLI's ``general.user_dir``)."""
        return Path(self.base) / "user"

    def cli_env(self, node: int = 0) -> dict[str, str]:
        """Environment for running ``nunet`` as the user against node ``node``."""
        target = self.nodes[node]
        return {
            **os.environ,
            "DMS_PASSPHRASE": DEVNET_PASSPHRASE,
            "DMS_GENERAL_USER_DIR": str(self.user_dir),
            "DMS_REST_PORT": str(target.rest_port),
        }

    def save(self) -> None:
        path = Path(self.base) / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, base: Path) -> Devnet:
        path = base / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InvalidInput(f"no devnet in {base} (run: nunet devnet up)") from None
        nodes = [DevnetNode(**n) for n in data.pop("nodes")]
        return cls(nodes=nodes, **data)


def _make_identity(user_dir: Path, name: str) -> KeyProvider:
    key = Ed25519PrivateKey.generate()
    keystore_for(user_dir).save(name, key, DEVNET_PASSPHRASE)
    return KeyProvider(key)


def _node_config(node: DevnetNode, bootstrap: list[str], log_level: str) -> dict[str, object]:
    return {
        "general": {
            "user_dir": str(Path(node.directory) / "nunet"),
            "work_dir": str(Path(node.directory) / "work"),
            "data_dir": str(Path(node.directory) / "work" / "data"),
        },
        "rest": {"addr": "127.0.0.1", "port": node.rest_port},
        "p2p": {
            "listen_address": [f"/ip4/127.0.0.1/tcp/{node.p2p_port}"],
            "bootstrap_peers": bootstrap,
        },
        "profiler": {"enabled": False},
        "observability": {"log_level": log_level},
    }


def _merged(config: dict[str, object], extra: Mapping[str, object]) -> dict[str, object]:
    """``config`` with ``extra`` laid over it, section by section (nested objects merged)."""
    out = dict(config)
    for key, value in extra.items():
        current = out.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            out[key] = _merged(current, value)
        else:
            out[key] = value
    return out


def create(
    base: Path,
    count: int,
    *,
    log_level: str = "INFO",
    extra_config: Mapping[str, object] | None = None,
    node_config: Mapping[int, Mapping[str, object]] | None = None,
    node_caps: Mapping[int, tuple[str, ...]] | None = None,
) -> Devnet:
    """Write keys, contexts and configs for ``count`` nodes under ``base`` (nothing started).

    ``extra_config`` (``dms_config.json`` keys, e.g. ``{"general": {"host_country": "ET"}}``)
    is merged into every node's config; ``node_config`` maps a node index to keys merged into
    that node's only (e.g. a different location per provider); ``node_caps`` replaces the
    capabilities the user grants one node (default :data:`GRANTED_CAPS`).
    """
    if count < 1:
        raise InvalidInput("a devnet needs at least one node")
    if (base / STATE_FILE).exists():
        raise InvalidInput(f"a devnet already exists in {base}; run: nunet devnet down --purge")
    if base.exists() and any(base.iterdir()):
        raise InvalidInput(f"{base} is not empty; choose another --dir for a new devnet")
    base.mkdir(parents=True, exist_ok=True)
    user_dir = base / "user"
    user = _make_identity(user_dir, "user")
    user_ctx = new_context(user_dir, "user", user)
    net = Devnet(base=str(base), user_did=user.did.uri)
    now = time.time_ns()
    for index in range(count):
        directory = base / f"node{index}"
        dms = _make_identity(directory / "nunet", "dms")
        ctx = CapabilityContext(dms, name="dms")
        ctx.add_roots([user.did])
        grant = user_ctx.grant(
            "delegate",
            dms.did,
            topics=GRANT_TOPICS,
            expire_ns=now + GRANT_LIFETIME_NS,
            caps=(node_caps or {}).get(index, GRANTED_CAPS),
        )
        ctx.add_provide(grant.tokens)
        save_context(directory / "nunet", ctx)
        net.nodes.append(
            DevnetNode(
                name=f"node{index}",
                directory=str(directory),
                peer_id=str(peer_id_from_public_key(dms.private_key.public_key)),
                did=did_from_public_key(dms.private_key.public_key).uri,
                rest_port=free_port(),
                p2p_port=free_port(),
            )
        )
    bootstrap = [net.nodes[0].address]
    for index, node in enumerate(net.nodes):
        config = _node_config(node, bootstrap if index else [], log_level)
        if extra_config:
            config = _merged(config, extra_config)
        if node_config and index in node_config:
            config = _merged(config, node_config[index])
        node.config_path.write_text(json.dumps(config, indent=2) + "\n")
    net.save()
    return net


def _nunet() -> str:
    return str(Path(sys.executable).parent / "nunet")


def _wait_ready(node: DevnetNode, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = node.log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise DMSError(f"{node.name} exited during start-up: {' | '.join(tail)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{node.rest_url}/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise DMSError(f"{node.name} did not answer on {node.rest_url} within {START_TIMEOUT_S:g}s")


def start(
    net: Devnet,
    *,
    extra_args: tuple[str, ...] = (),
    node_env: Mapping[int, Mapping[str, str]] | None = None,
    only: Sequence[int] | None = None,
) -> None:
    """Start every node's daemon (detached; logs in ``<node>/dms.log``) and wait until ready.

    ``node_env`` adds environment variables to one node's process (e.g. ``DMS_FAILPOINTS``);
    ``only`` starts just those nodes (e.g. one that was killed, with its state kept).
    """
    env = {**os.environ, "DMS_PASSPHRASE": DEVNET_PASSPHRASE}
    for key in [k for k in env if k.startswith("DMS_") and k != "DMS_PASSPHRASE"]:
        del env[key]  # each node's own config file decides
    try:
        for index, node in enumerate(net.nodes):
            if only is not None and index not in only:
                continue
            with node.log_path.open("ab") as log:
                process = subprocess.Popen(
                    [_nunet(), "--config", str(node.config_path), "run", *extra_args],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env={**env, **((node_env or {}).get(index) or {})},
                    start_new_session=True,
                )
            node.pid = process.pid
            net.save()
            _wait_ready(node, process, time.monotonic() + START_TIMEOUT_S)
    except BaseException:
        stop(net)
        raise


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) is not alive
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def kill(net: Devnet, index: int) -> None:
    """SIGKILL one node's daemon (a crash: nothing is cleaned up) and wait until it is gone."""
    node = net.nodes[index]
    if _alive(node.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(node.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    node.pid = 0
    net.save()


def stop(net: Devnet, *, timeout: float = 5.0) -> None:
    """SIGTERM every node, SIGKILL what is still alive after ``timeout``."""
    for node in net.nodes:
        if _alive(node.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
                os.kill(node.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for node in net.nodes:
        while _alive(node.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(node.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGKILL)
        node.pid = 0
    net.save()


def status(net: Devnet) -> list[dict[str, object]]:
    """Per node: name, pid, alive, REST health, peer ID, address."""
    rows: list[dict[str, object]] = []
    for node in net.nodes:
        healthy = False
        with contextlib.suppress(httpx.HTTPError):
            healthy = httpx.get(f"{node.rest_url}/health", timeout=1.0).status_code == 200
        rows.append(
            {
                "name": node.name,
                "pid": node.pid,
                "alive": _alive(node.pid),
                "healthy": healthy,
                "rest": node.rest_url,
                "peer_id": node.peer_id,
                "address": node.address,
            }
        )
    return rows


def up(base: Path, count: int) -> Devnet:
    """Start the devnet in ``base``: the existing one if it is there, else a new one."""
    if (base / STATE_FILE).exists():
        net = Devnet.load(base)
        if any(_alive(node.pid) for node in net.nodes):
            raise InvalidInput(f"the devnet in {base} is already running")
        if count != len(net.nodes):
            raise InvalidInput(
                f"the devnet in {base} has {len(net.nodes)} nodes; "
                "remove it first with: nunet devnet down --purge"
            )
    else:
        net = create(base, count)
    start(net)
    return net


def default_onboarding() -> tuple[float, str, str]:
    """What each devnet provider offers: 1 core, a little over the 10 % minimum of this
    machine's RAM (several providers share one machine), and 2 GiB of disk."""
    import psutil  # type: ignore[import-untyped]

    total_gib = psutil.virtual_memory().total / 2**30
    ram_gib = max(0.5, math.ceil(total_gib * 0.12 * 10) / 10)
    return 1.0, f"{ram_gib:g}GiB", "2GiB"


def onboard(
    net: Devnet,
    indexes: Iterable[int],
    *,
    cpu: float | None = None,
    ram: str | None = None,
    disk: str | None = None,
) -> None:
    """Onboard the nodes at ``indexes`` as the devnet's user would (``/dms/node/onboarding/onboard``
    through each node's REST API); defaults from :func:`default_onboarding`."""
    from dms.client import RestClient, build_message
    from dms.contexts import open_context
    from dms.node import ONBOARD, onboard_payload

    d_cpu, d_ram, d_disk = default_onboarding()
    payload = onboard_payload(cpu or d_cpu, ram or d_ram, disk or d_disk, no_gpu=True)
    user = open_context(net.user_dir, "user", lambda _confirm: DEVNET_PASSPHRASE)
    for index in indexes:
        node = net.nodes[index]
        rest = RestClient(node.rest_url)
        message = build_message(
            user, rest.handle(), ONBOARD, payload, invocation=True, timeout_s=30
        )
        reply = rest.invoke(message.envelope).decode_payload()
        if not isinstance(reply, dict) or not reply.get("success"):
            error = reply.get("error") if isinstance(reply, dict) else reply
            raise DMSError(f"{node.name}: onboarding refused: {error}")


def down(base: Path, *, purge: bool = False) -> None:
    """Stop the devnet in ``base``; ``purge`` also deletes its directory (keys, logs, state)."""
    net = Devnet.load(base)
    stop(net)
    if purge:
        shutil.rmtree(base)
