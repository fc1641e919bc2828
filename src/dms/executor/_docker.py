"""The ``docker`` executor: allocations as containers on a local Docker engine (spec §10).

How it differs from Go's, and why:

* **Completion from events, not one waiting thread per container.** A single thread follows
  the engine's event stream filtered by ``label=nunet-executor=<id>`` (``die`` and ``oom``),
  subscribed before the first container starts (and re-subscribed with ``since`` if the engine
  restarts), so a node running a thousand containers uses one thread to watch them. On ``die``
  the container is inspected once for its exit code and ``State.OOMKilled`` and its output is
  collected (the last ``log_limit`` bytes of each stream) into the :class:`ExecutionResult`.
* **TTY off.** Go starts containers with a TTY, which merges stderr into stdout; we keep the
  streams apart in results and in :meth:`logs`.
* **Limits are enforced, not just declared.** CPU: ``NanoCPUs = cores × 1e9`` (Go's
  ``CPUCount`` too, which Linux engines ignore). Memory: ``resources.ram.size`` with memory+swap
  equal, so a container cannot escape its limit into swap; the kernel OOM kill is reported as
  ``Termination.OOM_KILLED``. Disk: ``storage_opt size`` where the storage driver can enforce it
  (overlay2 on xfs with ``pquota``, btrfs, zfs, devicemapper); elsewhere (overlay2 on ext4) a
  watchdog polls the containers' writable-layer size (``SizeRw``) every ``disk_check_interval``
  seconds and kills one that grew past its limit (``Termination.DISK_LIMIT``), so enforcement
  there is approximate (a fast writer can overshoot by what it writes in one interval).
* **Provision scripts** live under ``<work_dir>/executions/<execution_id>/init`` (not
  ``/tmp/nunet``), mounted read-only at ``/nunet/init``; the program is started with ``exec``
  after them so it receives signals itself.
* **Every engine call is bounded**: worker threads from the executor's own limiters, a trio
  deadline per call (see :mod:`._docker_engine`). A hung engine gives errors, never a hung DMS.

Containers outlive the DMS: leaving :meth:`Executor.open` stops watching, not the containers;
:meth:`DockerExecutor.recover` adopts them again from their labels.

Tunables (``ExecutorSettings.extra``): ``docker_timeout`` (s per engine call, 30),
``docker_threads`` (concurrent engine calls, 8), ``stop_grace`` (s between SIGTERM and SIGKILL
on cancel, 5), ``pull_timeout`` (s, 600), ``exec_timeout`` (s, 60), ``disk_check_interval``
(s, 5), ``log_limit`` (bytes kept per stream in a result, 1 MiB), ``sweep_interval`` (s between
checks for deaths the event stream missed, 60).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import trio
from docker.types import CancellableStream

from dms.executor._base import Executor, ExecutorSettings, TrackedExecution
from dms.executor._docker_engine import (
    Engine,
    EngineError,
    connect,
    engine_url,
    one_line,
    open_logs,
    pull_image,
    read_logs,
)
from dms.executor._docker_files import (
    remove_execution_dir,
    remove_owned_dirs,
    write_provision_scripts,
)
from dms.executor._docker_spec import (
    LABEL_DISK_LIMIT,
    LABEL_EXECUTOR,
    NAME,
    DockerParams,
    check_resources,
    container_plan,
    parse_params,
    request_from_labels,
    result_from_state,
)
from dms.executor._errors import (
    ExecutionExists,
    ExecutionNotFound,
    ExecutorError,
    ImageUnavailable,
    InvalidSpec,
)
from dms.executor._files import execution_dir
from dms.executor._types import (
    ExecResult,
    ExecutionInfo,
    ExecutionRequest,
    ExecutionResult,
    ExecutionStatus,
    LogChunk,
    SpecConfig,
    Termination,
)
from dms.resources import format_size

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 5.0
#: Lines of log read back when an execution ends (the result keeps the last ``log_limit`` bytes).
RESULT_LOG_LINES = 20_000
#: Storage drivers that can enforce ``storage_opt size`` (overlay2 only on xfs with pquota).
_QUOTA_DRIVERS = {"btrfs", "zfs", "devicemapper", "windowsfilter"}


@dataclass
class _Container:
    """What the executor keeps about one execution's container (``TrackedExecution.handle``)."""

    id: str = ""
    name: str = ""
    disk_limit: int = 0  # watched by us (0: none, or the driver enforces it)
    memory_limit: int = 0
    oom_seen: bool = False
    disk_exceeded: str = ""
    finalizing: bool = False
    made_dir: bool = False  # this start wrote the execution's files
    paused: bool = False  # as of the last inspect that found it running (read by recover)


