"""One allocation on a provider: a child actor of the node actor (Go's ``jobs.Allocation``).

Its inbox is the allocation ID (``<ensemble>_<name>``) and it answers ``/dms/allocation/start``,
``/stop``, ``/status`` and ``/logs``. Only the orchestrator that deployed it may call them: the
node grants that orchestrator's DID the allocation behaviours (a delegate token added as a
require anchor, Go's ``Grant``), re-granted while the allocation lives, and every handler also
checks that the caller is that orchestrator's actor (fail closed: another actor holding broad
capabilities is still refused).

``start`` runs the allocation on the node's executor for its ``executor`` (provision scripts
first, as the executor runs them); when the execution ends on its own the allocation reports
``/dms/orchestrator/task-termination`` to its orchestrator with the last of its output. ``stop``
cancels and removes the execution, releases its resources and ports and ends the actor.

Keeping it alive (spec §8 "Supervision"):

* ``/dms/allocation/restart`` stops the execution if it still runs and starts it again with the
  same request (resources, ports, provision scripts). The old execution's end is not reported:
  each launch has a generation number and a watcher of an older generation stays silent. Start,
  restart, stop and the recording of a natural end are serialised by :attr:`Allocation.lock`.
* ``/dms/actor/healthcheck/register`` stores the orchestrator's health check and
  ``/dms/actor/healthcheck`` runs it now (:mod:`dms.jobs._health`). With no check registered
  the answer is "healthy" while the execution runs (Go answers OK without a check; we add that a
  stopped, failed or completed allocation is not healthy, so a supervisor never mistakes a dead
  allocation for a live one). The last result rides in the heartbeats.
* Liveness heartbeats (:mod:`dms.jobs._heartbeat`) go to the orchestrator every interval while
  the actor lives, and at once after a start, a restart, a natural end and a re-adoption.

Every state change is written to the allocation record before it takes effect, so a restarted
node knows what it was running; :meth:`AllocationManager.run` re-adopts what the records name
(:meth:`Allocation.readopt`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from dms.actor import Actor, Envelope, Handle
from dms.did import did_from_id
from dms.errors import DMSError
from dms.executor import (
    ExecutionNotFound,
    ExecutionRequest,
    ExecutionResult,
    Executor,
    NetworkAttachment,
    PortBinding,
    Termination,
)
from dms.jobs._health import HEALTH_TIMEOUT, HealthResult, check_problem, run_health_check
from dms.jobs._heartbeat import LivenessSender
from dms.jobs._model import HealthCheck
from dms.jobs._wire import (
    ALLOCATION_BEHAVIORS,
    ALLOCATION_LOGS,
    ALLOCATION_RESTART,
    ALLOCATION_START,
    ALLOCATION_STATUS,
    ALLOCATION_STOP,
    HEALTHCHECK,
    HEALTHCHECK_REGISTER,
    TASK_TERMINATION,
    AllocationDeploymentConfig,
    AllocationLogs,
    AllocationStatus,
    OkResponse,
    TaskTermination,
)
from dms.jobs._wire_supervision import (
    DEFAULT_LIVENESS_INTERVAL,
    AllocationLiveness,
    RegisterHealthcheck,
    allocation_id_payload,
)
from dms.ucan import Token

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from dms.db import AllocationRecord
    from dms.jobs._allocations import AllocationManager
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: How long a grant to the orchestrator lasts; it is renewed at half that while we live.
GRANT_NS = 3600 * 10**9
#: The most output a termination report or a logs answer carries per stream (the tail).
OUTPUT_CAP = 32 * 1024
#: How long a termination report may take to reach the orchestrator (seconds).
REPORT_TIMEOUT = 15.0
#: Why a re-adopted allocation has no execution any more.
LOST_WHILE_DOWN = "lost while the DMS was down"
#: Statuses a restart is allowed from.
RESTARTABLE = ("running", "failed", "completed")
#: Terminations that mean "killed from outside", not "the program exited".
_KILLED = (
    Termination.CANCELLED,
    Termination.OOM_KILLED,
    Termination.CPU_LIMIT,
    Termination.DISK_LIMIT,
)


def tail(data: bytes, cap: int = OUTPUT_CAP) -> bytes:
    """The last ``cap`` bytes of ``data`` (what a report can afford to carry)."""
    return data if len(data) <= cap else data[-cap:]


def final_status(result: ExecutionResult) -> str:
    """The Go allocation status an execution result ends in."""
    return "completed" if result.status.value == "success" else "failed"


class Allocation:
    """A running (or finished) allocation and its actor; built by :class:`AllocationManager`."""

    def __init__(
        self,
        manager: AllocationManager,
        actor: Actor,
        *,
        ensemble_id: str,
        name: str,
        config: AllocationDeploymentConfig,
        orchestrator: Handle,
        ports: Mapping[int, int],
        liveness_interval: float = DEFAULT_LIVENESS_INTERVAL,
    ) -> None:
        self.manager = manager
        self.actor = actor
        self.id = actor.inbox
        self.ensemble_id = ensemble_id
        self.name = name
        self.config = config
        self.orchestrator = orchestrator
        #: Public port on this host -> private port inside the allocation.
        self.ports = dict(ports)
        self.status = "pending"
        self.result: ExecutionResult | None = None
        self.started_at = 0
        self.finished_at = 0
        self.error = ""
        #: How many times the orchestrator restarted it.
        self.restarts = 0
        #: The orchestrator's health check (None: none registered) and its last result.
        self.health_check: HealthCheck | None = None
        self.health: HealthResult | None = None
        #: Serialises start, restart, stop and the recording of a natural end.
        self.lock = trio.Lock()
        self.heartbeat = LivenessSender(
            actor, lambda: self.orchestrator, self.liveness, liveness_interval
        )
        #: The behaviours the orchestrator is granted (the subnet ones are added by the node).
        self.granted_behaviors: list[str] = list(ALLOCATION_BEHAVIORS)
        #: Its place on the ensemble's subnet, once the orchestrator gave it one: the
        #: interface its executions get (see :class:`NetworkAttachment`), the subnet's ID and
        #: gateway (the executions' resolver).
        self.network: NetworkAttachment | None = None
        self.subnet_id = ""
        self.gateway_ip = ""
        self._generation = 0  # bumped by restart and stop: older watchers stay silent
        self._launched = False  # an execution may exist in the executor
        self._grant: list[Token] = []
        self._scope = trio.CancelScope()
        self._stopping = False
        self.done = trio.Event()
        for behavior, handler in (
            (ALLOCATION_START, self._on_start),
            (ALLOCATION_STOP, self._on_stop),
            (ALLOCATION_STATUS, self._on_status),
            (ALLOCATION_LOGS, self._on_logs),
            (ALLOCATION_RESTART, self._on_restart),
            (HEALTHCHECK_REGISTER, self._on_register_healthcheck),
            (HEALTHCHECK, self._on_healthcheck),
        ):
            actor.add_behavior(behavior, handler)

    @property
    def handle(self) -> Handle:
        return self.actor.handle

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the actor, its heartbeats and the orchestrator's grant until stopped."""
        try:
            with self._scope:
                self.grant_orchestrator()
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.actor.run)
                    nursery.start_soon(self._regrant)
                    await nursery.start(self.heartbeat.run)
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            self._revoke_grant()
            self.done.set()

    def close(self) -> None:
        """End the actor (its handlers, its grant); the execution is the caller's business."""
        self._scope.cancel()

    def grant_orchestrator(self) -> None:
        """Let the orchestrator invoke our allocation behaviours (Go's ``Security().Grant``).

        A delegate token from our capability context: subject = the orchestrator's context DID,
        audience = our actor's DID, the allocation behaviours, expiring after :data:`GRANT_NS`;
        added as a require anchor so the orchestrator's self-issued invocations are accepted.
        """
        if self.orchestrator.did.empty():
            return
        security = self.actor.security
        old = self._grant
        tokens = security.grant(
            self.orchestrator.did,
            did_from_id(security.id),
            list(self.granted_behaviors),
            security.now_ns() + GRANT_NS,
            depth=0,
        )
        security.capabilities.add_require(tokens.tokens)
        self._grant = list(tokens.tokens)
        if old:
            security.capabilities.remove(require=old)

    def _revoke_grant(self) -> None:
        if self._grant:
            try:
                self.actor.security.capabilities.remove(require=self._grant)
            except DMSError as exc:
                log.warning("could not drop the grant of allocation %s: %s", self.id, exc)
            self._grant = []

    async def _regrant(self) -> None:
        while True:
            await trio.sleep(GRANT_NS / 2e9)
            self.grant_orchestrator()

    # -- the work -----------------------------------------------------------------------------

    def request(self) -> ExecutionRequest:
        """What the executor is asked to run (the same for every start and restart)."""
        return ExecutionRequest(
            job_id=self.ensemble_id,
            execution_id=self.id,
            spec=self.config.execution,
            resources=self.config.resources,
            ports=tuple(PortBinding(pub, priv) for pub, priv in sorted(self.ports.items())),
            provision_scripts=tuple(self.config.provision_scripts),
            gateway_ip=self.gateway_ip if self.network is not None else "",
            network=self.network,
        )

    async def start(self) -> None:
        """Start the execution (provision scripts first); raises with a one-line reason."""
        async with self.lock:
            if self.status != "pending" or self._stopping:
                raise DMSError(f"allocation {self.id} is {self.status}, it cannot start again")
            executor = await self.manager.executor(self.config.executor)
            executor.validate(self.config.execution)
            await self._launch(executor)
        self.heartbeat.beat_now()

    async def restart(self) -> None:
        """Stop the execution if it runs and start it again with the same request.

        Allowed from running, failed and completed; raises with a one-line reason otherwise or
        when the new start fails (the allocation is then failed, and says why).
        """
        async with self.lock:
            if self._stopping or self.status not in RESTARTABLE:
                raise DMSError(
                    f"allocation {self.id} is {self.status}: only a running, failed or "
                    "completed allocation can be restarted"
                )
            self._generation += 1  # the watcher of the old execution stays silent
            try:
                executor = await self.manager.executor(self.config.executor)
                await self._discard(executor)
            except DMSError as exc:
                await self._fail(f"restart: could not stop the old execution: {exc}")
                raise
            self.restarts += 1
            await self._launch(executor)
        log.info("restarted allocation %s (restart %d)", self.id, self.restarts)
        self.heartbeat.beat_now()

    async def _launch(self, executor: Executor) -> None:
        """Record "running", start the execution and watch it (caller holds :attr:`lock`)."""
        await self.manager.set_status(self.id, "running", started=True)
        self.status, self.result, self.error = "running", None, ""
        self.started_at, self.finished_at = time.time_ns(), 0
        self._launched = True
        try:
            await executor.start(self.request())
        except DMSError as exc:
            await self._fail(str(exc))
            raise
        self.manager.nursery.start_soon(self._watch, executor, self._generation)

    async def _discard(self, executor: Executor) -> None:
        """Cancel and remove our execution if the executor still has it."""
        with contextlib.suppress(ExecutionNotFound):
            await executor.cancel(self.id)
        with contextlib.suppress(ExecutionNotFound):
            await executor.remove(self.id)

    async def _fail(self, error: str, *, exit_code: int | None = None) -> None:
        """Record and take the failed status (caller holds :attr:`lock`); never raises."""
        self.status, self.error, self.finished_at = "failed", error, time.time_ns()
        try:
            await self.manager.set_status(
                self.id, "failed", exit_code=exit_code, error=error, finished=True
            )
        except DMSError as exc:
            log.warning("could not record the failure of allocation %s: %s", self.id, exc)

    async def _watch(self, executor: Executor, generation: int) -> None:
        """Wait for the execution to end; record it and tell the orchestrator, unless it was
        stopped or restarted meanwhile (then a newer generation owns the allocation)."""
        try:
            result: ExecutionResult = await executor.wait(self.id)
        except DMSError as exc:
            result = ExecutionResult.failure(f"lost the execution: {exc}")
        async with self.lock:
            if self._stopping or generation != self._generation:
                return
            self.result = result
            self.status = final_status(result)
            self.error = result.error
            self.finished_at = time.time_ns()
            try:
                await self.manager.set_status(
                    self.id,
                    self.status,
                    exit_code=result.exit_code,
                    error=result.error,
                    finished=True,
                )
            except DMSError as exc:
                log.warning("could not record the end of allocation %s: %s", self.id, exc)
        await self.report(result)
        self.heartbeat.beat_now()

    async def report(self, result: ExecutionResult) -> None:
        """Send the orchestrator a task-termination notice (best effort, bounded)."""
        notice = TaskTermination(
            allocation_id=self.id,
            status=self.status,
            error=result.error,
            exit_code=result.exit_code,
            killed=result.termination in _KILLED,
            stdout=tail(result.stdout.encode()),
            stderr=tail(result.stderr.encode()),
        )
        try:
            with trio.fail_after(REPORT_TIMEOUT):
                await self.actor.send(
                    self.actor.message(
                        self.orchestrator, TASK_TERMINATION, notice, timeout=REPORT_TIMEOUT
                    )
                )
        except (DMSError, trio.TooSlowError) as exc:
            log.warning("could not report the end of allocation %s: %s", self.id, exc)

    async def stop(self) -> None:
        """Cancel and remove the execution (the caller holds :attr:`lock`); the manager
        releases resources and the record."""
        self._stopping = True
        self._generation += 1
        if not self._launched:
            return
        try:
            executor = await self.manager.executor(self.config.executor)
            await self._discard(executor)
        except DMSError as exc:
            log.info("stopping allocation %s: %s", self.id, exc)

    async def readopt(self, record: AllocationRecord, executor: Executor | None, why: str) -> None:
        """Take over what a previous run of this DMS left for this allocation (its actor is
        running already): watch an execution the executor still has (``executor``; its end,
        even one while we were down, is recorded and reported as usual), or record and report
        a live one as failed when the execution is gone (``why`` says why)."""
        self.started_at = record.started_at or 0
        self.finished_at = record.finished_at or 0
        self.error = record.error
        if record.status in ("failed", "completed"):
            code = -1 if record.exit_code is None else record.exit_code
            self.status = record.status
            self.result = ExecutionResult(code, error=record.error)
            self._launched = True
        elif record.status == "running":
            async with self.lock:
                self.status = "running"
                self._launched = True
                if executor is not None and await self._has_execution(executor):
                    self.manager.nursery.start_soon(self._watch, executor, self._generation)
                    log.info("re-adopted allocation %s (its execution runs on)", self.id)
                else:
                    await self._fail(why)
                    self.result = ExecutionResult.failure(why)
            if self.status == "failed":
                log.warning("re-adopted allocation %s as failed: %s", self.id, why)
                await self.report(self.result or ExecutionResult.failure(why))
        self.heartbeat.beat_now()

    async def _has_execution(self, executor: Executor) -> bool:
        try:
            await executor.status(self.id)
        except ExecutionNotFound:
            return False
        return True

    async def logs(self) -> AllocationLogs:
        """The tail of the execution's output (its result's once it ended)."""
        if self.result is not None:
            return AllocationLogs(
                tail(self.result.stdout.encode()), tail(self.result.stderr.encode())
            )
        if self.status != "running":
            return AllocationLogs(error=f"allocation {self.id} is {self.status}: no output")
        out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        try:
            executor = await self.manager.executor(self.config.executor)
            with trio.move_on_after(5):
                async for chunk in executor.logs(self.id, tail=1000):
                    out[chunk.stream] += chunk.data
        except DMSError as exc:
            return AllocationLogs(error=str(exc))
        return AllocationLogs(tail(bytes(out["stdout"])), tail(bytes(out["stderr"])))

    def status_payload(self) -> AllocationStatus:
        return AllocationStatus(
            allocation_id=self.id,
            status=self.status,
            exit_code=None if self.result is None else self.result.exit_code,
            error=self.error,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )

    # -- health and liveness ------------------------------------------------------------------

    def register_health_check(self, check: HealthCheck) -> None:
        """Store the orchestrator's health check (replacing any); raises if it cannot run."""
        problem = check_problem(check)
        if problem:
            raise DMSError(problem)
        self.health_check = check
        self.health = None

    async def check_health(self, timeout: float = HEALTH_TIMEOUT) -> HealthResult:
        """Run the registered check now (see the module docstring) and remember the result."""
        check = self.health_check
        kind = check.type if check is not None else ""
        if self.status != "running":
            message = f"allocation {self.id} is {self.status}, not running"
            result = HealthResult(False, message, time.time_ns(), kind)
        elif check is None:
            result = HealthResult(True, "", time.time_ns(), kind)
        else:
            try:
                executor = await self.manager.executor(self.config.executor)
            except DMSError as exc:
                result = HealthResult(False, str(exc), time.time_ns(), kind)
            else:
                result = await run_health_check(
                    check, executor, self.id, self.ports, timeout=timeout
                )
        self.health = result
        return result

    def liveness(self, sequence: int) -> AllocationLiveness:
        """Heartbeat number ``sequence``: our status now and the last health result."""
        health = self.health
        check = self.health_check
        return AllocationLiveness(
            allocation_id=self.id,
            status=self.status,
            timestamp_ns=time.time_ns(),
            sequence=sequence,
            health_check_enabled=check is not None,
            healthy=True if health is None else health.healthy,
            last_check_ns=0 if health is None else health.checked_ns,
            message="" if health is None else health.message,
            check_type=health.check_type if health is not None else (check.type if check else ""),
        )

    # -- behaviours ---------------------------------------------------------------------------

    def refusal(self, env: Envelope) -> str | None:
        """Why ``env``'s sender may not control us (None: it is our orchestrator); for the
        behaviours others add to this allocation (its subnet ones)."""
        return self._refusal(env)

    async def reply(self, env: Envelope, payload: Any) -> None:
        """Answer ``env`` (never raises: a lost requester is logged)."""
        await self._reply(env, payload)

    def _refusal(self, env: Envelope) -> str | None:
        """Why ``env``'s sender may not control us (None: it is our orchestrator)."""
        if env.from_.id == self.orchestrator.id and not self.orchestrator.id.empty():
            return None
        log.warning("allocation %s refused %s from a foreign actor", self.id, env.behavior)
        return f"only the orchestrator that deployed allocation {self.id} may control it"

    def _id_refusal(self, env: Envelope, *, required: bool) -> str | None:
        """Why the allocation ID in ``env``'s payload is not ours (None: it is, or it is
        absent and not ``required``)."""
        if not env.message and not required:
            return None
        try:
            named = allocation_id_payload(env.message)
        except DMSError as exc:
            return f"bad {env.behavior} request: {exc}"
        if named != self.id:
            return f"this is allocation {self.id}, not {named}"
        return None

    async def _reply(self, env: Envelope, payload: Any) -> None:
        if not env.options.reply_to:
            return
        try:
            await self.actor.reply(env, payload)
        except DMSError as exc:
            log.debug("could not reply to %s: %s", env.behavior, exc)

    async def _on_start(self, env: Envelope) -> None:
        refusal = self._refusal(env)
        if refusal:
            await self._reply(env, OkResponse(False, refusal))
            return
        try:
            await self.start()
        except DMSError as exc:
            await self._reply(env, OkResponse(False, str(exc)))
            return
        await self._reply(env, OkResponse(True))

    async def _on_restart(self, env: Envelope) -> None:
        refusal = self._refusal(env) or self._id_refusal(env, required=True)
        if refusal:
            await self._reply(env, OkResponse(False, refusal))
            return
        try:
            await self.restart()
        except DMSError as exc:
            await self._reply(env, OkResponse(False, str(exc)))
            return
        await self._reply(env, OkResponse(True))

    async def _on_stop(self, env: Envelope) -> None:
        refusal = self._refusal(env)
        if refusal:
            await self._reply(env, OkResponse(False, refusal))
            return
        try:
            await self.manager.stop(self.id, close=False)
        except DMSError as exc:
            await self._reply(env, OkResponse(False, str(exc)))
            return
        await self._reply(env, OkResponse(True))
        self.close()

    async def _on_status(self, env: Envelope) -> None:
        refusal = self._refusal(env)
        payload: Any = self.status_payload()
        if refusal:
            payload = AllocationStatus(self.id, "", error=refusal)
        await self._reply(env, payload)

    async def _on_logs(self, env: Envelope) -> None:
        refusal = self._refusal(env)
        await self._reply(env, AllocationLogs(error=refusal) if refusal else await self.logs())

    async def _on_register_healthcheck(self, env: Envelope) -> None:
        refusal = self._refusal(env)
        if refusal:
            await self._reply(env, OkResponse(False, refusal))
            return
        try:
            request = RegisterHealthcheck.from_json(env.message)
            if request.ensemble_id and request.ensemble_id != self.ensemble_id:
                raise DMSError(
                    f"allocation {self.id} belongs to ensemble {self.ensemble_id}, "
                    f"not {request.ensemble_id}"
                )
            self.register_health_check(request.check)
        except DMSError as exc:
            await self._reply(env, OkResponse(False, f"health check not registered: {exc}"))
            return
        log.info("allocation %s: %s health check registered", self.id, request.check.type)
        await self._reply(env, OkResponse(True))

    async def _on_healthcheck(self, env: Envelope) -> None:
        refusal = self._refusal(env) or self._id_refusal(env, required=False)
        if refusal:
            await self._reply(env, OkResponse(False, refusal))
            return
        # Answer before the caller gives up: within its expiry, at most HEALTH_TIMEOUT.
        expire = env.options.expire
        left = (expire - time.time_ns()) / 1e9 - 0.25 if expire else HEALTH_TIMEOUT
        result = await self.check_health(timeout=max(0.1, min(HEALTH_TIMEOUT, left)))
        await self._reply(env, OkResponse(result.healthy, result.message))
