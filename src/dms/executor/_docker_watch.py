"""How the docker executor learns that a container ended, and what its result is.

* **One thread for all containers, not one waiting thread per container.** The engine's event
  stream, filtered by ``label=nunet-executor=<id>`` (``die`` and ``oom``), is followed by one
  thread (its own limiter, so it never waits behind log followers). It is subscribed before the
  first container starts (:meth:`CompletionWatcher.start` returns once it is), so a node
  running a thousand containers uses one thread to watch them.
* **Reconnect without losing a death.** When the stream breaks (the engine restarted), it is
  opened again with ``since=`` the time of the last event seen, and every execution still open
  is checked once, for a ``die`` that fell in the gap.
* **A periodic sweep** (every ``sweep_interval`` s) lists this executor's stopped containers in
  one call and finishes those whose event went missing; the event stream stays the fast path.
* **Finishing** a container that stopped: it is inspected once for its exit code and
  ``State.OOMKilled`` and its output is collected (the last ``log_limit`` bytes of each stream)
  into the :class:`ExecutionResult`; an engine that keeps failing gets three tries, then the
  execution is recorded as lost.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import trio
from docker.types import CancellableStream

from dms.executor._base import ExecutionTable, TrackedExecution
from dms.executor._docker_engine import Engine, EngineError, read_logs
from dms.executor._docker_spec import result_from_state
from dms.executor._errors import ExecutionNotFound, ExecutorError
from dms.executor._types import ExecutionResult, Termination

log = logging.getLogger(__name__)

#: Lines of log read back when an execution ends (the result keeps the last ``log_limit`` bytes).
RESULT_LOG_LINES = 20_000


@dataclass
class Container:
    """What the executor keeps about one execution's container (``TrackedExecution.handle``)."""

    id: str = ""
    name: str = ""
    disk_limit: int = 0  # watched by us (0: none, or the driver enforces it)
    memory_limit: int = 0
    oom_seen: bool = False
    disk_exceeded: str = ""  # why the disk watchdog killed it
    finalizing: bool = False
    made_dir: bool = False  # this start wrote the execution's files
    paused: bool = False  # as of the last inspect that found it running (read by recover)


