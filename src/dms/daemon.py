"""``nunet run``: wiring and lifecycle of one DMS process.

Loads the ``dms`` context (its key is the host key: DMS DID = actor ID = peer ID), starts the
libp2p host, the node actor and the REST API in one trio nursery, and reports readiness. Cancelling
the nursery is the whole shutdown: every component owns its tasks and sockets and closes them on
cancellation, so SIGINT/SIGTERM simply cancel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from fastapi import FastAPI

from dms.actor import SecurityContext
from dms.api import create_app, serve_api
from dms.config import Config
from dms.contexts import context_exists, context_file_name
from dms.crypto import Ed25519PrivateKey
from dms.db import DEFAULT_FILE_NAME, Database, DeploymentRepo
from dms.did import KeyProvider, provider_for_context
from dms.errors import ConfigError, DMSError, InvalidInput
from dms.executor import ExecutorSettings
from dms.jobs import AllocationManager
from dms.network import Libp2pNetwork, Network
from dms.node import Node
from dms.orchestrator import OrchestratorSettings, supervision_settings
from dms.resources import PortAllocator, ResourceManager, detect_machine
from dms.subnet import Libp2pStreamTransport, SubnetManager, UdpTransport
from dms.ucan import CapabilityContext, cap_path, load_context, new_context, reload_context

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger("dms.daemon")

#: How often a running DMS checks its .cap file for changes made by `nunet cap` (seconds).
CAPABILITY_RELOAD_INTERVAL = 2.0


@dataclass(frozen=True)
class Ready:
    """What a started daemon reports: who it is and where to reach it."""

    peer_id: str
    did: str
    rest_url: str
    listen_addresses: tuple[str, ...]


def tcp_listen_addresses(addresses: list[str]) -> list[str]:
    """The listen addresses py-libp2p can serve (TCP); others (QUIC) are logged and skipped."""
    usable = [a for a in addresses if "/tcp/" in a and "/ws" not in a]
    skipped = [a for a in addresses if a not in usable]
    if skipped:
        log.info("not listening on %s: only TCP transports are available", ", ".join(skipped))
    if not usable:
        raise ConfigError("p2p.listen_address has no TCP address (e.g. /ip4/0.0.0.0/tcp/9000)")
    return usable


def subnet_udp_address(addresses: list[str]) -> tuple[str, int]:
    """Where the ``udp`` subnet transport binds: the host and port of the first listen address.

    A ``/udp/N`` address (the Go DMS's QUIC listener) gives its port; otherwise the first TCP
    address's port number is tried for UDP too (one number to open in a firewall), and any
    free port is used when it is taken (or 0).
    """
    first: tuple[str, int] | None = None
    for address in addresses:
        parts = address.split("/")
        if len(parts) < 5 or parts[1] != "ip4" or parts[3] not in ("udp", "tcp"):
            continue
        try:
            candidate = (parts[2], int(parts[4]))
        except ValueError:
            continue
        if parts[3] == "udp":
            return candidate
        first = first or candidate
    return first or ("0.0.0.0", 0)


def load_dms_identity(
    user_dir: Path, context: str, passphrase: Callable[[bool], str]
) -> tuple[Ed25519PrivateKey, CapabilityContext]:
    """The DMS key and capability context, created on first run as the Go DMS does."""
    provider = provider_for_context(user_dir, context, passphrase, create=True)
    if not isinstance(provider, KeyProvider) or not isinstance(
        provider.private_key, Ed25519PrivateKey
    ):
        raise InvalidInput(
            f"context {context!r} cannot run a DMS: the host needs a local Ed25519 key"
        )
    name = context_file_name(context)
    if context_exists(user_dir, context):
        capabilities = load_context(user_dir, name, provider)
    else:
        capabilities = new_context(user_dir, name, provider)
        log.info("created capability context %r for %s", name, provider.did.uri)
    return provider.private_key, capabilities


class Daemon:
    """One DMS: network + node actor + REST API, started and stopped together."""

    def __init__(
        self,
        config: Config,
        key: Ed25519PrivateKey,
        capabilities: CapabilityContext,
        *,
        network: Network | None = None,
        resources: ResourceManager | None = None,
        store: Database | None = None,
    ) -> None:
        """``resources`` and ``store`` default to the work dir's store (opened and closed here);
        pass both to share them (the allocation manager keeps its records in ``store``)."""
        self.config = config
        self._store: Database | None = None
        if resources is None:
            # Opened once, before the node runs (not on a message path): blocking is fine here.
            if store is None:
                self._store = store = Database.open(config.general.work_dir / DEFAULT_FILE_NAME)
            ports = PortAllocator(
                store,
                config.general.port_available_range_from,
                config.general.port_available_range_to,
            )
            resources = ResourceManager(store, detect_machine(config.general.work_dir), ports=ports)
        self.resources = resources
        #: Carries the packets of this node's subnets (run with the daemon; None without a store).
        self.subnet_transport: UdpTransport | None = None
        self.network = network or Libp2pNetwork(
            key,
            tcp_listen_addresses([str(a) for a in config.p2p.listen_address]),
            [str(a) for a in config.p2p.bootstrap_peers],
        )
        self.security = SecurityContext(key, capabilities)
        self.node = Node(self.network, self.security, config, resources=resources)
        #: The allocations this node runs and the executors they run on (None without a store).
        self.allocations: AllocationManager | None = None
        if store is not None:
            settings = ExecutorSettings(
                executor_id=node_executor_id(self.network.host_id),
                work_dir=config.general.work_dir,
                allow_privileged=config.job.allow_privileged_docker,
            )
            self.allocations = AllocationManager(
                self.node.actor, resources, store, self.node.executors, settings
            )
            self.node.allocations = self.allocations
            self.node.deployments.repo = DeploymentRepo(store)
            # Subnets between the allocations of an ensemble (issue 14).
            host, port = subnet_udp_address([str(a) for a in config.p2p.listen_address])
            self.subnet_transport = UdpTransport(
                self.network, Libp2pStreamTransport(self.network), host=host, port=port
            )
            self.node.subnets.manager = SubnetManager(
                self.subnet_transport,
                local_peer=self.network.host_id,
                state_dir=config.general.work_dir / "subnets",
            )
            self.allocations.hooks = self.node.subnets
        # How this node's orchestrators supervise their deployments (``job.*`` config keys).
        self.node.deployments.settings = OrchestratorSettings(
            supervision=supervision_settings(config.job)
        )

    async def run(self, *, task_status: TaskStatus[Ready] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``task_status.started`` gets the :class:`Ready` report."""
        start = time.monotonic()
        app = create_app(self.network, lambda: self.node.actor.handle)
        try:
            await self._check_onboarding()
            await self._serve(start, app, task_status)
        finally:
            if self._store is not None:
                self._store.close()

    async def _check_onboarding(self) -> None:
        """Offboard when the stored onboarding no longer fits this machine (as Go does)."""
        reason = await trio.to_thread.run_sync(self.resources.check_stored)
        if reason is not None:
            await trio.to_thread.run_sync(self.resources.offboard)
            log.warning("offboarded: the stored onboarding no longer fits this machine: %s", reason)

    async def _serve(self, start: float, app: FastAPI, task_status: TaskStatus[Ready]) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.network.run)
            if self.subnet_transport is not None:
                await nursery.start(self.subnet_transport.run)
            await nursery.start(self.node.run)
            if self.allocations is not None:
                await nursery.start(self.allocations.run)
            port = await nursery.start(serve_api, app, self.config.rest.addr, self.config.rest.port)
            host = self.config.rest.addr
            rest_url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
            ready = Ready(
                peer_id=self.network.host_id,
                did=self.security.did.uri,
                rest_url=rest_url,
                listen_addresses=tuple(self.network.listen_addresses()),
            )
            log.info(
                "DMS ready in %.2fs: peer %s, REST %s, listening on %s",
                time.monotonic() - start,
                ready.peer_id,
                ready.rest_url,
                " ".join(ready.listen_addresses),
            )
            task_status.started(ready)
            nursery.start_soon(self._watch_capabilities)
            nursery.start_soon(self.resources.run_expiry)

    async def _watch_capabilities(self) -> None:
        """Apply ``nunet cap anchor|remove`` changes to the running DMS (Go reloads too)."""
        capabilities = self.security.capabilities
        path = cap_path(self.config.general.user_dir, capabilities.name)
        last = _mtime(path)
        while True:
            await trio.sleep(CAPABILITY_RELOAD_INTERVAL)
            current = _mtime(path)
            if current == last:
                continue
            last = current
            try:
                await trio.to_thread.run_sync(
                    reload_context, self.config.general.user_dir, capabilities
                )
            except DMSError as exc:
                log.warning("kept the previous capability anchors: %s", exc)
            else:
                log.info("reloaded capability context %r from %s", capabilities.name, path)


def node_executor_id(peer_id: str) -> str:
    """This node's executor ID: stable across restarts (so a restarted DMS finds what it left)
    and short, since Docker container names are built from it."""
    return "dms-" + peer_id[-12:]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
