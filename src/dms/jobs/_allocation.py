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

Every state change is written to the allocation record before it takes effect, so a restarted
node knows what it was running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from dms.actor import Actor, Envelope, Handle
from dms.did import did_from_id
from dms.errors import DMSError
from dms.executor import ExecutionRequest, ExecutionResult, PortBinding, Termination
from dms.jobs._wire import (
    ALLOCATION_BEHAVIORS,
    ALLOCATION_LOGS,
    ALLOCATION_START,
    ALLOCATION_STATUS,
    ALLOCATION_STOP,
    TASK_TERMINATION,
    AllocationDeploymentConfig,
    AllocationLogs,
    AllocationStatus,
    OkResponse,
    TaskTermination,
)
from dms.ucan import Token

if TYPE_CHECKING:
    from trio_typing import TaskStatus

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
        self._grant: list[Token] = []
        self._scope = trio.CancelScope()
        self._stopping = False
        self.done = trio.Event()
        for behavior, handler in (
            (ALLOCATION_START, self._on_start),
            (ALLOCATION_STOP, self._on_stop),
            (ALLOCATION_STATUS, self._on_status),
            (ALLOCATION_LOGS, self._on_logs),
        ):
            actor.add_behavior(behavior, handler)

    @property
    def handle(self) -> Handle:
        return self.actor.handle

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the actor (and keep the orchestrator's grant fresh) until stopped."""
        try:
            with self._scope:
                self.grant_orchestrator()
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.actor.run)
                    nursery.start_soon(self._regrant)
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
            list(ALLOCATION_BEHAVIORS),
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

    async def start(self) -> None:
        """Start the execution (provision scripts first); raises with a one-line reason."""
        if self.status != "pending":
            raise DMSError(f"allocation {self.id} is {self.status}, it cannot start again")
        executor = await self.manager.executor(self.config.executor)
        executor.validate(self.config.execution)
        request = ExecutionRequest(
            job_id=self.ensemble_id,
            execution_id=self.id,
            spec=self.config.execution,
            resources=self.config.resources,
            ports=tuple(PortBinding(pub, priv) for pub, priv in sorted(self.ports.items())),
            provision_scripts=tuple(self.config.provision_scripts),
        )
        await self.manager.set_status(self.id, "running", started=True)
        self.status = "running"
        self.started_at = time.time_ns()
        try:
            await executor.start(request)
        except DMSError as exc:
            self.status, self.error, self.finished_at = "failed", str(exc), time.time_ns()
            await self.manager.set_status(self.id, "failed", error=str(exc), finished=True)
            raise
        self.manager.nursery.start_soon(self._watch, executor)

    async def _watch(self, executor: Any) -> None:
        """Wait for the execution to end; record it and tell the orchestrator (unless stopped)."""
        try:
            result: ExecutionResult = await executor.wait(self.id)
        except DMSError as exc:
            result = ExecutionResult.failure(f"lost the execution: {exc}")
        if self._stopping:
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
        """Cancel and remove the execution; the manager releases resources and the record."""
        self._stopping = True
        if self.status == "pending":
            return
        try:
            executor = await self.manager.executor(self.config.executor)
            await executor.cancel(self.id)
            await executor.remove(self.id)
        except DMSError as exc:
            log.info("stopping allocation %s: %s", self.id, exc)

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

    # -- behaviours ---------------------------------------------------------------------------

    def _refusal(self, env: Envelope) -> str | None:
        """Why ``env``'s sender may not control us (None: it is our orchestrator)."""
        if env.from_.id == self.orchestrator.id and not self.orchestrator.id.empty():
            return None
        log.warning("allocation %s refused %s from a foreign actor", self.id, env.behavior)
        return f"only the orchestrator that deployed allocation {self.id} may control it"

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