class CompletionWatcher:
    """Finishes a docker executor's executions when their containers stop.

    The executor tells it which container carries which execution (:meth:`track`,
    :meth:`forget`); events for other containers are ignored.
    """

    def __init__(
        self,
        executions: ExecutionTable,
        label: str,
        *,
        timeout: float,
        log_limit: int,
        sweep_interval: float,
    ) -> None:
        self._executions = executions
        self._label = label  # ``nunet-executor=<executor ID>``
        self._timeout = timeout
        self._log_limit = log_limit
        self._sweep_interval = sweep_interval
        self._by_container: dict[str, str] = {}  # container ID -> execution ID
        self._engine_: Engine | None = None
        self._nursery_: trio.Nursery | None = None
        self._closing = False
        #: The one event-stream thread.
        self.events_limiter = trio.CapacityLimiter(1)

    # -- which container is whose ------------------------------------------------------------

    def track(self, container_id: str, execution_id: str) -> None:
        self._by_container[container_id] = execution_id

    def forget(self, container_id: str) -> None:
        self._by_container.pop(container_id, None)

    def forget_all(self) -> None:
        self._by_container.clear()

    def __contains__(self, container_id: object) -> bool:
        return container_id in self._by_container

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, engine: Engine, nursery: trio.Nursery) -> None:
        """Subscribe to the event stream (returns once subscribed) and start the sweep."""
        self._closing = False
        self._engine_ = engine
        self._nursery_ = nursery
        await nursery.start(self._follow_events)
        nursery.start_soon(self._sweep)

    def stop(self) -> None:
        """Stop watching (the executor's nursery ends the tasks); containers keep running."""
        self._closing = True
        self._engine_ = None

    @property
    def _engine(self) -> Engine:
        if self._engine_ is None:
            raise RuntimeError("docker executor used outside 'async with executor.open()'")
        return self._engine_

    @property
    def _nursery(self) -> trio.Nursery:
        if self._nursery_ is None:
            raise RuntimeError("docker executor used outside 'async with executor.open()'")
        return self._nursery_

    # -- the event stream --------------------------------------------------------------------

    async def _follow_events(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Complete executions from the engine's ``die``/``oom`` events (one thread in all)."""
        since: int | None = None
        started = False
        filters = {"type": "container", "label": self._label, "event": ["die", "oom"]}
        while not self._closing:
            engine = self._engine
            try:
                async with engine.stream(
                    self._nursery,
                    "events",
                    functools.partial(_open_events, engine.api, since, filters),
                    buffer=float("inf"),
                    limiter=self.events_limiter,
                ) as events:
                    if not started:
                        started = True
                        task_status.started()
                    else:
                        await self._reconcile()
                    async for event in events:
                        since = int(event.get("time") or 0) or since
                        self._on_event(event)
            except ExecutorError:
                if not started:
                    raise
            if self._closing:
                return
            log.warning("docker: lost the engine's event stream; reconnecting")
            await trio.sleep(1)

    def _on_event(self, event: dict[str, Any]) -> None:
        container_id = str(event.get("id") or (event.get("Actor") or {}).get("ID") or "")
        execution_id = self._by_container.get(container_id)
        if execution_id is None:
            return
        try:
            entry = self._executions.get(execution_id)
        except ExecutionNotFound:
            return
        action = str(event.get("Action") or event.get("status") or "")
        if action == "oom":
            entry.handle.oom_seen = True
        elif action == "die" and entry.result is None:
            self._nursery.start_soon(self._finalize_safely, entry)

    async def _reconcile(self) -> None:
        """After the event stream came back: finish what died while it was away."""
        for entry in self._executions.all():
            if entry.result is None and entry.handle is not None and entry.handle.id:
                await self._finalize_safely(entry)

    # -- the sweep ---------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Every ``sweep_interval`` s, finish executions whose ``die`` event went missing.

        One list call for all containers of this executor; the event stream stays the fast path.
        """
        while not self._closing:
            await trio.sleep(self._sweep_interval)
            try:
                rows = await self._engine.containers(self._label, status=["exited", "dead"])
            except ExecutorError as exc:
                log.warning("docker: sweep failed: %s", exc)
                continue
            for row in rows:
                execution_id = self._by_container.get(str(row["Id"]))
                if execution_id is None:
                    continue
                with contextlib.suppress(ExecutionNotFound):
                    entry = self._executions.get(execution_id)
                    if entry.result is None:
                        log.warning("docker: %s ended without an event", execution_id)
                        await self._finalize_safely(entry)

    # -- finishing ---------------------------------------------------------------------------

    async def _finalize_safely(self, entry: TrackedExecution) -> None:
        """:meth:`finalize` for background tasks: a bug there must not take the executor down."""
        try:
            await self.finalize(entry)
        except ExecutorError as exc:
            log.warning("docker: %s: %s", entry.request.execution_id, exc)
        except Exception:
            log.exception("docker: cannot record the end of %s", entry.request.execution_id)
            with contextlib.suppress(ExecutionNotFound):
                self._executions.finish(
                    entry.request.execution_id, ExecutionResult.failure("internal error")
                )

    async def finalize(self, entry: TrackedExecution) -> None:
        """Record the result of a container that stopped (no-op while it still runs).

        The executor calls it too, where it cannot wait for an event: after a cancel, and for
        the containers it adopts in ``recover``.
        """
        handle: Container = entry.handle
        if entry.result is not None or handle.finalizing:
            return
        handle.finalizing = True
        execution_id = entry.request.execution_id
        try:
            result = await self._result_of(entry)
            if result is not None:
                self._executions.finish(execution_id, result)
        except ExecutionNotFound:
            pass  # removed meanwhile
        finally:
            handle.finalizing = False

    async def _result_of(self, entry: TrackedExecution) -> ExecutionResult | None:
        handle: Container = entry.handle
        engine = self._engine
        for attempt in range(3):
            try:
                attrs = await engine.call(
                    "inspect container", lambda: engine.api.inspect_container(handle.id)
                )
                state = attrs.get("State") or {}
                if state.get("Running"):
                    handle.paused = bool(state.get("Paused"))
                    return None
                out, err = await engine.call(
                    "read logs",
                    lambda: read_logs(
                        engine.api,
                        handle.id,
                        tail=RESULT_LOG_LINES,
                        limit=self._log_limit,
                        timeout=self._timeout,
                    ),
                )
                return result_from_state(
                    state,
                    stdout=out.decode(errors="replace"),
                    stderr=err.decode(errors="replace"),
                    cancelled=entry.cancel_requested,
                    oom_seen=handle.oom_seen,
                    disk_exceeded=handle.disk_exceeded,
                    memory_limit=handle.memory_limit,
                )
            except docker.errors.NotFound:
                return ExecutionResult.failure(
                    "the container vanished (removed outside the DMS)",
                    Termination.CANCELLED if entry.cancel_requested else Termination.ERROR,
                )
            except EngineError as exc:
                if attempt == 2:
                    return ExecutionResult.failure(f"lost: {exc}")
                await trio.sleep(1 + attempt)
        return None  # pragma: no cover


def _open_events(
    api: docker.APIClient, since: int | None, filters: dict[str, Any]
) -> CancellableStream[dict[str, Any]]:
    return api.events(since=since, filters=filters, decode=True)
