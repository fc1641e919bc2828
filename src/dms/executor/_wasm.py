"""The ``wasm`` executor: WASI (preview1) command modules on wasmtime, in-process.

It is the embedded default: it needs nothing but the ``wasmtime`` wheel, so every node can run
allocations even without Docker.

``params`` (see :mod:`dms.executor._wasm_spec`): ``module`` (required: an http(s) URL fetched
into ``<work_dir>/wasm-modules/``, an absolute ``.wasm``/``.wat`` path when host paths are
allowed, or only the program's name when ``module_data`` carries the module inline, base64),
``sha256`` (pins the module; required with ``module_data``; checked before it is compiled),
``args`` (``argv[0]`` is the module's file name),
``env`` (mapping or ``NAME=value`` list), ``fuel`` (instruction budget → ``CPU_LIMIT``),
``timeout`` (wall-clock seconds → ``CPU_LIMIT``). ``resources.ram.size`` caps linear memory.

Layout: ``<work_dir>/executions/<execution_id>/`` holds ``sandbox/`` (the module's only view of
the filesystem, preopened read-write as ``/sandbox``), ``stdout.log``, ``stderr.log`` and a
marker naming this executor, so :meth:`WasmExecutor.cleanup` removes exactly its own. Results
carry the last 1 MiB of each stream; the files keep everything.

Threads: each running module occupies one worker thread from ``trio.to_thread`` under this
executor's own :class:`trio.CapacityLimiter` (``settings.extra["wasm_max_concurrent"]``,
default 64), never trio's default 40-thread pool. Executions beyond the limit wait, ``PENDING``.
Compiling and file I/O use a second, small limiter so they never queue behind long runs.

Stopping: :meth:`cancel`, a ``timeout`` and shutdown bump the execution's engine epoch, which
traps the module promptly however tight its loop. A module blocked in a host call (a WASI sleep)
only sees that when the call returns; after ``cancel_grace`` seconds the executor stops waiting
for it, reports the end, and leaves the thread to trap on return ("abandoned").

Node settings (``settings.extra``): ``wasm_max_concurrent`` (threads for running modules, 64),
``wasm_max_module_bytes`` (size cap of a module file or download, 64 MiB),
``wasm_fetch_timeout`` (seconds for a whole download, 60), ``wasm_fetch_private_addresses``
(fetch module URLs from loopback/private addresses too; off, so a deployer cannot make the node
probe its own network; ``nunet executor run`` turns it on for the user's own specs),
``wasm_allow_host_paths`` (run modules named by a path on this host; off, so a deployer
can never make the node open a file of its choosing; ``nunet executor run`` turns it on),
``wasm_module_dirs`` (when set, the only directories such module files may come from),
``wasm_compiled_cache_bytes`` (compiled artifacts kept in memory, 256 MiB).

Not enforced: ``resources.cpu`` (a module runs on one thread, so it never uses more than one
core) and ``resources.disk`` (the sandbox and log files are not size-capped). Requests with
provision scripts or ports are refused: a module has no shell and cannot listen.

Restarts: in-process work cannot outlive the DMS, so :meth:`recover` adopts nothing. It does
not delete the previous run's execution directories either: their logs are what a user reads
to learn why an allocation died; :meth:`cleanup` removes them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from dms.executor._base import Executor, ExecutorSettings, TrackedExecution
from dms.executor._errors import (
    ExecutionExists,
    ExecutionNotFound,
    ExecutorError,
    ExecutorUnavailable,
    InvalidSpec,
)
from dms.executor._execution_dirs import (
    execution_dir,
    executions_root,
    owned_dirs,
    remove_trees,
    write_marker,
)
from dms.executor._types import (
    ExecutionInfo,
    ExecutionRequest,
    ExecutionStatus,
    LogChunk,
    SpecConfig,
)
from dms.executor._wasm_logs import Stream, follow_logs, read_tail
from dms.executor._wasm_result import Outcome, RunContext, StopReason, result_of
from dms.executor._wasm_source import (
    ModuleBytes,
    fetch_module,
    inline_module,
    read_module_file,
)
from dms.executor._wasm_spec import WasmSpec, parse_spec

if TYPE_CHECKING:
    from dms.executor._wasm_engine import CompiledModules, Runner

MiB = 1024 * 1024
OUTPUT_LIMIT = MiB  # bytes of each stream returned in an ExecutionResult


@dataclass(eq=False)
class _Run:
    """The executor's handle on one execution (``TrackedExecution.handle``)."""

    spec: WasmSpec
    runner: Runner
    directory: Path
    memory_cap: int
    stop_reason: StopReason | None = None
    abandoned: bool = False
    running: trio.Event = field(default_factory=trio.Event)  # a worker thread picked it up
    launched: trio.Event = field(default_factory=trio.Event)  # running, or already over
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)  # cancel = abandon

    @property
    def stdout(self) -> Path:
        return self.directory / "stdout.log"

    @property
    def stderr(self) -> Path:
        return self.directory / "stderr.log"

    def outputs(self) -> tuple[str, str]:
        """The ends of stdout and stderr, as an :class:`ExecutionResult` carries them."""
        return read_tail(self.stdout, OUTPUT_LIMIT), read_tail(self.stderr, OUTPUT_LIMIT)

    def stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.runner.stop()

    def abandon(self) -> None:
        """Stop waiting for the worker thread (it traps by itself once its host call returns)."""
        self.abandoned = self.running.is_set()
        self.scope.cancel()


