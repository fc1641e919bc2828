"""The ``Executor`` interface every back-end implements (spec §10, Go's ``executor.Executor``).

Go's interface is Start / Run / Wait / Cancel / GetLogStream / Exec / Cleanup plus status
queries; ours is the same set, trio-native:

* An executor is used inside ``async with executor.open():``. The block owns the tasks that
  watch executions; leaving it stops watching but does **not** stop work that can outlive the
  DMS (Docker containers keep running and are re-adopted by :meth:`Executor.recover` after a
  restart). In-process work (WASM) cannot outlive it and is cancelled.
* :meth:`start` returns once the execution runs (or raises); :meth:`wait` returns its
  :class:`ExecutionResult` and may be awaited by any number of tasks, before or after the end;
  results stay until :meth:`remove` or :meth:`cleanup`.
* :meth:`cancel` stops an execution; its result then says ``Termination.CANCELLED``.
* Everything an executor creates carries its ``executor_id`` (Docker: the ``nunet-executor``
  label), so :meth:`cleanup` can remove all of it, even what a crashed DMS left behind.

Blocking engines (the Docker SDK, wasmtime) run in worker threads under a per-executor
capacity limiter, so a thousand long waits never starve trio's default thread pool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import trio

from dms.executor._errors import ExecutionExists, ExecutionNotFound, Unsupported
from dms.executor._types import (
    ExecResult,
    ExecutionInfo,
    ExecutionRequest,
    ExecutionResult,
    ExecutionStatus,
    LogChunk,
    NetworkAttachment,
    SpecConfig,
)


@dataclass(frozen=True)
class ExecutorSettings:
    """What the node tells every executor it creates.

    ``executor_id`` must be stable across restarts of the same DMS (it finds its leftovers by
    it); ``work_dir`` holds per-execution files (provision scripts, logs, fetched modules).
    """

    executor_id: str
    work_dir: Path
    allow_privileged: bool = False  # config job.allow_privileged_docker
    extra: dict[str, Any] = field(default_factory=dict)


class Executor(ABC):
    """One execution back-end (``docker``, ``wasm``, ``null``...)."""

    #: The name allocations use in ``executor:`` and ``execution.type``.
    name: ClassVar[str]

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings
        self._nursery: trio.Nursery | None = None
        self.executions = ExecutionTable()

    @property
    def executor_id(self) -> str:
        return self.settings.executor_id

    @property
    def nursery(self) -> trio.Nursery:
        """The nursery of the enclosing :meth:`open` block (watcher tasks go here)."""
        if self._nursery is None:
            raise RuntimeError(f"{self.name} executor used outside 'async with executor.open()'")
        return self._nursery

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Executor]:
        """Run the executor for the duration of the block (see the module docstring).

        An exception from the block (or from setup) comes out as itself, not wrapped in the
        nursery's exception group, so ``except ImageUnavailable`` works for callers.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._setup()
                    yield self
                finally:
                    with trio.CancelScope(shield=True):
                        await self._teardown()
                    self._nursery = None
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1 and not isinstance(
                group.exceptions[0], BaseExceptionGroup
            ):
                raise group.exceptions[0]  # noqa: B904 (its own cause chain is kept)
            raise

    @classmethod
    def probe(cls) -> str | None:
        """Why this executor cannot run on this machine (one line), or ``None`` when it can.

        Blocking and cheap (an engine ping, an import); the registry caches it.
        """
        return None

    async def _setup(self) -> None:  # noqa: B027 (optional hook)
        """Connect to the engine; raise :class:`ExecutorUnavailable` when it cannot run."""

    async def _teardown(self) -> None:  # noqa: B027 (optional hook)
        """Release engine connections; in-process executions are cancelled here."""

    # -- specs -------------------------------------------------------------------------------

    @abstractmethod
    def validate(self, spec: SpecConfig) -> None:
        """Raise :class:`InvalidSpec` (one line) unless this executor can run ``spec``.

        Cheap and local: used when bidding, before anything is started.
        """

    # -- lifecycle ---------------------------------------------------------------------------

    @abstractmethod
    async def start(self, request: ExecutionRequest) -> None:
        """Start the execution; return once it runs. Raises on a bad spec or a missing image."""

    async def wait(self, execution_id: str) -> ExecutionResult:
        """Wait for the execution to end and return its result."""
        return await self.executions.wait(execution_id)

    async def run(self, request: ExecutionRequest) -> ExecutionResult:
        """Start and wait: Go's ``Run``."""
        await self.start(request)
        return await self.wait(request.execution_id)

    @abstractmethod
    async def cancel(self, execution_id: str) -> None:
        """Stop the execution; a no-op when it already ended."""

    async def status(self, execution_id: str) -> ExecutionStatus:
        return self.executions.get(execution_id).status

    async def list_executions(self) -> list[ExecutionInfo]:
        return [entry.info(self.name) for entry in self.executions.all()]

    @abstractmethod
    def logs(
        self, execution_id: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[LogChunk]:
        """The execution's output: the last ``tail`` lines (all when ``None``), then, with
        ``follow``, what it writes until it ends."""

    async def exec(self, execution_id: str, command: Sequence[str]) -> ExecResult:
        """Run ``command`` inside the running execution."""
        raise Unsupported(f"the {self.name} executor cannot run commands inside an execution")

    async def reattach_network(self, execution_id: str, network: NetworkAttachment) -> bool:
        """Give a re-adopted, still running execution its subnet endpoint again (a restarted
        DMS's old endpoint went with the old process). False when the execution does not run
        or the back-end has no network of its own."""
        return False

    async def pause(self, execution_id: str) -> None:
        raise Unsupported(f"the {self.name} executor cannot pause an execution")

    async def resume(self, execution_id: str) -> None:
        raise Unsupported(f"the {self.name} executor cannot resume an execution")

    async def remove(self, execution_id: str) -> None:
        """Forget a finished execution (and delete what it left: container, files)."""
        self.executions.remove(execution_id)

    @abstractmethod
    async def cleanup(self) -> None:
        """Stop and remove everything carrying this executor's ID, running or not."""

    async def recover(self) -> list[ExecutionInfo]:
        """After a restart: find what a previous run of this executor left and adopt it.

        Adopted executions can be waited on, cancelled, logged and removed as if started here.
        Executors whose work cannot outlive the process return ``[]``.
        """
        return []


@dataclass
class TrackedExecution:
    """An executor's bookkeeping for one execution."""

    request: ExecutionRequest
    status: ExecutionStatus = ExecutionStatus.PENDING
    result: ExecutionResult | None = None
    done: trio.Event = field(default_factory=trio.Event)
    cancel_requested: bool = False
    handle: Any = None  # back-end state: a container, a thread's cancel hook...

    def info(self, executor: str, detail: str = "") -> ExecutionInfo:
        return ExecutionInfo(
            execution_id=self.request.execution_id,
            job_id=self.request.job_id,
            status=self.status,
            executor=executor,
            detail=detail,
        )


class ExecutionTable:
    """Executions by ID with their results and waiters; used from the trio thread only."""

    def __init__(self) -> None:
        self._entries: dict[str, TrackedExecution] = {}

    def add(self, request: ExecutionRequest) -> TrackedExecution:
        if request.execution_id in self._entries:
            raise ExecutionExists(f"execution {request.execution_id!r} already exists")
        entry = TrackedExecution(request)
        self._entries[request.execution_id] = entry
        return entry

    def get(self, execution_id: str) -> TrackedExecution:
        try:
            return self._entries[execution_id]
        except KeyError:
            raise ExecutionNotFound(f"no execution {execution_id!r}") from None

    def all(self) -> list[TrackedExecution]:
        return list(self._entries.values())

    def finish(self, execution_id: str, result: ExecutionResult) -> None:
        """Record the result once; later calls (a racing cancel) are ignored."""
        entry = self.get(execution_id)
        if entry.result is not None:
            return
        entry.result = result
        entry.status = result.status
        entry.done.set()

    async def wait(self, execution_id: str) -> ExecutionResult:
        entry = self.get(execution_id)
        await entry.done.wait()
        assert entry.result is not None
        return entry.result

    def remove(self, execution_id: str) -> TrackedExecution:
        entry = self.get(execution_id)
        del self._entries[execution_id]
        return entry

    def clear(self) -> None:
        self._entries.clear()
