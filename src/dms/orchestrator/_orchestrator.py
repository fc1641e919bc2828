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
from dms.crypto import Ed25519PrivateKey, PrivateKey, marshal_private_key
from dms.errors import DMSError
from dms.jobs import (
    ALLOCATION_LOGS,
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
from dms.orchestrator._manifest import (
    ALLOC_COMPLETED,
    ALLOC_FAILED,
    ALLOC_RUNNING,
    ALLOC_STOPPED,
    AllocationManifest,
    EnsembleManifest,
    NodeManifest,
)
from dms.orchestrator._matcher import Edge, Match
from dms.orchestrator._status import DeploymentStatus

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

Persist = Callable[["Orchestrator"], Awaitable[None]]


def new_orchestrator_id(host_peer_id: str) -> str:
    """Go's orchestrator/ensemble ID: hex SHA-256 of the host peer ID and a UUIDv1."""
    return sha256((host_peer_id + str(uuid.uuid1())).encode()).hexdigest()


@dataclass(frozen=True)
class Event:
    """One thing that happened to a deployment, for ``nunet deployment status`` and logs."""

    time_ns: int
    message: str

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(time=self.time_ns, message=self.message)


@dataclass
class Output:
    """What an ended allocation printed (the tail its provider sent with the termination)."""

    stdout: bytes = b""
    stderr: bytes = b""


@dataclass
class OrchestratorSettings:
    """Timing knobs of an orchestrator (tests and benchmarks shorten them)."""

    bidding: BiddingSettings = field(default_factory=BiddingSettings)
    retry_pause: float = 0.2
    start_timeout: float = START_TIMEOUT


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
        self._edges = EdgeBook()
        self._excluded: set[str] = set(ensemble.exclude_peers)
        self._nonce = 0
        self._changed = trio.Event()
        self._wake = trio.Event()
        self._ended = trio.Event()
        #: Set when every task ended and the deployment is being wound up (once only).
        self._finishing = False

    @property
    def ensemble_id(self) -> str:
        return self.id

    # -- state -----------------------------------------------------------------------------

    def _event(self, message: str) -> None:
        self.events.append(Event(time.time_ns(), message))
        log.info("deployment %s: %s", self.id[:12], message)
        self._changed.set()
        self._changed = trio.Event()

    async def _set_status(self, status: DeploymentStatus, message: str) -> None:
        self.status = status
        self._event(f"{status.label}: {message}" if message else status.label)
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
            await nursery.start(self.actor.run)
            await self._persist(self)
            task_status.started()
            try:
                await self._deploy(deadline)
            except DMSError as exc:
                await self._fail(str(exc))
            if not self.status.terminal:
                await self._wake.wait()  # shut down, or ended by its tasks
                if not self.status.terminal:
                    await self._shutdown()
            # Ended: the actor goes (its inbox and grants with it); status, manifest and
            # outputs stay on this object and in the store.
            nursery.cancel_scope.cancel()

    async def _on_bid(self, env: Envelope) -> None:
        self._book.receive(env)

    async def _fail(self, reason: str) -> None:
        self.error = reason
        await self._set_status(DeploymentStatus.FAILED, reason)

    async def _deploy(self, deadline: float) -> None:
        attempt = 0
        while True:
            attempt += 1
            if trio.current_time() >= deadline:
                await self._fail(self._deadline_reason())
                return
            result = await self._bid(deadline)
            self.explanation = result.explanation.lines()
            if result.placement is None:
                if trio.current_time() >= deadline:
                    await self._fail(self._deadline_reason())
                else:
                    await self._fail("cannot be placed: " + result.explanation.summary)
                return
            placement = result.placement
            self._event(
                "placement: " + ", ".join(f"{n} on {p[-8:]}" for n, p in sorted(placement.items()))
            )
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
                    )
            except CommitFailed as exc:
                self._event(f"commit failed, excluding {len(exc.peers)} providers: {exc}")
                self._excluded |= exc.peers
                self._book.forget_peers(exc.peers | exc.reverted)
                await self._set_status(DeploymentStatus.PREPARING, "placing again")
                await trio.sleep(self.settings.retry_pause)
                continue
            except trio.TooSlowError:
                await self._fail(self._deadline_reason())
                return
            self._fill_manifest(placement, committed)
            self._grant_reports(placement)
            await self._set_status(DeploymentStatus.PROVISIONING, "starting allocations")
            if await self._start_all(deadline):
                await self._set_status(DeploymentStatus.RUNNING, "every allocation started")
                await self._check_tasks_done()
            return

    def _deadline_reason(self) -> str:
        why = " ".join(self.explanation)
        return "deadline reached before the ensemble could be deployed" + (
            f": {why}" if why else ""
        )

    async def _bid(self, deadline: float) -> Match:
        self._nonce += 1
        nodes = sorted(self._demands)
        request = bid_request(
            self.id,
            self._nonce,
            demands=self._demands,
            ensemble=self.ensemble,
            nodes=nodes,
            excluded=frozenset(self._excluded),
        )
        pinned = {d.peer for d in self._demands.values() if d.peer}
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
            self._book,
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

    def _fill_manifest(self, placement: dict[str, str], committed: Committed) -> None:
        for node, peer in placement.items():
            offer = self._book.offers.get((peer, node))
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
                self.manifest.allocations[alloc] = AllocationManifest(
                    id=allocation_id(self.id, alloc),
                    node_id=node,
                    handle=committed.handles[alloc],
                    dns_name=f"{alloc_config.dns_name or alloc}.internal",
                    ports=ports,
                    healthcheck=healthcheck_mapping(alloc_config.healthcheck),
                )

    def _grant_reports(self, placement: dict[str, str]) -> None:
        """Let the providers' allocation actors report to us (Go grants the orchestrator
        namespace to allocations): a require anchor per provider DID, as Go's ``Grant``."""
        security = self.actor.security
        expire = security.now_ns() + REPORT_GRANT_NS
        for alloc in self.manifest.allocations.values():
            did = alloc.handle.did
            if did.empty():
                continue
            try:
                tokens = security.grant(
                    did, security.actor_did, [TASK_TERMINATION], expire, depth=0
                )
                security.capabilities.add_require(tokens.tokens)
            except DMSError as exc:
                log.warning("could not grant reports to %s: %s", did.uri, exc)
        del placement

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

    async def _start_all(self, deadline: float) -> bool:
        failures: dict[str, str] = {}

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
                self._event(f"allocation {alloc} started")
            except DMSError as exc:
                failures[alloc] = str(exc)
                manifest.status = ALLOC_FAILED
                manifest.error = str(exc)

        for group in self._start_levels():
            async with trio.open_nursery() as nursery:
                for alloc in group:
                    nursery.start_soon(start, alloc)
            if failures:
                reason = "; ".join(
                    f"allocation {a} did not start: {e}" for a, e in failures.items()
                )
                await self._stop_allocations()
                await self._fail(reason)
                return False
            await self._persist(self)
        return True

    # -- allocation reports ------------------------------------------------------------------

    async def _on_termination(self, env: Envelope) -> None:
        try:
            report = TaskTermination.from_json(env.decode_payload())
        except (DMSError, ValueError) as exc:
            log.info("task termination refused: %s", exc)
            return
        name = next(
            (n for n, a in self.manifest.allocations.items() if a.id == report.allocation_id),
            None,
        )
        if name is None:
            return
        manifest = self.manifest.allocations[name]
        if env.from_.id != manifest.handle.id:
            log.warning("termination of %s sent by another actor: refused", name)
            return
        self.outputs[name] = Output(report.stdout, report.stderr)
        manifest.exit_code = report.exit_code
        manifest.error = report.error
        ok = report.exit_code == 0 and not report.error
        manifest.status = ALLOC_COMPLETED if ok else ALLOC_FAILED
        self._event(
            f"allocation {name} ended: "
            + (f"exit code {report.exit_code}" + (f", {report.error}" if report.error else ""))
        )
        await self._persist(self)
        if self.status is DeploymentStatus.RUNNING:
            await self._check_tasks_done()

    async def _check_tasks_done(self) -> None:
        # Called after Running is persisted and on each termination report; a report that
        # arrives during that persist makes both calls see every task ended. Only the first
        # may wind up (a second would stop allocations that no longer exist).
        if self._finishing:
            return
        allocs = self.manifest.allocations
        failed = [n for n, a in allocs.items() if a.status == ALLOC_FAILED]
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
                n: {"status": a.status, "exit_code": a.exit_code, "error": a.error}
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
