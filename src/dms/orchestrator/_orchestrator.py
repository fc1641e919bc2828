"""One deployment's orchestrator: bid, match, commit, allocate, start, then watch (spec §8).

An orchestrator is a child actor of the node actor with a fresh Ed25519 key and inbox = its ID
(hex SHA-256 of the host's peer ID and a UUIDv1, as in Go); the ensemble ID is the same string.
It answers ``/dms/deployment/bid`` (bids and declines) and ``/dms/orchestrator/task-termination``
(allocations that ended).

Its loop, until the deadline: Preparing → bid round → Committing → two-phase commit →
Provisioning → start allocations in ``depends_on`` order → Running. A failed commit or
allocation excludes the providers that failed and goes round again with the bids still valid;
a round that shows the ensemble cannot be placed ends the deployment at once (Failed, with the
matcher's explanation). A task-only ensemble becomes Completed when every task exited 0 and
Failed (naming the allocation, its exit code and last log lines) when one did not.

Every transition is written to the store (through ``persist``) before the step it announces
runs, with the events so far, so ``nunet deployment status`` and a restarted DMS see it.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import TYPE_CHECKING, Any

import trio

from dms import gojson
from dms.actor import Actor, Envelope, Handle
from dms.crypto import (
    Ed25519PrivateKey,
    PrivateKey,
    marshal_private_key,
    unmarshal_private_key,
)
from dms.db import DeploymentRecord
from dms.errors import DMSError
from dms.jobs import (
    ALLOCATION_LIVENESS,
    ALLOCATION_LOGS,
    ALLOCATION_RESTART,
    ALLOCATION_START,
    ALLOCATION_STOP,
    DEPLOYMENT_BID,
    EDGE_CONSTRAINT,
    TASK_TERMINATION,
    AllocationLogs,
    Ensemble,
    HealthCheck,
    OkResponse,
    TaskTermination,
    allocation_id,
)
from dms.orchestrator._bidding import (
    BidBook,
    BiddingSettings,
    EdgeBook,
    run_round,
)
from dms.orchestrator._commit import CommitFailed, Committed, revert_all, two_phase_commit
from dms.orchestrator._demands import bid_request, edges_of, node_demands
from dms.orchestrator._edge import EdgeConstraintRequest
from dms.orchestrator._events import Event, log_event
from dms.orchestrator._manifest import (
    ALLOC_COMPLETED,
    ALLOC_FAILED,
    ALLOC_PENDING,
    ALLOC_RUNNING,
    ALLOC_STOPPED,
    AllocationManifest,
    EnsembleManifest,
    NodeManifest,
)
from dms.orchestrator._matcher import Edge, Match
from dms.orchestrator._provision import SubnetProvisioner
from dms.orchestrator._recovery import SupervisionSettings
from dms.orchestrator._status import DeploymentStatus
from dms.orchestrator._supervisor import Supervisor

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: Go refuses a deployment whose request expires sooner than this (seconds).
MIN_REQUEST_LIFETIME = 59.0
#: Go deploys until the request's expiry minus this margin (seconds).
DEADLINE_MARGIN = 15.0
START_TIMEOUT = 300.0
STOP_TIMEOUT = 15.0
LOGS_TIMEOUT = 10.0
EDGE_TIMEOUT = 5.0
#: Lifetime of the grant that lets providers report to us (re-granted while running).
REPORT_GRANT_NS = 3600 * 10**9
#: Last lines of a failed task's output quoted in the deployment's error.
ERROR_TAIL_LINES = 5
#: What providers' allocations may send us: their end and their heartbeats.
REPORT_BEHAVIORS = (TASK_TERMINATION, ALLOCATION_LIVENESS)


class PlacementFailed(DMSError):
    """Nodes could not be placed (and committed) before their deadline; the message says why."""


Persist = Callable[["Orchestrator"], Awaitable[None]]


def new_orchestrator_id(host_peer_id: str) -> str:
    """Go's orchestrator/ensemble ID: hex SHA-256 of the host peer ID and a UUIDv1."""
    return sha256((host_peer_id + str(uuid.uuid1())).encode()).hexdigest()


