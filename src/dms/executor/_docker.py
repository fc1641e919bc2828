"""The ``docker`` executor: allocations as containers on a local Docker engine (spec §10).

How it differs from Go's, and why:

* **Completion from events, not one waiting thread per container**: one thread follows the
  engine's event stream for all of this executor's containers, with a periodic sweep for
  events that went missing (:mod:`._docker_watch`).
* **TTY off.** Go starts containers with a TTY, which merges stderr into stdout; we keep the
  streams apart in results and in :meth:`logs`.
* **Limits are enforced, not just declared.** CPU: ``NanoCPUs = cores × 1e9`` (Go's
  ``CPUCount`` too, which Linux engines ignore). Memory: ``resources.ram.size`` with memory+swap
  equal, so a container cannot escape its limit into swap; the kernel OOM kill is reported as
  ``Termination.OOM_KILLED``. Disk: ``storage_opt size`` where the storage driver can enforce it,
  elsewhere a watchdog that kills a container whose writable layer outgrew its limit
  (``Termination.DISK_LIMIT``; :mod:`._docker_disk`).
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
from pathlib import Path
from typing import Any

import docker
import docker.errors
import trio

from dms.errors import DMSError
from dms.executor._base import Executor, ExecutorSettings, TrackedExecution
from dms.executor._docker_disk import DiskLimits
from dms.executor._docker_engine import (
    Engine,
    EngineError,
    connect,
    engine_url,
    one_line,
    open_logs,
    pull_image,
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
)
from dms.executor._docker_watch import CompletionWatcher, Container
from dms.executor._errors import (
    ExecutionExists,
    ExecutionNotFound,
    ExecutorError,
    ImageUnavailable,
    InvalidSpec,
)
from dms.executor._execution_dirs import execution_dir
from dms.executor._types import (
    ExecResult,
    ExecutionInfo,
    ExecutionRequest,
    ExecutionResult,
    ExecutionStatus,
    LogChunk,
    NetworkAttachment,
    SpecConfig,
    Termination,
)

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 5.0


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
        self._engine_: Engine | None = None
        self._label = f"{LABEL_EXECUTOR}={self.executor_id}"
        self._watch = CompletionWatcher(
            self.executions,
            self._label,
            timeout=self._timeout,
            log_limit=int(extra.get("log_limit", 1 << 20)),
            sweep_interval=float(extra.get("sweep_interval", 60.0)),
        )
        self._disk = DiskLimits(
            self.executions,
            self._label,
            interval=float(extra.get("disk_check_interval", 5.0)),
        )

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

    async def _setup(self) -> None:
        self._engine_ = engine = await Engine.open(timeout=self._timeout, max_calls=self._threads)
        self._disk.detect(await engine.call("info", engine.api.info))
        await self._watch.start(engine, self.nursery)
        self._disk.start(engine, self.nursery)

    async def _teardown(self) -> None:
        self._watch.stop()
        self._disk.stop()
        if self._engine_ is not None:
            self._engine_.close()
            self._engine_ = None

    # -- specs -------------------------------------------------------------------------------

    def validate(self, spec: SpecConfig) -> None:
        parse_params(spec, allow_privileged=self.settings.allow_privileged)

    # -- start -------------------------------------------------------------------------------

    async def start(self, request: ExecutionRequest) -> None:
        params = parse_params(request.spec, allow_privileged=self.settings.allow_privileged)
        check_resources(request.resources)
        entry = self.executions.add(request)
        entry.handle = Container(memory_limit=request.resources.ram.size)
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
        quota = bool(self._disk.quota)
        try:
            container_id = await self._create(entry, params, image_config, init_dir, quota)
        except EngineError as exc:
            if not (quota and request.resources.disk.size and "storage" in str(exc).lower()):
                raise
            self._disk.quota_refused(str(exc))
            container_id = await self._create(entry, params, image_config, init_dir, False)
        handle: Container = entry.handle
        handle.id = container_id
        self._watch.track(container_id, request.execution_id)
        engine = self._engine
        await engine.call("start container", lambda: engine.api.start(container_id))
        if request.network is not None and not entry.cancel_requested:
            await self._attach_network(container_id, request.network)
        if entry.cancel_requested:  # cancelled while starting
            await engine.kill(container_id, "SIGKILL")
        elif entry.result is None:
            entry.status = ExecutionStatus.RUNNING

    async def reattach_network(self, execution_id: str, network: NetworkAttachment) -> bool:
        """A new interface in the running container's namespace (``/proc/<pid>/ns/net``)."""
        try:
            entry = self._running(execution_id)
        except (ExecutorError, ExecutionNotFound):
            return False
        api = self._engine.api
        container_id = entry.handle.id
        state = await self._engine.call(
            "inspect container", lambda: api.inspect_container(container_id)["State"]
        )
        pid = int(state.get("Pid") or 0)
        if not state.get("Running") or pid <= 0:
            return False
        await network.attach(f"/proc/{pid}/ns/net")
        return True

    async def _attach_network(self, container_id: str, network: NetworkAttachment) -> None:
        """Put the subnet interface into the started container's network namespace.

        The container's command waits for it (:func:`network_wait`); a failure here stops the
        container and fails the start with the reason.
        """
        api = self._engine.api
        state = await self._engine.call(
            "inspect container", lambda: api.inspect_container(container_id)["State"]
        )
        pid = int(state.get("Pid") or 0)
        if pid <= 0:
            raise ExecutorError(
                f"container exited before its subnet interface could be attached: {state}"
            )
        try:
            await network.attach(f"/proc/{pid}/ns/net")
        except DMSError as exc:
            raise ExecutorError(f"subnet: {exc}") from exc
        except OSError as exc:
            raise ExecutorError(f"subnet: {exc}") from exc

    async def _create(
        self,
        entry: TrackedExecution,
        params: DockerParams,
        image_config: dict[str, Any],
        init_dir: str | None,
        quota: bool,
    ) -> str:
        """Create the container (not started); returns its ID."""
        handle: Container = entry.handle
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
            self._disk.watch(handle, entry.request.resources.disk.size)
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
        handle: Container = entry.handle
        if handle.id and self._engine_ is not None:
            with contextlib.suppress(ExecutorError, docker.errors.NotFound):
                await self._engine.call(
                    "remove container",
                    lambda: self._engine.api.remove_container(handle.id, force=True, v=True),
                )
            self._watch.forget(handle.id)
        if handle.made_dir:
            await trio.to_thread.run_sync(
                remove_execution_dir, self.settings.work_dir, entry.request.execution_id
            )
        with contextlib.suppress(ExecutionNotFound):
            self.executions.remove(entry.request.execution_id)

    # -- control -----------------------------------------------------------------------------

    async def cancel(self, execution_id: str) -> None:
        entry = self.executions.get(execution_id)
        if entry.result is not None:
            return
        handle: Container = entry.handle
        if not handle.id:  # still starting
            entry.cancel_requested = True
            return
        if entry.status is ExecutionStatus.PAUSED:
            await self.resume(execution_id)
        entry.cancel_requested = True
        if await self._engine.kill(handle.id, "SIGTERM"):
            with trio.move_on_after(self._grace):
                await entry.done.wait()
            if entry.result is None:
                await self._engine.kill(handle.id, "SIGKILL")
        else:
            entry.cancel_requested = False  # it ended by itself
        with trio.move_on_after(self._timeout):
            while entry.result is None:
                await self._watch.finalize(entry)  # in case the die event is late or lost
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
        handle: Container = entry.handle
        if handle.id:
            with contextlib.suppress(docker.errors.NotFound):
                await self._engine.call(
                    "remove container",
                    lambda: self._engine.api.remove_container(handle.id, force=True, v=True),
                )
            self._watch.forget(handle.id)
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
        rows = await engine.containers(self._label)

        async def remove(container_id: str) -> None:
            with contextlib.suppress(docker.errors.NotFound):
                await engine.call(
                    "remove container",
                    lambda: engine.api.remove_container(container_id, force=True, v=True),
                )

        async with trio.open_nursery() as nursery:
            for row in rows:
                nursery.start_soon(remove, row["Id"])
        self._watch.forget_all()
        self.executions.clear()
        await trio.to_thread.run_sync(remove_owned_dirs, self.settings.work_dir, self.executor_id)

    async def recover(self) -> list[ExecutionInfo]:
        """Adopt the containers a previous run of this executor left (see the base class)."""
        engine = self._engine
        rows = await engine.containers(self._label)
        adopted: list[TrackedExecution] = []
        for row in rows:
            container_id = str(row["Id"])
            if container_id in self._watch:
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
            entry.handle = Container(
                id=container_id,
                name=str(attrs.get("Name") or "").lstrip("/"),
                disk_limit=request.resources.disk.size if LABEL_DISK_LIMIT in labels else 0,
                memory_limit=request.resources.ram.size,
                paused=bool((attrs.get("State") or {}).get("Paused")),
            )
            self._watch.track(container_id, request.execution_id)
            adopted.append(entry)
        # Added to the table first, inspected again now: a container that dies from here on
        # is finished by its event, one that died before by this check (whose inspect also
        # refreshed ``paused``).
        for entry in adopted:
            await self._watch.finalize(entry)
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