class DockerExecutor(Executor):
    """Runs executions as containers; see the module docstring."""

    name = NAME

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        extra = self.settings.extra
        self._timeout = float(extra.get("docker_timeout", 30.0))
        self._threads = int(extra.get("docker_threads", 8))
        self._grace = float(extra.get("stop_grace", 5.0))
        self._pull_timeout = float(extra.get("pull_timeout", 600.0))
        self._exec_timeout = float(extra.get("exec_timeout", 60.0))
        self._disk_interval = float(extra.get("disk_check_interval", 5.0))
        self._log_limit = int(extra.get("log_limit", 1 << 20))
        self._sweep_interval = float(extra.get("sweep_interval", 60.0))
        self._engine_: Engine | None = None
        self._by_container: dict[str, str] = {}  # container ID -> execution ID
        self._disk_quota: bool | None = None  # can the storage driver enforce disk limits?
        self._disk_note = ""
        self._disk_logged = False
        self._closing = False
        self._events_limiter = trio.CapacityLimiter(1)  # the one event-stream thread

    # -- engine ------------------------------------------------------------------------------

    @classmethod
    def probe(cls) -> str | None:
        try:
            client = connect(PROBE_TIMEOUT)
        except ExecutorError as exc:
            return str(exc)
        try:
            client.ping()
        except Exception as exc:
            return f"docker: no engine at {engine_url()}: {one_line(exc)}"
        finally:
            client.close()
        return None

    @property
    def _engine(self) -> Engine:
        if self._engine_ is None:
            raise RuntimeError("docker executor used outside 'async with executor.open()'")
        return self._engine_

    async def _list_containers(
        self,
        what: str = "list containers",
        *,
        stopped_too: bool = True,
        size: bool = False,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """This executor's containers (labelled with its ID), narrowed by extra ``filters``."""
        engine = self._engine
        query = {"label": f"{LABEL_EXECUTOR}={self.executor_id}", **filters}
        rows: list[dict[str, Any]] = await engine.call(
            what, lambda: engine.api.containers(all=stopped_too, filters=query, size=size)
        )
        return rows

    async def _setup(self) -> None:
        self._closing = False
        self._engine_ = await Engine.open(timeout=self._timeout, max_calls=self._threads)
        info = await self._engine.call("info", self._engine.api.info)
        self._detect_disk_quota(info)
        await self.nursery.start(self._follow_events)
        self.nursery.start_soon(self._sweep)
        if not self._disk_quota:
            self.nursery.start_soon(self._watch_disk)

    async def _teardown(self) -> None:
        self._closing = True
        if self._engine_ is not None:
            self._engine_.close()
            self._engine_ = None

    def _detect_disk_quota(self, info: dict[str, Any]) -> None:
        driver = str(info.get("Driver") or "")
        status = dict(info.get("DriverStatus") or [])
        backing = str(status.get("Backing Filesystem") or "")
        self._disk_quota = driver in _QUOTA_DRIVERS or (driver == "overlay2" and backing == "xfs")
        self._disk_note = f"{driver} on {backing}" if backing else driver

    # -- specs -------------------------------------------------------------------------------

    def validate(self, spec: SpecConfig) -> None:
        parse_params(spec, allow_privileged=self.settings.allow_privileged)

    # -- start -------------------------------------------------------------------------------

    async def start(self, request: ExecutionRequest) -> None:
        params = parse_params(request.spec, allow_privileged=self.settings.allow_privileged)
        check_resources(request.resources)
        entry = self.executions.add(request)
        entry.handle = _Container(memory_limit=request.resources.ram.size)
        try:
            await self._create_and_start(entry, params)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._discard(entry)
            raise

    async def _create_and_start(self, entry: TrackedExecution, params: DockerParams) -> None:
        request = entry.request
        image = await self._ensure_image(params.image)
        init_dir = None
        if request.provision_scripts:
            entry.handle.made_dir = True
            init_dir = str(
                await trio.to_thread.run_sync(
                    write_provision_scripts,
                    self.settings.work_dir,
                    self.executor_id,
                    request.execution_id,
                    request.provision_scripts,
                )
            )
        image_config = image.get("Config") or {}
        quota = bool(self._disk_quota)
        try:
            container_id = await self._create(entry, params, image_config, init_dir, quota)
        except EngineError as exc:
            if not (quota and request.resources.disk.size and "storage" in str(exc).lower()):
                raise
            # The driver cannot do quotas after all (e.g. xfs mounted without pquota).
            self._disk_quota = False
            self._disk_note += f" ({exc})"
            self.nursery.start_soon(self._watch_disk)
            container_id = await self._create(entry, params, image_config, init_dir, False)
        handle: _Container = entry.handle
        handle.id = container_id
        self._by_container[container_id] = request.execution_id
        engine = self._engine
        await engine.call("start container", lambda: engine.api.start(container_id))
        if entry.cancel_requested:  # cancelled while starting
            await self._kill(container_id, "SIGKILL")
        elif entry.result is None:
            entry.status = ExecutionStatus.RUNNING

    async def _create(
        self,
        entry: TrackedExecution,
        params: DockerParams,
        image_config: dict[str, Any],
        init_dir: str | None,
        quota: bool,
    ) -> str:
        """Create the container (not started); returns its ID."""
        handle: _Container = entry.handle
        watch = bool(entry.request.resources.disk.size) and not quota
        plan = container_plan(
            self.executor_id,
            entry.request,
            params,
            image_config=image_config,
            init_dir=init_dir,
            disk_quota=quota,
            disk_watch=watch,
        )
        if watch:
            handle.disk_limit = entry.request.resources.disk.size
            self._note_disk_watch()
        handle.name = plan.name
        api = self._engine.api

        def create() -> str:
            host_config = api.create_host_config(**plan.host_config)
            return str(api.create_container(**plan.container, host_config=host_config)["Id"])

        try:
            return await self._engine.call("create container", create)
        except EngineError as exc:
            if exc.status == 409:
                handle.made_dir = False  # the files belong to the container already there
                raise ExecutionExists(
                    f"a container named {plan.name!r} already exists "
                    "(left by an earlier run: recover or clean up first)"
                ) from exc
            raise
        except docker.errors.NotFound as exc:
            raise ImageUnavailable(f"image {params.image!r} vanished: {one_line(exc)}") from exc

    def _note_disk_watch(self) -> None:
        if not self._disk_logged:
            self._disk_logged = True
            log.warning(
                "docker: the storage driver (%s) cannot enforce disk limits; "
                "checking container sizes every %g s instead",
                self._disk_note,
                self._disk_interval,
            )

    async def _ensure_image(self, image: str) -> dict[str, Any]:
        """The image's inspect data, pulling it first when it is not on this machine."""
        api = self._engine.api
        try:
            found: dict[str, Any] = await self._engine.call(
                "inspect image", lambda: _inspect_image(api, image)
            )
            return found
        except docker.errors.NotFound:
            pass
        except EngineError as exc:
            if exc.status == 400:  # "invalid reference format"
                reason = str(exc).removeprefix("docker: inspect image: ")
                raise InvalidSpec(f"docker execution: bad image name {image!r}: {reason}") from exc
            raise
        log.info("docker: image %s is not on this machine; pulling it", image)
        deadline = time.monotonic() + self._pull_timeout
        try:
            await self._engine.call(
                f"pull {image}",
                lambda: pull_image(api, image, deadline=deadline),
                timeout=self._pull_timeout,
            )
            pulled: dict[str, Any] = await self._engine.call(
                "inspect image", lambda: _inspect_image(api, image)
            )
            return pulled
        except (EngineError, docker.errors.NotFound) as exc:
            reason = str(exc).removeprefix(f"docker: pull {image}: ")
            if isinstance(exc, docker.errors.NotFound):
                reason = one_line(exc)
            raise ImageUnavailable(
                f"image {image!r} is not on this machine and could not be pulled: {reason}"
            ) from exc

    async def _discard(self, entry: TrackedExecution) -> None:
        """Undo a failed start: the container, the files, the table entry."""
        handle: _Container = entry.handle
        if handle.id and self._engine_ is not None:
            with contextlib.suppress(ExecutorError, docker.errors.NotFound):
                await self._engine.call(
                    "remove container",
                    lambda: self._engine.api.remove_container(handle.id, force=True, v=True),
                )
            self._by_container.pop(handle.id, None)
        if handle.made_dir:
            await trio.to_thread.run_sync(
                remove_execution_dir, self.settings.work_dir, entry.request.execution_id
            )
        with contextlib.suppress(ExecutionNotFound):
            self.executions.remove(entry.request.execution_id)

    # -- completion --------------------------------------------------------------------------

    async def _follow_events(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Complete executions from the engine's ``die``/``oom`` events (one thread in all)."""
        since: int | None = None
        started = False
        filters = {
            "type": "container",
            "label": f"{LABEL_EXECUTOR}={self.executor_id}",
            "event": ["die", "oom"],
        }
        while not self._closing:
            engine = self._engine
            try:
                async with engine.stream(
                    self.nursery,
                    "events",
                    functools.partial(_open_events, engine.api, since, filters),
                    buffer=float("inf"),
                    limiter=self._events_limiter,
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
            entry = self.executions.get(execution_id)
        except ExecutionNotFound:
            return
        action = str(event.get("Action") or event.get("status") or "")
        if action == "oom":
            entry.handle.oom_seen = True
        elif action == "die" and entry.result is None:
            self.nursery.start_soon(self._finalize_safely, entry)

    async def _finalize_safely(self, entry: TrackedExecution) -> None:
        """``_finalize`` for background tasks: a bug there must not take the executor down."""
        try:
            await self._finalize(entry)
        except ExecutorError as exc:
            log.warning("docker: %s: %s", entry.request.execution_id, exc)
        except Exception:
            log.exception("docker: cannot record the end of %s", entry.request.execution_id)
            with contextlib.suppress(ExecutionNotFound):
                self.executions.finish(
                    entry.request.execution_id, ExecutionResult.failure("internal error")
                )

    async def _sweep(self) -> None:
        """Every ``sweep_interval`` s, finish executions whose ``die`` event went missing.

        One list call for all containers of this executor; the event stream stays the fast path.
        """
        while not self._closing:
            await trio.sleep(self._sweep_interval)
            try:
                rows = await self._list_containers(status=["exited", "dead"])
            except ExecutorError as exc:
                log.warning("docker: sweep failed: %s", exc)
                continue
            for row in rows:
                execution_id = self._by_container.get(str(row["Id"]))
                if execution_id is None:
                    continue
                with contextlib.suppress(ExecutionNotFound):
                    entry = self.executions.get(execution_id)
                    if entry.result is None:
                        log.warning("docker: %s ended without an event", execution_id)
                        await self._finalize_safely(entry)

    async def _reconcile(self) -> None:
        """After the event stream came back: finish what died while it was away."""
        for entry in self.executions.all():
            if entry.result is None and entry.handle is not None and entry.handle.id:
                await self._finalize_safely(entry)

    async def _finalize(self, entry: TrackedExecution) -> None:
        """Record the result of a container that stopped (no-op while it still runs)."""
        handle: _Container = entry.handle
        if entry.result is not None or handle.finalizing:
            return
        handle.finalizing = True
        execution_id = entry.request.execution_id
        try:
            result = await self._result_of(entry)
            if result is not None:
                self.executions.finish(execution_id, result)
        except ExecutionNotFound:
            pass  # removed meanwhile
        finally:
            handle.finalizing = False

    async def _result_of(self, entry: TrackedExecution) -> ExecutionResult | None:
        handle: _Container = entry.handle
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

    # -- disk watchdog -----------------------------------------------------------------------

    async def _watch_disk(self) -> None:
        """Kill containers whose writable layer outgrew their disk limit (no driver quota)."""
        while not self._closing:
            await trio.sleep(self._disk_interval)
            watched = [
                e
                for e in self.executions.all()
                if e.result is None and e.handle is not None and e.handle.disk_limit and e.handle.id
            ]
            if not watched:
                continue
            try:
                rows = await self._list_containers("container sizes", stopped_too=False, size=True)
            except ExecutorError as exc:
                log.warning("docker: disk check failed: %s", exc)
                continue
            sizes = {row["Id"]: int(row.get("SizeRw") or 0) for row in rows}
            for entry in watched:
                handle: _Container = entry.handle
                size = sizes.get(handle.id, 0)
                if size > handle.disk_limit and not handle.disk_exceeded:
                    handle.disk_exceeded = (
                        f"killed: wrote {format_size(size)} to its filesystem, over its disk "
                        f"limit of {format_size(handle.disk_limit)}"
                    )
                    log.warning("docker: %s %s", entry.request.execution_id, handle.disk_exceeded)
                    await self._kill(handle.id, "SIGKILL")

    # -- control -----------------------------------------------------------------------------

    async def _kill(self, container_id: str, signal: str) -> bool:
        """Send ``signal``; False when the container was not running any more."""
        try:
            await self._engine.call(
                "kill container", lambda: self._engine.api.kill(container_id, signal=signal)
            )
        except docker.errors.NotFound:
            return False
        except EngineError as exc:
            if exc.status == 409:  # not running
                return False
            raise
        return True

    async def cancel(self, execution_id: str) -> None:
        entry = self.executions.get(execution_id)
        if entry.result is not None:
            return
        handle: _Container = entry.handle
        if not handle.id:  # still starting
            entry.cancel_requested = True
            return
        if entry.status is ExecutionStatus.PAUSED:
            await self.resume(execution_id)
        entry.cancel_requested = True
        if await self._kill(handle.id, "SIGTERM"):
            with trio.move_on_after(self._grace):
                await entry.done.wait()
            if entry.result is None:
                await self._kill(handle.id, "SIGKILL")
        else:
            entry.cancel_requested = False  # it ended by itself
        with trio.move_on_after(self._timeout):
            while entry.result is None:
                await self._finalize(entry)  # in case the die event is late or lost
                if entry.result is None:
                    with trio.move_on_after(0.5):
                        await entry.done.wait()
        if entry.result is None:
            self.executions.finish(
                execution_id,
                ExecutionResult.failure("the container did not stop", Termination.CANCELLED),
            )

    async def pause(self, execution_id: str) -> None:
        entry = self._running(execution_id)
        await self._engine.call("pause", lambda: self._engine.api.pause(entry.handle.id))
        if entry.result is None:
            entry.status = ExecutionStatus.PAUSED

    async def resume(self, execution_id: str) -> None:
        entry = self._running(execution_id)
        await self._engine.call("unpause", lambda: self._engine.api.unpause(entry.handle.id))
        if entry.result is None:
            entry.status = ExecutionStatus.RUNNING

    def _running(self, execution_id: str) -> TrackedExecution:
        entry = self.executions.get(execution_id)
        if entry.result is not None or not entry.handle.id:
            raise ExecutorError(f"execution {execution_id!r} is not running")
        return entry

    async def exec(self, execution_id: str, command: Sequence[str]) -> ExecResult:
        entry = self._running(execution_id)
        api = self._engine.api
        container_id = entry.handle.id
        argv = list(command)

        def run() -> ExecResult:
            exec_id = api.exec_create(container_id, argv, stdout=True, stderr=True)["Id"]
            output = api.exec_start(exec_id)
            code = api.exec_inspect(exec_id).get("ExitCode")
            text = output.decode(errors="replace") if isinstance(output, bytes) else ""
            return ExecResult(exit_code=-1 if code is None else int(code), output=text)

        return await self._engine.call("exec", run, timeout=self._exec_timeout)

    # -- output ------------------------------------------------------------------------------

    async def logs(
        self, execution_id: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[LogChunk]:
        entry = self.executions.get(execution_id)
        container_id = entry.handle.id
        if not container_id:
            return
        engine = self._engine
        follow = follow and entry.result is None
        try:
            async with engine.stream(
                self.nursery,
                "logs",
                lambda: open_logs(
                    engine.api, container_id, tail=tail, follow=follow, timeout=self._timeout
                ),
            ) as chunks:
                async for stream, data in chunks:
                    yield LogChunk(stream, data)  # type: ignore[arg-type]
        except docker.errors.NotFound:
            raise ExecutionNotFound(f"the container of {execution_id!r} is gone") from None

    # -- bookkeeping -------------------------------------------------------------------------

    async def list_executions(self) -> list[ExecutionInfo]:
        return [self._info(entry) for entry in self.executions.all()]

    def _info(self, entry: TrackedExecution) -> ExecutionInfo:
        return entry.info(self.name, detail=entry.handle.id[:12] if entry.handle else "")

    async def remove(self, execution_id: str) -> None:
        entry = self.executions.get(execution_id)
        if entry.result is None:
            await self.cancel(execution_id)
        handle: _Container = entry.handle
        if handle.id:
            with contextlib.suppress(docker.errors.NotFound):
                await self._engine.call(
                    "remove container",
                    lambda: self._engine.api.remove_container(handle.id, force=True, v=True),
                )
            self._by_container.pop(handle.id, None)
        await trio.to_thread.run_sync(remove_execution_dir, self.settings.work_dir, execution_id)
        self.executions.remove(execution_id)

    async def cleanup(self) -> None:
        """Remove every container labelled with this executor's ID, and their files."""
        engine = self._engine
        for entry in self.executions.all():
            if entry.result is None:
                entry.cancel_requested = True
                self.executions.finish(
                    entry.request.execution_id,
                    ExecutionResult(
                        -1, error="removed by cleanup", termination=Termination.CANCELLED
                    ),
                )
        rows = await self._list_containers()

        async def remove(container_id: str) -> None:
            with contextlib.suppress(docker.errors.NotFound):
                await engine.call(
                    "remove container",
                    lambda: engine.api.remove_container(container_id, force=True, v=True),
                )

        async with trio.open_nursery() as nursery:
            for row in rows:
                nursery.start_soon(remove, row["Id"])
        self._by_container.clear()
        self.executions.clear()
        await trio.to_thread.run_sync(remove_owned_dirs, self.settings.work_dir, self.executor_id)

    async def recover(self) -> list[ExecutionInfo]:
        """Adopt the containers a previous run of this executor left (see the base class)."""
        engine = self._engine
        rows = await self._list_containers()
        adopted: list[TrackedExecution] = []
        for row in rows:
            container_id = str(row["Id"])
            if container_id in self._by_container:
                continue
            labels = row.get("Labels") or {}
            try:
                attrs = await engine.call(
                    "inspect container",
                    functools.partial(engine.api.inspect_container, container_id),
                )
            except docker.errors.NotFound:
                continue
            request = request_from_labels(self.executor_id, labels, attrs)
            try:
                entry = self.executions.add(request)
            except ExecutionExists:
                log.warning("docker: two containers claim execution %s", request.execution_id)
                continue
            entry.handle = _Container(
                id=container_id,
                name=str(attrs.get("Name") or "").lstrip("/"),
                disk_limit=request.resources.disk.size if LABEL_DISK_LIMIT in labels else 0,
                memory_limit=request.resources.ram.size,
                paused=bool((attrs.get("State") or {}).get("Paused")),
            )
            self._by_container[container_id] = request.execution_id
            adopted.append(entry)
        # Added to the table first, inspected again now: a container that dies from here on
        # is finished by its event, one that died before by this check (whose inspect also
        # refreshed ``paused``).
        for entry in adopted:
            await self._finalize(entry)
            if entry.result is None:
                paused = entry.handle.paused
                entry.status = ExecutionStatus.PAUSED if paused else ExecutionStatus.RUNNING
        if adopted:
            log.info("docker: recovered %d execution(s)", len(adopted))
        return [self._info(entry) for entry in adopted]

    def execution_dir(self, execution_id: str) -> Path:
        """Where the files of ``execution_id`` live on the host."""
        return execution_dir(self.settings.work_dir, execution_id)


def _inspect_image(api: docker.APIClient, image: str) -> dict[str, Any]:
    found: dict[str, Any] = api.inspect_image(image)  # type: ignore[no-untyped-call]
    return found


def _open_events(
    api: docker.APIClient, since: int | None, filters: dict[str, Any]
) -> CancellableStream[dict[str, Any]]:
    return api.events(since=since, filters=filters, decode=True)