@dataclass
class Output:
    """What an ended allocation printed (the tail its provider sent with the termination)."""

    stdout: bytes = b""
    stderr: bytes = b""


@dataclass
class OrchestratorSettings:
    """Timing knobs of an orchestrator (tests and benchmarks shorten them)."""

    bidding: BiddingSettings = field(default_factory=BiddingSettings)
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)
    retry_pause: float = 0.2
    start_timeout: float = START_TIMEOUT
    #: How long placing a lost node elsewhere may take before the deployment gives it up.
    redeploy_timeout: float = 120.0


class Orchestrator:
    """See the module docstring. Run with ``await nursery.start(orch.run, deadline)``."""

    def __init__(
        self,
        parent: Actor,
        ensemble: Ensemble,
        *,
        persist: Persist,
        candidates: Callable[[], Sequence[str]],
        handle_of: Callable[[str], Handle],
        orchestrator_id: str | None = None,
        key: PrivateKey | None = None,
        settings: OrchestratorSettings | None = None,
    ) -> None:
        self.id = orchestrator_id or new_orchestrator_id(parent.network.host_id)
        self.key = key or Ed25519PrivateKey.generate()
        self.ensemble = ensemble
        #: What the store keeps of the config and key, computed once (saved at every step).
        self.config_json = ensemble.to_json().decode()
        self.key_bytes = marshal_private_key(self.key)
        self.settings = settings or OrchestratorSettings()
        self.actor = parent.create_child(self.id, key=self.key)
        self._persist = persist
        self._candidates = candidates
        self._handle_of = handle_of
        self.status = DeploymentStatus.PREPARING
        self.error = ""
        self.explanation: list[str] = []
        self.events: list[Event] = []
        self.manifest = EnsembleManifest(id=self.id, orchestrator=self.actor.handle)
        self.outputs: dict[str, Output] = {}
        self.created_ns = time.time_ns()
        self._demands = node_demands(ensemble)
        self._book = BidBook(self.id, self._demands)
        #: The book the current bid round fills (the first placement's, or a redeploy's).
        self._active_book = self._book
        self._edges = EdgeBook()
        self._excluded: set[str] = set(ensemble.exclude_peers)
        self._nonce = 0
        self._changed = trio.Event()
        self._wake = trio.Event()
        self._ended = trio.Event()
        #: Set when every task ended and the deployment is being wound up (once only).
        self._finishing = False
        #: Built from a stored record after a restart of the DMS (see :meth:`restore`).
        self.restored = False
        #: Provider DIDs granted the report behaviours (once each).
        self._granted: set[str] = set()
        #: Nodes already placed elsewhere by escalation (escalation redeploys a node once).
        self.escalated: set[str] = set()
        self.supervisor = Supervisor(self, self.settings.supervision)
        #: The deployment's private network (when the ensemble needs one).
        self.subnet = SubnetProvisioner(
            self.actor,
            self.id,
            ensemble,
            self.manifest,
            handle_of=self._handle_of,
            progress=self._event,
        )

    @property
    def ensemble_id(self) -> str:
        return self.id

    # -- state -----------------------------------------------------------------------------

    def _event(self, message: str) -> None:
        self.record(message)

    def record(
        self,
        message: str,
        *,
        kind: str = "progress",
        subject: str = "",
        status: str = "",
        reason: str = "",
    ) -> None:
        """Add an event (what happened, to what, the new state and why) and log it as one
        structured line."""
        event = Event.now(message, kind=kind, subject=subject, status=status, reason=reason)
        self.events.append(event)
        log_event(self.id, event)
        self._changed.set()
        self._changed = trio.Event()

    async def save(self) -> None:
        """Write the current state to the store."""
        await self._persist(self)

    @property
    def stopping(self) -> bool:
        """Whether the deployment is being wound up (shut down or ended by its tasks)."""
        return self._finishing or self._wake.is_set()

    def handle_of(self, peer: str) -> Handle:
        return self._handle_of(peer)

    def allocation_name(self, alloc_id: str) -> str | None:
        """The name of the allocation whose ID is ``alloc_id`` (None: not ours)."""
        return next((n for n, a in self.manifest.allocations.items() if a.id == alloc_id), None)

    async def _set_status(self, status: DeploymentStatus, message: str) -> None:
        self.status = status
        self.record(
            f"{status.label}: {message}" if message else status.label,
            kind="deployment",
            status=status.label,
            reason=message,
        )
        await self._persist(self)
        if status.terminal:
            self._ended.set()
            self._wake.set()

    def snapshot(self) -> str:
        """The store's ``snapshot``: events, explanation and error (JSON text)."""
        return gojson.marshal(
            gojson.Struct(
                error=self.error,
                explanation=self.explanation,
                events=self.events,
                subnet=self.subnet.to_dict(),
            )
        ).decode()

    async def wait_ended(self) -> None:
        """Until the deployment is Completed or Failed."""
        await self._ended.wait()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(
        self, deadline: float, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Deploy before trio time ``deadline``, then watch until ended or shut down."""
        async with trio.open_nursery() as nursery:
            self.actor.add_behavior(DEPLOYMENT_BID, self._on_bid)
            self.actor.add_behavior(TASK_TERMINATION, self._on_termination)
            self.actor.add_behavior(ALLOCATION_LIVENESS, self.supervisor.on_liveness)
            await nursery.start(self.actor.run)
            await self._persist(self)
            task_status.started()
            try:
                if self.restored:
                    await self._resume()
                else:
                    await self._deploy(deadline)
            except DMSError as exc:
                await self._fail(str(exc))
            if self.status is DeploymentStatus.RUNNING:
                await nursery.start(self.supervisor.run)
            if not self.status.terminal:
                await self._wake.wait()  # shut down, or ended by its tasks
                if not self.status.terminal:
                    await self._shutdown()
            # Ended: the actor goes (its inbox and grants with it); status, manifest and
            # outputs stay on this object and in the store.
            nursery.cancel_scope.cancel()

    async def _on_bid(self, env: Envelope) -> None:
        self._active_book.receive(env)

    async def _fail(self, reason: str) -> None:
        self.error = reason
        await self._set_status(DeploymentStatus.FAILED, reason)

    async def _deploy(self, deadline: float) -> None:
        try:
            await self._place(sorted(self._demands), deadline, self._book, initial=True)
        except PlacementFailed as exc:
            await self._fail(str(exc))
            return
        if self.subnet.wanted:
            await self._set_status(DeploymentStatus.PROVISIONING, "building the subnet")
            try:
                await self.subnet.provision(list(self.manifest.allocations))
            except DMSError as exc:
                await self._stop_allocations()
                await self._fail(str(exc))
                return
        await self._set_status(DeploymentStatus.PROVISIONING, "starting allocations")
        failures = await self._start(list(self.manifest.allocations), deadline)
        if failures:
            reason = "; ".join(f"allocation {a} did not start: {e}" for a, e in failures.items())
            await self._stop_allocations()
            await self._fail(reason)
            return
        await self._set_status(DeploymentStatus.RUNNING, "every allocation started")
        await self._check_tasks_done()

    async def _place(
        self, nodes: list[str], deadline: float, book: BidBook, *, initial: bool
    ) -> dict[str, str]:
        """Bid for, match and commit ``nodes`` (the others keep their place), retrying without
        the providers that failed, until placed; raises :class:`PlacementFailed` with the
        reason. ``initial``: the first placement, whose steps are the deployment's statuses."""
        attempt = 0
        self._active_book = book
        while True:
            attempt += 1
            if trio.current_time() >= deadline:
                raise PlacementFailed(self._deadline_reason())
            result = await self._bid(deadline, nodes, book)
            self.explanation = result.explanation.lines()
            if result.placement is None:
                if trio.current_time() >= deadline:
                    raise PlacementFailed(self._deadline_reason())
                raise PlacementFailed("cannot be placed: " + result.explanation.summary)
            placement = result.placement
            self._event(
                "placement: " + ", ".join(f"{n} on {p[-8:]}" for n, p in sorted(placement.items()))
            )
            if initial:
                await self._set_status(DeploymentStatus.COMMITTING, f"attempt {attempt}")
            try:
                with trio.fail_at(deadline):
                    committed = await two_phase_commit(
                        self.actor,
                        self.id,
                        ensemble=self.ensemble,
                        placement=placement,
                        handle_of=self._handle_of,
                        progress=self._event,
                        liveness_interval_ns=round(
                            self.settings.supervision.liveness_interval * 1e9
                        ),
                    )
            except CommitFailed as exc:
                self._event(f"commit failed, excluding {len(exc.peers)} providers: {exc}")
                self._excluded |= exc.peers
                book.forget_peers(exc.peers | exc.reverted)
                if initial:
                    await self._set_status(DeploymentStatus.PREPARING, "placing again")
                await trio.sleep(self.settings.retry_pause)
                continue
            except trio.TooSlowError:
                raise PlacementFailed(self._deadline_reason()) from None
            self._fill_manifest(placement, committed, book)
            self._grant_reports()
            return placement

    def _deadline_reason(self) -> str:
        why = " ".join(self.explanation)
        return "deadline reached before the ensemble could be deployed" + (
            f": {why}" if why else ""
        )

    async def _bid(self, deadline: float, nodes: list[str], book: BidBook) -> Match:
        self._nonce += 1
        request = bid_request(
            self.id,
            self._nonce,
            demands=self._demands,
            ensemble=self.ensemble,
            nodes=nodes,
            excluded=frozenset(self._excluded),
        )
        pinned = {self._demands[n].peer for n in nodes if self._demands[n].peer}
        known = [p for p in self._candidates() if p not in self._excluded and p not in pinned]
        bidding = self.settings.bidding
        limit = min(bidding.max_direct, bidding.direct_per_node * len(nodes))
        # A random sample of the known providers (those we exchanged hello with come first
        # in ``known``; sampling keeps every orchestrator from asking the same few peers).
        chosen = known if len(known) <= limit else random.sample(known, limit)
        direct = sorted(pinned - self._excluded) + chosen
        self._event(f"asking {len(direct)} of {len(known) + len(pinned)} known providers for bids")
        return await run_round(
            self.actor,
            book,
            edges_of(self.ensemble),
            self._edges,
            self._measure_edge,
            request=request,
            direct=direct,
            handle_of=self._handle_of,
            excluded=frozenset(self._excluded),
            settings=self.settings.bidding,
            deadline=deadline,
            progress=self._event,
            broadcast_delay=bidding.broadcast_delay if len(known) >= limit else 0.0,
        )

    async def _measure_edge(self, a: str, b: str, edge: Edge) -> bool:
        """Ask provider ``a`` whether its link to ``b`` meets ``edge``."""
        request = EdgeConstraintRequest(
            ensemble_id=self.id, s=a, t=b, rtt=edge.rtt_ms, bw=edge.bw_bps
        )
        reply = await self.actor.invoke(
            self._handle_of(a), EDGE_CONSTRAINT, request, timeout=EDGE_TIMEOUT
        )
        answer = OkResponse.from_json(reply.decode_payload())
        self._event(
            f"edge {edge.s}-{edge.t} between {a[-8:]} and {b[-8:]}: "
            + ("ok" if answer.ok else f"fails ({answer.error})")
        )
        return answer.ok

    def _fill_manifest(
        self, placement: dict[str, str], committed: Committed, book: BidBook
    ) -> None:
        for node, peer in placement.items():
            offer = book.offers.get((peer, node))
            config = self.ensemble.nodes[node]
            self.manifest.nodes[node] = NodeManifest(
                id=node,
                peer=peer,
                handle=self._handle_of(peer),
                location=offer.location if offer else NodeManifest(id=node).location,
                allocations=list(config.allocations),
            )
            for alloc in config.allocations:
                alloc_config = self.ensemble.allocations[alloc]
                # The provider's leased ports; else the static ones the ensemble names (a
                # dynamic port's public number is the provider's to tell).
                ports = committed.ports.get(alloc) or {
                    p.public: p.private for p in config.ports if p.allocation == alloc and p.public
                }
                before = self.manifest.allocations.get(alloc)
                self.manifest.allocations[alloc] = AllocationManifest(
                    id=allocation_id(self.id, alloc),
                    node_id=node,
                    handle=committed.handles[alloc],
                    dns_name=f"{alloc_config.dns_name or alloc}.internal",
                    ports=ports,
                    healthcheck=healthcheck_mapping(alloc_config.healthcheck),
                    restarts=before.restarts if before is not None else 0,
                )

    def _grant_reports(self) -> None:
        """Let the providers' allocation actors report to us (Go grants the orchestrator
        namespace to allocations): a require anchor per provider DID, as Go's ``Grant``."""
        security = self.actor.security
        expire = security.now_ns() + REPORT_GRANT_NS
        granted: set[str] = set()
        for alloc in self.manifest.allocations.values():
            did = alloc.handle.did
            if did.empty() or did.uri in granted or did.uri in self._granted:
                continue
            granted.add(did.uri)
            try:
                tokens = security.grant(
                    did, security.actor_did, list(REPORT_BEHAVIORS), expire, depth=0
                )
                security.capabilities.add_require(tokens.tokens)
            except DMSError as exc:
                log.warning("could not grant reports to %s: %s", did.uri, exc)
        self._granted |= granted

    def _start_levels(self) -> list[list[str]]:
        """Allocations grouped so each group depends only on earlier groups."""
        order = self.ensemble.start_order()
        level: dict[str, int] = {}
        for alloc in order:
            deps = self.ensemble.allocations[alloc].depends_on
            level[alloc] = 1 + max((level[d] for d in deps), default=-1)
        groups: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
        for alloc in order:
            groups[level[alloc]].append(alloc)
        return groups

    async def _start(self, names: list[str], deadline: float) -> dict[str, str]:
        """Start ``names`` in ``depends_on`` order (each level in parallel); stops at the first
        level with a failure and returns ``{allocation: why}`` for those that did not start."""
        failures: dict[str, str] = {}
        wanted = set(names)

        async def start(alloc: str) -> None:
            manifest = self.manifest.allocations[alloc]
            try:
                timeout = max(1.0, min(self.settings.start_timeout, deadline - trio.current_time()))
                reply = await self.actor.invoke(
                    manifest.handle, ALLOCATION_START, None, timeout=timeout
                )
                answer = OkResponse.from_json(reply.decode_payload())
                if not answer.ok:
                    raise DMSError(answer.error or "start refused")
                if manifest.status not in (ALLOC_COMPLETED, ALLOC_FAILED):
                    manifest.status = ALLOC_RUNNING
                self.record(
                    f"allocation {alloc} started",
                    kind="allocation",
                    subject=alloc,
                    status="running",
                )
            except DMSError as exc:
                failures[alloc] = str(exc)
                manifest.status = ALLOC_FAILED
                manifest.error = str(exc)

        for group in self._start_levels():
            async with trio.open_nursery() as nursery:
                for alloc in group:
                    if alloc in wanted:
                        nursery.start_soon(start, alloc)
            if failures:
                return failures
            await self._persist(self)
        return failures

    # -- supervision (see _supervisor) ---------------------------------------------------------

    async def restart_allocation(self, name: str) -> str | None:
        """Ask ``name``'s allocation actor to restart its execution; None, or why it did not."""
        alloc = self.manifest.allocations[name]
        try:
            reply = await self.actor.invoke(
                alloc.handle, ALLOCATION_RESTART, alloc.id, timeout=self.settings.start_timeout
            )
            answer = OkResponse.from_json(reply.decode_payload())
            if not answer.ok:
                raise DMSError(answer.error or "restart refused")
        except DMSError as exc:
            alloc.status, alloc.error = ALLOC_FAILED, str(exc)
            return str(exc)
        alloc.status, alloc.exit_code, alloc.error = ALLOC_RUNNING, None, ""
        alloc.restarts += 1
        self.supervisor.started(name)
        return None

    async def redeploy_node(self, node: str, reason: str) -> str | None:
        """Place ``node`` on another provider (its current one excluded) and start its
        allocations there; None, or why it could not be done. The deployment stays Running."""
        old = self.manifest.nodes[node].peer
        if old:
            self._excluded.add(old)
        names = list(self.ensemble.nodes[node].allocations)
        for name in names:
            self.manifest.allocations[name].status = ALLOC_PENDING
        self.record(
            f"placing node {node} again ({reason})", kind="node", subject=node, status="redeploying"
        )
        book = BidBook(self.id, {node: self._demands[node]})
        deadline = trio.current_time() + self.settings.redeploy_timeout
        try:
            placement = await self._place([node], deadline, book, initial=False)
        except PlacementFailed as exc:
            self._mark_failed(names, str(exc))
            await self.save()
            return str(exc)
        try:
            await self.subnet.provision(names)
        except DMSError as exc:
            self._mark_failed(names, str(exc))
            await self.save()
            return str(exc)
        failures = await self._start(names, deadline)
        if failures:
            why = "; ".join(f"allocation {a} did not start: {e}" for a, e in failures.items())
            self._mark_failed(names, why)
            await self.save()
            return why
        for name in names:
            self.manifest.allocations[name].restarts += 1
            self.supervisor.started(name)
        self.record(
            f"node {node} runs again, on {placement[node][-8:]}",
            kind="node",
            subject=node,
            status="running",
            reason=reason,
        )
        await self.save()
        return None

    def _mark_failed(self, names: list[str], why: str) -> None:
        for name in names:
            alloc = self.manifest.allocations[name]
            if alloc.status != ALLOC_RUNNING:
                alloc.status, alloc.error = ALLOC_FAILED, why

    async def teardown(self, reason: str) -> None:
        """Recovery failed for good: stop everything and fail with ``reason``."""
        if self._finishing or self.status.terminal:
            return
        self._finishing = True
        await self._stop_allocations()
        await self._fail(reason)

    async def _resume(self) -> None:
        """Carry on with a deployment restored from the store after a restart of the DMS."""
        status = self.status
        if status is DeploymentStatus.RUNNING:
            self._grant_reports()
            await self.subnet.rejoin()
            self.record("supervising again after a restart of the DMS")
            await self.save()
            return
        if status is DeploymentStatus.SHUTTING_DOWN:
            self._wake.set()
            return
        # Preparing, committing or provisioning when the DMS stopped: that step cannot be
        # resumed; free what it may have reserved and say so.
        await self._stop_allocations()
        await self._fail(f"interrupted while {status.label} by a restart of its DMS")

    @classmethod
    def restore(
        cls,
        parent: Actor,
        record: DeploymentRecord,
        *,
        persist: Persist,
        candidates: Callable[[], Sequence[str]],
        handle_of: Callable[[str], Handle],
        settings: OrchestratorSettings | None = None,
    ) -> Orchestrator:
        """Rebuild a stored deployment's orchestrator: same ID and key (so the same handle its
        allocations report to), manifest, status and events. Run it like a new one."""
        orch = cls(
            parent,
            Ensemble.from_json(record.config),
            persist=persist,
            candidates=candidates,
            handle_of=handle_of,
            orchestrator_id=record.orchestrator_id,
            key=unmarshal_private_key(bytes(record.private_key)),
            settings=settings,
        )
        manifest = EnsembleManifest.from_json(json.loads(record.manifest))
        manifest.orchestrator = orch.actor.handle
        orch.manifest = manifest
        orch.subnet.manifest = manifest
        orch.status = DeploymentStatus(record.status)
        snap = snapshot_fields(record.snapshot)
        orch.error = str(snap.get("error") or "")
        orch.explanation = [str(line) for line in snap.get("explanation") or []]
        orch.events = [Event.from_json(e) for e in snap.get("events") or []]
        subnet = snap.get("subnet")
        orch.subnet.load(subnet if isinstance(subnet, dict) else None)
        orch.created_ns = record.created_at or orch.created_ns
        orch.restored = True
        return orch

    # -- allocation reports ------------------------------------------------------------------

    async def _on_termination(self, env: Envelope) -> None:
        try:
            report = TaskTermination.from_json(env.decode_payload())
        except (DMSError, ValueError) as exc:
            log.info("task termination refused: %s", exc)
            return
        name = self.allocation_name(report.allocation_id)
        if name is None:
            return
        manifest = self.manifest.allocations[name]
        if env.from_.id != manifest.handle.id:
            log.warning("termination of %s sent by another actor: refused", name)
            return
        self.outputs[name] = Output(report.stdout, report.stderr)
        how = f"exit code {report.exit_code}" + (f", {report.error}" if report.error else "")
        await self.allocation_ended(name, report.exit_code, report.error, how)

    async def allocation_ended(
        self, name: str, exit_code: int | None, error: str, how: str
    ) -> None:
        """``name``'s execution ended (its report, or a heartbeat saying so when the report
        was lost): record it, then let supervision or the task rules decide what follows."""
        manifest = self.manifest.allocations[name]
        manifest.exit_code = exit_code
        manifest.error = error
        ok = exit_code == 0 and not error
        manifest.status = ALLOC_COMPLETED if ok else ALLOC_FAILED
        self.record(
            f"allocation {name} ended: {how}",
            kind="allocation",
            subject=name,
            status=manifest.status,
            reason=how,
        )
        await self._persist(self)
        if self.status is DeploymentStatus.RUNNING and not self.stopping:
            if self.supervisor.allocation_ended(name, ok):
                return
            await self._check_tasks_done()

    async def _check_tasks_done(self) -> None:
        # Called after Running is persisted and on each termination report; a report that
        # arrives during that persist makes both calls see every task ended. Only the first
        # may wind up (a second would stop allocations that no longer exist).
        if self._finishing:
            return
        allocs = self.manifest.allocations
        tasks = {n for n, a in self.ensemble.allocations.items() if a.type == "task"}
        # A failed service is the supervisor's (restarted, or given up by its policy).
        failed = [n for n, a in allocs.items() if a.status == ALLOC_FAILED and n in tasks]
        if failed:
            self._finishing = True
            name = failed[0]
            alloc = allocs[name]
            await self._stop_allocations()
            await self._fail(self._failure_text(name, alloc))
            return
        if not all(a.type == "task" for a in self.ensemble.allocations.values()):
            return
        if all(a.status == ALLOC_COMPLETED for a in allocs.values()):
            self._finishing = True
            await self._stop_allocations()
            await self._set_status(DeploymentStatus.COMPLETED, "every task exited with 0")

    def _failure_text(self, name: str, alloc: AllocationManifest) -> str:
        text = f"allocation {name} failed"
        if alloc.exit_code is not None:
            text += f" with exit code {alloc.exit_code}"
        if alloc.error:
            text += f": {alloc.error}"
        output = self.outputs.get(name)
        if output is not None:
            tail = (output.stderr or output.stdout).decode(errors="replace").splitlines()
            if tail:
                text += " | last output: " + " / ".join(tail[-ERROR_TAIL_LINES:])
        return text

    # -- control -----------------------------------------------------------------------------

    def request_shutdown(self) -> None:
        """Ask the running deployment to stop every allocation (see :meth:`run`)."""
        self._wake.set()

    async def _shutdown(self) -> None:
        await self._set_status(DeploymentStatus.SHUTTING_DOWN, "stopping every allocation")
        await self._stop_allocations()
        await self._set_status(DeploymentStatus.COMPLETED, "shut down by its user")

    async def _stop_allocations(self) -> None:
        """Stop every allocation (reverse start order) and release every reservation."""

        async def stop(name: str, alloc: AllocationManifest) -> None:
            try:
                reply = await self.actor.invoke(
                    alloc.handle, ALLOCATION_STOP, None, timeout=STOP_TIMEOUT
                )
                answer = OkResponse.from_json(reply.decode_payload())
                if not answer.ok:
                    raise DMSError(answer.error)
                if alloc.status == ALLOC_RUNNING:
                    alloc.status = ALLOC_STOPPED
            except DMSError as exc:
                self._event(f"allocation {name} could not be stopped: {exc}")

        async with trio.open_nursery() as nursery:
            for name, alloc in self.manifest.allocations.items():
                if not alloc.handle.empty():
                    nursery.start_soon(stop, name, alloc)
        targets = {
            node.peer: (self._handle_of(node.peer), list(node.allocations))
            for node in self.manifest.nodes.values()
            if node.peer
        }
        await revert_all(self.actor, self.id, targets)
        await self.subnet.destroy()
        await self._persist(self)

    async def fetch_logs(self, name: str) -> Output:
        """The allocation's output: asked of its actor, or the tail its termination carried."""
        alloc = self.manifest.allocations.get(name)
        if alloc is None:
            raise DMSError(f"no allocation {name!r} in deployment {self.id}")
        if self.status.terminal or alloc.handle.empty():
            return self.outputs.get(name, Output())
        try:
            reply = await self.actor.invoke(
                alloc.handle, ALLOCATION_LOGS, None, timeout=LOGS_TIMEOUT
            )
            logs = AllocationLogs.from_json(reply.decode_payload())
        except DMSError:
            return self.outputs.get(name, Output())
        if logs.error:
            return self.outputs.get(name, Output())
        return Output(logs.stdout, logs.stderr)

    def status_payload(self) -> dict[str, Any]:
        """What ``/dms/node/deployment/status`` answers beyond Go's ``{Status, Error}``."""
        tasks_only = all(a.type == "task" for a in self.ensemble.allocations.values())
        return {
            "TasksPending": self.status is DeploymentStatus.RUNNING and tasks_only,
            "Explanation": list(self.explanation),
            "Events": list(self.events),
            "Allocations": {
                n: {
                    "status": a.status,
                    "exit_code": a.exit_code,
                    "error": a.error,
                    "node": a.node_id,
                    "peer": self.manifest.nodes[a.node_id].peer
                    if a.node_id in self.manifest.nodes
                    else "",
                    "restarts": a.restarts,
                    **self.supervisor.allocation_payload(n),
                }
                for n, a in self.manifest.allocations.items()
            },
        }


def healthcheck_mapping(check: HealthCheck | None) -> dict[str, Any]:
    """An allocation's health check as the manifest carries it (Go's json keys, interval in
    ns); empty when it has none."""
    if check is None:
        return {}
    return {
        "type": check.type,
        "exec": list(check.exec),
        "endpoint": check.endpoint,
        "response": {"type": check.response_type, "value": check.response_value},
        "interval": round((check.interval_s or 0) * 1e9),
    }


def snapshot_fields(snapshot: str) -> dict[str, Any]:
    """The parsed ``snapshot`` column (empty on anything unreadable)."""
    try:
        value = json.loads(snapshot)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
