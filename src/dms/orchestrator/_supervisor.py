"""Keeping a running deployment alive: health checks, restarts, provider liveness, redeploys.

Started by the orchestrator once its deployment is Running (or restored Running after a restart
of its DMS), it runs until the deployment ends:

* **Health checks** (Go's supervisor): each allocation with a ``healthcheck`` is registered
  (``/dms/actor/healthcheck/register``) and then checked (``/dms/actor/healthcheck``) every
  interval (the check's own, else :attr:`SupervisionSettings.healthcheck_interval`, Go's 30 s);
  :attr:`~SupervisionSettings.healthcheck_failures` failures in a row recover the allocation.
* **Allocation ends**: a service that ends, or a task that fails under a restarting policy, is
  recovered by its ``failure_recovery`` (:func:`restart_set`): the allocations to restart, with
  exponential backoff; past the restart limit the ensemble's ``escalation_strategy`` applies
  (``redeploy``: its node is placed elsewhere once; ``teardown``: the deployment fails).
* **Liveness**: every allocation sends a heartbeat (``/dms/orchestrator/allocation/liveness``)
  each :attr:`~SupervisionSettings.liveness_interval`; a node none of whose allocations was
  heard from for :attr:`~SupervisionSettings.liveness_window` has lost its provider, and the
  node's ``failure_recovery`` applies: ``redeploy`` places it again through the normal bid,
  commit and allocate path (the lost peer excluded), ``restart`` waits for the provider to come
  back (its allocations then report how they fared), ``stay_down`` gives its allocations up.
  A heartbeat from a provider the node moved away from is answered by stopping that stale copy
  (``/dms/allocation/stop``) and reverting its reservations, so a provider that comes back
  frees what it no longer runs.

Recoveries run one at a time per deployment (a lock), so a node lost while one of its
allocations restarts is handled after that restart, with the state it left.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from dms.actor import Envelope, Handle
from dms.errors import DMSError
from dms.jobs import (
    ALLOCATION_STOP,
    HEALTHCHECK,
    HEALTHCHECK_REGISTER,
    AllocationLiveness,
    OkResponse,
    RegisterHealthcheck,
)
from dms.orchestrator._commit import revert_all
from dms.orchestrator._manifest import (
    ALLOC_COMPLETED,
    ALLOC_FAILED,
    ALLOC_RUNNING,
)
from dms.orchestrator._recovery import (
    RestartBudget,
    SupervisionSettings,
    allocation_policy,
    escalation,
    node_policy,
    restart_set,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from dms.orchestrator._orchestrator import Orchestrator
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: How long stopping a stale copy of an allocation may take (seconds).
STALE_STOP_TIMEOUT = 15.0


@dataclass
class Health:
    """The last health-check result of one allocation."""

    healthy: bool = True
    message: str = ""
    time_ns: int = 0
    failures: int = 0

    def payload(self) -> dict[str, object]:
        return {
            "healthy": self.healthy,
            "message": self.message,
            "time": self.time_ns,
            "failures": self.failures,
        }


class Supervisor:
    """See the module docstring; one per running deployment."""

    def __init__(self, orch: Orchestrator, settings: SupervisionSettings) -> None:
        self.orch = orch
        self.settings = settings
        self.health: dict[str, Health] = {}
        #: Node name -> trio time of its last heartbeat (or of supervision start).
        self.last_seen: dict[str, float] = {}
        #: Nodes whose provider is lost (and not yet replaced or back) -> that provider.
        self.lost: dict[str, str] = {}
        #: Allocations being recovered (health checks and ends are ignored meanwhile).
        self.recovering: set[str] = set()
        self.budget = RestartBudget(settings, clock=trio.current_time)
        #: Allocation -> trio time its current execution was started by a restart or move.
        self._started_at: dict[str, float] = {}
        self._lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._stale: set[tuple[str, str]] = set()

    # -- running -------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise until cancelled (the orchestrator cancels when the deployment ends)."""
        now = trio.current_time()
        if self.orch.restored:
            # Providers reconnect to a restarted orchestrator on their own (their next
            # heartbeat dials it): give them one extra window before judging them lost.
            now += self.settings.liveness_window
        for node in self.orch.manifest.nodes:
            self.last_seen.setdefault(node, now)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._liveness_loop)
            for name, config in self.orch.ensemble.allocations.items():
                if config.healthcheck is not None:
                    nursery.start_soon(self._health_loop, name)
            task_status.started()
            await trio.sleep_forever()

    def _spawn(self, fn: object, *args: object) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)  # type: ignore[arg-type]

    # -- health checks --------------------------------------------------------------------------

    async def _register(self, name: str) -> bool:
        alloc = self.orch.manifest.allocations[name]
        check = self.orch.ensemble.allocations[name].healthcheck
        assert check is not None
        request = RegisterHealthcheck(self.orch.id, check)
        try:
            reply = await self.orch.actor.invoke(
                alloc.handle,
                HEALTHCHECK_REGISTER,
                request,
                timeout=self.settings.healthcheck_timeout,
            )
            answer = OkResponse.from_json(reply.decode_payload())
            if not answer.ok:
                raise DMSError(answer.error or "registration refused")
        except DMSError as exc:
            log.info("health check of %s not registered: %s", name, exc)
            return False
        return True

    def _handle_key(self, handle: Handle) -> str:
        return str(handle.to_json())

    async def _health_loop(self, name: str) -> None:
        check = self.orch.ensemble.allocations[name].healthcheck
        assert check is not None
        interval = check.interval_s or self.settings.healthcheck_interval
        registered = ""
        while True:
            await trio.sleep(interval)
            alloc = self.orch.manifest.allocations[name]
            node = alloc.node_id
            if name in self.recovering or node in self.lost or alloc.status != ALLOC_RUNNING:
                continue
            key = self._handle_key(alloc.handle)
            if registered != key:
                if not await self._register(name):
                    continue
                registered = key
            await self._check(name)

    async def _check(self, name: str) -> None:
        alloc = self.orch.manifest.allocations[name]
        health = self.health.setdefault(name, Health())
        try:
            reply = await self.orch.actor.invoke(
                alloc.handle, HEALTHCHECK, alloc.id, timeout=self.settings.healthcheck_timeout
            )
            answer = OkResponse.from_json(reply.decode_payload())
            ok, message = answer.ok, answer.error
        except DMSError as exc:
            ok, message = False, f"no answer: {exc}"
        if name in self.recovering or alloc.status != ALLOC_RUNNING:
            return  # it ended or is being restarted meanwhile: this result says nothing
        health.time_ns = time.time_ns()
        health.message = message
        if ok:
            if not health.healthy:
                self.orch.record(
                    f"allocation {name} is healthy again",
                    kind="allocation",
                    subject=name,
                    status="healthy",
                )
            health.healthy, health.failures = True, 0
            return
        health.healthy = False
        health.failures += 1
        limit = self.settings.healthcheck_failures
        self.orch.record(
            f"allocation {name} failed its health check ({health.failures}/{limit}): {message}",
            kind="allocation",
            subject=name,
            status="unhealthy",
            reason=message,
        )
        if health.failures >= limit:
            health.failures = 0
            self._spawn(
                self.recover,
                name,
                f"failed its health check {limit} times in a row ({message})",
            )

    # -- allocation ends ------------------------------------------------------------------------

    def started(self, name: str) -> None:
        """``name`` runs a new execution (restarted or moved) from now."""
        self._started_at[name] = trio.current_time()

    def _ended_unreported(self, name: str, beat: AllocationLiveness) -> bool:
        """Whether heartbeat ``beat`` says ``name`` ended although no end was taken into
        account: its report was lost, or arrived while a recovery was replacing it. A beat
        sent before the latest restart can still be in flight: those of the first two
        intervals after a restart are not trusted."""
        if beat.status not in (ALLOC_COMPLETED, ALLOC_FAILED):
            return False
        if name in self.recovering or self.orch.manifest.allocations[name].status != ALLOC_RUNNING:
            return False
        since = trio.current_time() - self._started_at.get(name, -math.inf)
        return since > 2 * self.settings.liveness_interval

    def allocation_ended(self, name: str, ok: bool) -> bool:
        """An allocation reported its end while Running: True if supervision takes it over
        (restart, or give it up under ``stay_down``), False to let the orchestrator judge the
        deployment (a task that ended, a failed task that stays down)."""
        config = self.orch.ensemble.allocations[name]
        if name in self.recovering:
            return True  # the end of the execution a restart replaced
        if config.type == "task" and ok:
            return False
        policy = allocation_policy(self.orch.ensemble, name)
        if policy == "stay_down":
            if config.type == "task":
                return False
            self._spawn(self._give_up, [name], "it ended and its failure_recovery is stay_down")
            return True
        self._spawn(self.recover, name, "ended" if ok else "failed")
        return True

    async def recover(self, name: str, reason: str) -> None:
        """Restart ``name`` and the allocations its policy restarts with it (backoff first)."""
        orch = self.orch
        self.recovering.add(name)
        try:
            async with self._lock:
                if orch.status.terminal or orch.stopping:
                    return
                alloc = orch.manifest.allocations[name]
                if alloc.node_id in self.lost:
                    return  # its node's recovery decides
                if self.budget.exhausted(name):
                    await self._escalate(name, f"{reason}; restarted too often")
                    return
                targets = [
                    a
                    for a in restart_set(orch.ensemble, name)
                    if not (
                        orch.ensemble.allocations[a].type == "task"
                        and orch.manifest.allocations[a].status == ALLOC_COMPLETED
                    )
                ]
                self.recovering.update(targets)
                delay = self.budget.next_delay(name)
                orch.record(
                    f"allocation {name} {reason}: restarting {', '.join(targets)}"
                    + (f" in {delay:.1f} s" if delay else ""),
                    kind="allocation",
                    subject=name,
                    status="restarting",
                    reason=reason,
                )
                await trio.sleep(delay)
                self.budget.record(name)
                for target in targets:
                    error = await orch.restart_allocation(target)
                    if error is None:
                        self.health.pop(target, None)
                        orch.record(
                            f"allocation {target} restarted",
                            kind="allocation",
                            subject=target,
                            status="running",
                            reason=reason,
                        )
                    else:
                        orch.record(
                            f"allocation {target} could not be restarted: {error}",
                            kind="allocation",
                            subject=target,
                            status="failed",
                            reason=error,
                        )
                await orch.save()
                failed = [t for t in targets if orch.manifest.allocations[t].status == ALLOC_FAILED]
            if failed:
                # Try again (the budget bounds it); outside the lock so others may go first.
                self.recovering.difference_update(targets)
                self._spawn(self.recover, failed[0], "could not be restarted")
        finally:
            self.recovering.discard(name)
            if "targets" in locals():
                self.recovering.difference_update(targets)

    async def _give_up(self, names: list[str], reason: str) -> None:
        """Mark ``names`` failed for good; the deployment fails when nothing runs any more."""
        orch = self.orch
        async with self._lock:
            for name in names:
                alloc = orch.manifest.allocations[name]
                alloc.status = ALLOC_FAILED
                alloc.error = alloc.error or reason
                orch.record(
                    f"allocation {name} stays down: {reason}",
                    kind="allocation",
                    subject=name,
                    status="failed",
                    reason=reason,
                )
            await orch.save()
            running = [a for a in orch.manifest.allocations.values() if a.status == ALLOC_RUNNING]
            if not running and not orch.status.terminal:
                await orch.teardown(f"no allocation runs any more: {reason}")

    async def _escalate(self, name: str, reason: str) -> None:
        """Recovery keeps failing: the ensemble's ``escalation_strategy`` decides."""
        orch = self.orch
        strategy = escalation(orch.ensemble)
        node = orch.manifest.allocations[name].node_id
        if strategy == "redeploy" and node not in orch.escalated:
            orch.escalated.add(node)
            orch.record(
                f"allocation {name}: {reason}; escalating: node {node} is placed elsewhere",
                kind="node",
                subject=node,
                status="redeploying",
                reason=reason,
            )
            error = await orch.redeploy_node(node, reason)
            if error is None:
                for alloc in orch.ensemble.nodes[node].allocations:
                    self.budget.reset(alloc)
                self.last_seen[node] = trio.current_time()
                return
            reason = f"{reason}; redeploy failed: {error}"
        await orch.teardown(f"allocation {name}: {reason}")

    # -- liveness -------------------------------------------------------------------------------

    async def on_liveness(self, env: Envelope) -> None:
        """A heartbeat: note the node alive, learn a re-adopted handle, stop stale copies."""
        orch = self.orch
        try:
            beat = AllocationLiveness.from_json(env.decode_payload())
        except (DMSError, ValueError) as exc:
            log.info("liveness refused: %s", exc)
            return
        name = orch.allocation_name(beat.allocation_id)
        if name is None:
            return
        alloc = orch.manifest.allocations[name]
        node = alloc.node_id
        host = env.from_.address.host
        if host != orch.manifest.nodes[node].peer:
            key = (host, name)
            if key not in self._stale:
                self._stale.add(key)
                self._spawn(self._stop_stale, env.from_, name)
            return
        self.last_seen[node] = trio.current_time()
        if env.from_.id != alloc.handle.id:
            alloc.handle = env.from_
            orch.record(
                f"allocation {name} was re-adopted by its provider after a restart",
                kind="allocation",
                subject=name,
                status=beat.status,
            )
            self._spawn(orch.save)
        if self._ended_unreported(name, beat):
            completed = beat.status == ALLOC_COMPLETED
            error = "" if completed else "failed (its heartbeat says; no end was reported)"
            how = f"{beat.status}, as its heartbeat says (its end was not reported)"
            self._spawn(orch.allocation_ended, name, 0 if completed else None, error, how)
        if self.lost.get(node) == host:
            del self.lost[node]
            orch.record(
                f"provider {host[-8:]} of node {node} is back",
                kind="node",
                subject=node,
                status="back",
            )
            if beat.status == "running" and alloc.status == ALLOC_FAILED:
                alloc.status, alloc.error = ALLOC_RUNNING, ""
            self._spawn(orch.save)

    async def _stop_stale(self, handle: Handle, name: str) -> None:
        """Stop a copy of ``name`` on a provider the node moved away from, and free it there."""
        orch = self.orch
        host = handle.address.host
        try:
            reply = await orch.actor.invoke(
                handle, ALLOCATION_STOP, None, timeout=STALE_STOP_TIMEOUT
            )
            answer = OkResponse.from_json(reply.decode_payload())
            if not answer.ok:
                raise DMSError(answer.error or "stop refused")
        except DMSError as exc:
            self._stale.discard((host, name))  # the next heartbeat tries again
            log.info("stale copy of %s on %s not stopped: %s", name, host, exc)
            return
        await revert_all(orch.actor, orch.id, {host: (orch.handle_of(host), [name])})
        orch.record(
            f"allocation {name} stopped on {host[-8:]}: its node had moved to another provider",
            kind="allocation",
            subject=name,
            status="moved",
        )

    async def _liveness_loop(self) -> None:
        window = self.settings.liveness_window
        while True:
            await trio.sleep(min(1.0, window / 4))
            now = trio.current_time()
            for node, manifest in self.orch.manifest.nodes.items():
                if node in self.lost or not manifest.peer:
                    continue
                live = [
                    a
                    for a in manifest.allocations
                    if self.orch.manifest.allocations[a].status not in (ALLOC_COMPLETED,)
                ]
                if not live:
                    continue
                silent = now - self.last_seen.get(node, now)
                if silent > window:
                    self.lost[node] = manifest.peer
                    self._spawn(self._node_lost, node, silent)

    async def _node_lost(self, node: str, silent: float) -> None:
        orch = self.orch
        peer = orch.manifest.nodes[node].peer
        policy = node_policy(orch.ensemble, node)
        reason = f"no heartbeat from its provider {peer[-8:]} for {silent:.1f} s"
        orch.record(
            f"node {node} lost: {reason} (failure_recovery {policy})",
            kind="node",
            subject=node,
            status="lost",
            reason=reason,
        )
        names = list(orch.ensemble.nodes[node].allocations)
        if policy == "stay_down":
            await self._give_up(names, f"lost with its provider ({reason})")
            return
        if policy == "restart":
            for name in names:
                alloc = orch.manifest.allocations[name]
                if alloc.status == ALLOC_RUNNING:
                    alloc.status, alloc.error = ALLOC_FAILED, "its provider is unreachable"
            await orch.save()
            return  # its heartbeats, when it comes back, say how its allocations fared
        async with self._lock:
            if orch.status.terminal or orch.stopping:
                return
            self.recovering.update(names)
            try:
                error = await orch.redeploy_node(node, reason)
            finally:
                self.recovering.difference_update(names)
            if error is None:
                self.lost.pop(node, None)
                self.last_seen[node] = trio.current_time()
                for name in names:
                    self.budget.reset(name)
                    self.health.pop(name, None)
                return
        await orch.teardown(f"node {node} was lost ({reason}) and could not be redeployed: {error}")

    # -- status ---------------------------------------------------------------------------------

    def allocation_payload(self, name: str) -> dict[str, object]:
        """What ``nunet deployment status`` shows of ``name``'s supervision."""
        out: dict[str, object] = {}
        health = self.health.get(name)
        if health is not None:
            out["health"] = health.payload()
        return out