def _prepare_directory(directory: Path, marker: dict[str, str]) -> None:
    """A fresh, private execution directory: ``sandbox/``, empty logs, the marker.

    Plain ``os`` calls: this is on every start's path (pathlib costs twice as much here).
    """
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:  # a stale run with the same ID: IDs are unique, so it is ours
        shutil.rmtree(directory)
        os.mkdir(directory, 0o700)
    except FileNotFoundError:
        directory.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(directory, 0o700)
    os.mkdir(directory / "sandbox")
    write_marker(directory, **marker)
    for name in ("stdout.log", "stderr.log"):
        os.close(os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))


_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class WasmExecutor(Executor):
    """WASI modules on wasmtime, one worker thread and one engine per execution."""

    name = "wasm"

    #: Seconds a stop (cancel, timeout, shutdown) waits for the module before abandoning it.
    cancel_grace: float = 2.0

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        extra = settings.extra
        self._limiter = trio.CapacityLimiter(int(extra.get("wasm_max_concurrent", 64)))
        self._io_limiter = trio.CapacityLimiter(max(2, os.cpu_count() or 2))
        self.max_module_bytes = int(extra.get("wasm_max_module_bytes", 64 * MiB))
        self.fetch_timeout = float(extra.get("wasm_fetch_timeout", 60.0))
        self.fetch_private = bool(extra.get("wasm_fetch_private_addresses", False))
        self.allow_host_paths = extra.get("wasm_allow_host_paths", False) is True
        dirs = extra.get("wasm_module_dirs")
        self.module_dirs = None if dirs is None else tuple(Path(d) for d in dirs)
        self._compiled: CompiledModules | None = None
        self._starting: set[str] = set()
        self._compiled_max_bytes = int(extra.get("wasm_compiled_cache_bytes", 256 * MiB))

    @property
    def executions_dir(self) -> Path:
        return executions_root(self.settings.work_dir)

    @property
    def module_cache_dir(self) -> Path:
        return self.settings.work_dir / "wasm-modules"

    @property
    def compiled(self) -> CompiledModules:
        """Compiled artifacts (created on first use: it needs wasmtime)."""
        if self._compiled is None:
            from dms.executor._wasm_engine import CompiledModules

            self._compiled = CompiledModules(self._compiled_max_bytes)
        return self._compiled

    def _marker(self) -> dict[str, str]:
        return {"executor": self.name, "executor_id": self.executor_id}

    @classmethod
    def probe(cls) -> str | None:
        """Cheap on purpose: is wasmtime installed with a native library for this platform?

        Loading wasmtime and creating an engine costs a running DMS ~6 MB of RSS, and nodes
        probe every executor to advertise them; the real engine check runs when the executor
        is opened (:meth:`_setup`), before anything is started on it.
        """
        spec = importlib.util.find_spec("wasmtime")
        if spec is None or spec.origin is None:
            return "wasm: the wasmtime package is not installed"
        machine = platform.machine().lower()
        machine = _ARCH_ALIASES.get(machine, machine)
        native = Path(spec.origin).parent / f"{sys.platform}-{machine}"
        if not native.is_dir() or not any(native.iterdir()):
            return f"wasm: wasmtime has no native library for {sys.platform}-{machine}"
        return None

    async def _setup(self) -> None:
        try:
            from dms.executor._wasm_engine import new_engine

            new_engine(fuel=False)
        except Exception as exc:
            raise ExecutorUnavailable(f"wasm: wasmtime cannot run here: {exc}") from None

    async def _teardown(self) -> None:
        """In-process work cannot outlive the DMS: stop everything still running."""
        await self._stop_all(StopReason.SHUTDOWN)

    # -- specs -------------------------------------------------------------------------------

    def _parse(self, spec: SpecConfig) -> WasmSpec:
        return parse_spec(
            spec,
            module_dirs=self.module_dirs,
            allow_host_paths=self.allow_host_paths,
            max_module_bytes=self.max_module_bytes,
        )

    def validate(self, spec: SpecConfig) -> None:
        self._parse(spec)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, request: ExecutionRequest) -> None:
        nursery = self.nursery
        spec = self._parse(request.spec)
        if request.provision_scripts:
            raise InvalidSpec("wasm execution: provision scripts need a shell; a module has none")
        if request.ports:
            raise InvalidSpec("wasm execution: a WASI module cannot listen, so ports are refused")
        execution_id = request.execution_id
        if execution_id in self._starting or self._known(execution_id):
            raise ExecutionExists(f"execution {execution_id!r} already exists")
        # Reserved while it is prepared, so a duplicate ID can never touch its directory.
        self._starting.add(execution_id)
        try:
            module = None
            if spec.is_url:
                module = await fetch_module(
                    spec,
                    self.module_cache_dir,
                    limit=self.max_module_bytes,
                    fetch_timeout=self.fetch_timeout,
                    limiter=self._io_limiter,
                    private_ok=self.fetch_private,
                )
            directory = execution_dir(self.settings.work_dir, execution_id)
            marker = {**self._marker(), "execution_id": execution_id, "job_id": request.job_id}
            compiled = self.compiled
            artifact = await trio.to_thread.run_sync(
                self._prepare, compiled, spec, module, directory, marker, limiter=self._io_limiter
            )
            entry = self.executions.add(request)
        finally:
            self._starting.discard(execution_id)
        from dms.executor._wasm_engine import Runner, RunPlan

        memory_cap = max(0, request.resources.ram.size)
        plan = RunPlan(
            artifact=artifact,
            fuel=spec.fuel,
            memory_cap=memory_cap,
            argv=(spec.name, *spec.args),
            env=spec.env,
            stdout=directory / "stdout.log",
            stderr=directory / "stderr.log",
            sandbox=directory / "sandbox",
        )
        run = _Run(spec, Runner(plan), directory, memory_cap)
        entry.handle = run
        free = self._limiter.available_tokens > 0
        nursery.start_soon(self._watch, entry, run)
        if free:  # return once it runs, unless it has to queue for a thread
            await run.launched.wait()

    def _known(self, execution_id: str) -> bool:
        try:
            self.executions.get(execution_id)
        except ExecutionNotFound:
            return False
        return True

    def _prepare(
        self,
        compiled: CompiledModules,
        spec: WasmSpec,
        module: ModuleBytes | None,
        directory: Path,
        marker: dict[str, str],
    ) -> bytes:
        """In a worker thread, everything before a run that touches the disk or the compiler
        (one thread hop): read a local module, get its compiled artifact, make the execution
        directory. Returns the artifact."""
        if module is None and spec.is_inline:
            module = inline_module(spec, limit=self.max_module_bytes)
        elif module is None:
            module = read_module_file(spec, limit=self.max_module_bytes)
        artifact = compiled.artifact(module, fuel=spec.fuel is not None, source=spec.module)
        try:
            _prepare_directory(directory, marker)
        except OSError as exc:
            raise ExecutorError(f"cannot create {directory}: {exc.strerror}") from None
        return artifact

    def _mark_running(self, entry: TrackedExecution, run: _Run) -> None:
        if entry.result is None:
            entry.status = ExecutionStatus.RUNNING
        run.running.set()
        run.launched.set()

    async def _watch(self, entry: TrackedExecution, run: _Run) -> None:
        """Run the module in a worker thread and record how it ended."""
        token = trio.lowlevel.current_trio_token()

        def on_running() -> None:  # in the worker thread
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._mark_running, entry, run)

        def work() -> tuple[Outcome | None, tuple[str, str]]:  # in the worker thread
            return run.runner.execute(on_running), run.outputs()

        done: tuple[Outcome | None, tuple[str, str]] | None = None
        try:
            with run.scope:
                async with trio.open_nursery() as timers:
                    if run.spec.timeout is not None:
                        timers.start_soon(self._time_limit, run, run.spec.timeout)
                    # trio-typing's stubs predate ``abandon_on_cancel`` (trio >= 0.23).
                    done = await trio.to_thread.run_sync(  # type: ignore[call-arg]
                        work, limiter=self._limiter, abandon_on_cancel=True
                    )
                    timers.cancel_scope.cancel()
        finally:
            if done is None:  # abandoned, or stopped before it got a thread
                done = None, run.outputs()
            outcome, (stdout, stderr) = done
            context = RunContext(
                fuel=run.spec.fuel,
                timeout=run.spec.timeout,
                memory_cap=run.memory_cap,
                stop=run.stop_reason,
                abandoned=run.abandoned,
                stdout=stdout,
                stderr=stderr,
            )
            with contextlib.suppress(ExecutionNotFound):
                self.executions.finish(entry.request.execution_id, result_of(outcome, context))
            run.launched.set()

    async def _time_limit(self, run: _Run, seconds: float) -> None:
        await run.running.wait()
        await trio.sleep(seconds)
        run.stop(StopReason.TIMEOUT)
        await trio.sleep(self.cancel_grace)
        run.abandon()

    async def _stop(self, entry: TrackedExecution, reason: StopReason) -> None:
        """Stop a running execution and return once its result is recorded."""
        run: _Run = entry.handle
        run.stop(reason)
        if run.running.is_set():
            with trio.move_on_after(self.cancel_grace):
                await entry.done.wait()
        if not entry.done.is_set():
            run.abandon()
            await entry.done.wait()

    async def _stop_all(self, reason: StopReason) -> None:
        async with trio.open_nursery() as nursery:
            for entry in self.executions.all():
                if entry.result is None:
                    nursery.start_soon(self._stop, entry, reason)

    async def cancel(self, execution_id: str) -> None:
        entry = self.executions.get(execution_id)
        if entry.result is not None:
            return
        entry.cancel_requested = True
        await self._stop(entry, StopReason.CANCEL)

    async def list_executions(self) -> list[ExecutionInfo]:
        return [entry.info(self.name, entry.handle.spec.module) for entry in self.executions.all()]

    async def logs(
        self, execution_id: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[LogChunk]:
        entry = self.executions.get(execution_id)
        run: _Run = entry.handle
        paths: dict[Stream, Path] = {"stdout": run.stdout, "stderr": run.stderr}
        async for chunk in follow_logs(paths, entry.done, tail=tail, follow=follow):
            yield chunk

    async def remove(self, execution_id: str) -> None:
        """Forget the execution and delete its directory (cancelling it first if it runs)."""
        await self.cancel(execution_id)
        entry = self.executions.remove(execution_id)
        run: _Run = entry.handle
        await trio.to_thread.run_sync(remove_trees, [run.directory], limiter=self._io_limiter)

    async def cleanup(self) -> None:
        """Stop every execution, then delete every directory this executor ever made here
        (including a previous run's) and the fetched-module cache."""
        await self._stop_all(StopReason.CANCEL)
        self.executions.clear()
        if self._compiled is not None:
            self._compiled.clear()

        def remove_all() -> None:
            remove_trees(owned_dirs(self.executions_dir, self.name, self.executor_id))
            remove_trees([self.module_cache_dir])

        await trio.to_thread.run_sync(remove_all, limiter=self._io_limiter)

    async def recover(self) -> list[ExecutionInfo]:
        """Nothing to adopt: a module ran inside the previous DMS process and died with it.

        Its directory (logs, sandbox) stays until :meth:`cleanup`, for post-mortems.
        """
        return []
