"""The ``vm`` executor: each execution in its own QEMU ``microvm`` (KVM where it works, TCG
emulation where the node allows it), and ``firecracker``, the same back-end under Go's name so
Go ensembles run as written.

The VMM enforces the allocation's resources: ``-smp`` = the requested cores rounded up (at least
one), ``-m`` = the requested RAM (at least :attr:`VmExecutor.min_memory_mib`, what the default
guest needs to boot; 256 MiB when the request names none). Devices are virtio only (serial port,
block, and a network card on the ensemble's subnet). Provision scripts run in the guest before
the command.

Subnet: with ``request.network`` the VM gets a virtio-net card whose Ethernet frames the DMS's
subnet router carries (``NetworkAttachment.attach_frames``, bound in the execution directory
before QEMU starts; see :mod:`dms.subnet._frames`), and the guest's init gives ``eth0`` the
allocation's address, routes the subnet through it and uses the gateway's resolver
(``<name>.internal``). Needs no TAP device and no ``CAP_NET_ADMIN``. Without ``network`` the
VM has no card at all, as before. Published ports are refused: nothing on the host forwards to
a VM's address yet (a provider reaches it only through the subnet).

Params: see :mod:`dms.executor._vm_spec`; the guest, the workload archive and its init:
:mod:`dms.executor._vm_guest`; QEMU's command line: ``_vm_qemu``.

Control goes through QMP (``cont`` after start, ``query-status``, ``stop``/``cont`` for
pause/resume, ``quit`` to cancel and on timeouts); SIGKILL, through a pidfd, only when QMP does
not answer within :attr:`VmExecutor.quit_grace`, and for leftovers :meth:`cleanup` finds by
pidfile. The end is QEMU's exit plus its ``SHUTDOWN`` event, never the console. The
serial console is the allocation's log (``console.log``; tail/follow like the others; stdout and
stderr are one stream there, reported as ``stdout``); the exit code comes over virtio-serial.

Layout: ``<work_dir>/executions/<execution_id>/`` with the marker naming this executor
(``vm`` or ``firecracker``) and its ID, ``initrd``, ``console.log``, ``exit``, ``qemu.log``,
``qmp.sock``, ``qemu.pid``. VMs outlive the DMS like containers do: leaving ``open()`` stops
watching, not the VMs; :meth:`recover` finds them by marker and pidfile after a restart (a
SIGKILLed DMS included) and adopts them, so ``reclaim_leftovers`` can keep or remove them, and
:meth:`cleanup` kills every QEMU of this executor ID.

Node settings (``settings.extra``): ``vm_guest_dir`` (the default guest, see ``_vm_guest``),
``vm_allow_emulation`` (run under TCG when KVM does not work; default on), ``vm_allow_host_paths``
(images named by host path; default: ``wasm_allow_host_paths``, which ``nunet executor run``
sets), ``vm_fetch_private_addresses`` (default: ``wasm_fetch_private_addresses``),
``vm_max_image_bytes`` (512 MiB; a fetched image is held in memory once), ``vm_fetch_timeout``
(120 s), ``vm_min_memory_mib`` (80), ``vm_start_timeout`` (seconds for QEMU's monitor to
answer, 10).

Not enforced: ``resources.disk`` (a root disk's writes go to a throw-away overlay in the
execution directory, not capped) and the QEMU process's own memory beyond the guest's RAM.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from dms.errors import DMSError
from dms.executor._base import Executor, ExecutorSettings, TrackedExecution
from dms.executor._errors import (
    ExecutionExists,
    ExecutionNotFound,
    ExecutorError,
    ExecutorUnavailable,
    InvalidSpec,
)
from dms.executor._execution_dirs import (
    MARKER,
    execution_dir,
    executions_root,
    owned_dirs,
    remove_trees,
    write_marker,
)
from dms.executor._types import (
    ExecutionInfo,
    ExecutionRequest,
    ExecutionResult,
    ExecutionStatus,
    LogChunk,
    NetworkAttachment,
    SpecConfig,
    Termination,
)
from dms.executor._vm_guest import (
    Guest,
    default_guest_dir,
    net_script,
    workload_archive,
    write_initrd,
)
from dms.executor._vm_images import image_path
from dms.executor._vm_probe import Availability, availability
from dms.executor._vm_qemu import (
    VmConfig,
    VmFiles,
    VmNet,
    kill,
    owned_pid,
    qemu_argv,
    qemu_binary,
    qemu_env,
    read_exit_report,
    wait_exit,
)
from dms.executor._vm_qmp import Qmp, QmpError, connect, listen_socket
from dms.executor._vm_result import StopReason, VmEnd, result_of
from dms.executor._vm_spec import VmSpec, parse_spec
from dms.executor._wasm_logs import Stream, follow_logs, read_tail

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

MiB = 1024 * 1024
OUTPUT_LIMIT = MiB
DEFAULT_MEMORY_MIB = 256


@dataclass(eq=False)
class _Vm:
    """The executor's handle on one VM (``TrackedExecution.handle``)."""

    files: VmFiles
    memory_mib: int
    timeout: float | None = None
    process: trio.Process | None = None  # None when adopted after a restart
    pid: int | None = None
    qmp: Qmp | None = None
    stop: StopReason | None = None
    detail: str = ""
    exited: trio.Event = field(default_factory=trio.Event)

    async def wait_process(self) -> int | None:
        if self.process is not None:
            return await self.process.wait()
        if self.pid is not None:
            await wait_exit(self.pid)
        return None

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.returncode is None
        return self.pid is not None and owned_pid(self.files) == self.pid


def _last_line(path: Path) -> str:
    lines = read_tail(path, 4096).strip().splitlines()
    return lines[-1][:200] if lines else ""


def _read_marker(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class VmExecutor(Executor):
    """QEMU micro-VMs (see the module docstring)."""

    name = "vm"

    #: Seconds a cancel waits for QEMU to quit over QMP before killing it.
    quit_grace: float = 3.0

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        extra: Mapping[str, Any] = settings.extra
        self.guest_dir = default_guest_dir(extra.get("vm_guest_dir"))
        self.allow_emulation = extra.get("vm_allow_emulation", True) is not False
        self.allow_host_paths = (
            extra.get("vm_allow_host_paths", extra.get("wasm_allow_host_paths", False)) is True
        )
        self.fetch_private = bool(
            extra.get("vm_fetch_private_addresses", extra.get("wasm_fetch_private_addresses"))
        )
        self.max_image_bytes = int(extra.get("vm_max_image_bytes", 512 * MiB))
        self.fetch_timeout = float(extra.get("vm_fetch_timeout", 120.0))
        self.min_memory_mib = int(extra.get("vm_min_memory_mib", 80))
        self.start_timeout = float(extra.get("vm_start_timeout", 10.0))
        self._io_limiter = trio.CapacityLimiter(4)
        self._starting: set[str] = set()
        self._found: Availability | None = None

    # -- availability ------------------------------------------------------------------------

    @classmethod
    def probe(cls) -> str | None:
        """Why VMs cannot run here (QEMU or the guest missing...), or ``None``; blocking: the
        first call may boot a probe VM under KVM (a few seconds at most, then cached)."""
        found = availability(default_guest_dir())
        return None if found.reason is None else found.line(cls.name)

    @classmethod
    def availability_note(cls) -> str:
        """The one-line state: ``vm: available (kvm)``, ``vm: available (emulated, slow): ...``
        or why not."""
        return availability(default_guest_dir()).line(cls.name)

    @property
    def accel(self) -> str:
        """``kvm`` or ``tcg``: what this executor boots with (known once opened)."""
        if self._found is None:
            raise ExecutorUnavailable(f"{self.name}: executor used before it was opened")
        return self._found.accel

    async def _setup(self) -> None:
        found = await trio.to_thread.run_sync(availability, self.guest_dir)
        if found.reason is not None:
            raise ExecutorUnavailable(found.line(self.name))
        if found.accel == "tcg" and not self.allow_emulation:
            raise ExecutorUnavailable(
                f"{self.name}: {found.kvm_reason}, and emulation is off (vm_allow_emulation)"
            )
        self._found = found

    # -- specs -------------------------------------------------------------------------------

    def _parse(self, spec: SpecConfig) -> VmSpec:
        if spec.type != self.name:
            raise InvalidSpec(f"{self.name} executor cannot run a {spec.type!r} execution")
        return parse_spec(spec, allow_host_paths=self.allow_host_paths)

    def validate(self, spec: SpecConfig) -> None:
        self._parse(spec)

    def _memory_mib(self, request: ExecutionRequest) -> int:
        size = request.resources.ram.size
        if size <= 0:
            return DEFAULT_MEMORY_MIB
        mib = size // MiB
        if mib < self.min_memory_mib:
            raise InvalidSpec(
                f"{self.name} execution: {size} bytes of RAM is below the "
                f"{self.min_memory_mib} MiB a guest needs to boot"
            )
        return mib

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, request: ExecutionRequest) -> None:
        nursery = self.nursery
        spec = self._parse(request.spec)
        if request.ports:
            raise InvalidSpec(
                f"{self.name} execution: a VM's ports cannot be published on the host (only "
                "its subnet address reaches it)"
            )
        if request.network is not None and request.network.attach_frames is None:
            raise InvalidSpec(f"{self.name} execution: this subnet cannot carry a VM's frames")
        if request.resources.gpus:
            raise InvalidSpec(f"{self.name} execution: GPUs cannot be passed to a VM here")
        memory_mib = self._memory_mib(request)
        vcpus = max(1, math.ceil(request.resources.cpu.cores - 1e-6))
        execution_id = request.execution_id
        if execution_id in self._starting or self._known(execution_id):
            raise ExecutionExists(f"execution {execution_id!r} already exists")
        self._starting.add(execution_id)
        try:
            config, files = await self._prepare(request, spec, vcpus, memory_mib)
            entry = self.executions.add(request)
        finally:
            self._starting.discard(execution_id)
        vm = _Vm(
            files,
            memory_mib,
            spec.timeout,
            detail=f"{config.accel}, {vcpus} vCPU, {memory_mib} MiB",
        )
        entry.handle = vm
        try:
            await nursery.start(self._watch, entry, vm, config)
        except BaseException:
            with trio.CancelScope(shield=True):
                if vm.pid is not None:
                    kill(vm.pid)
                if vm.process is not None:
                    await vm.process.wait()
                self.executions.remove(execution_id)
            raise

    def _known(self, execution_id: str) -> bool:
        try:
            self.executions.get(execution_id)
        except ExecutionNotFound:
            return False
        return True

    async def _prepare(
        self, request: ExecutionRequest, spec: VmSpec, vcpus: int, memory_mib: int
    ) -> tuple[VmConfig, VmFiles]:
        """Fetch the images and write the execution directory (marker, initrd)."""
        guest = Guest.default(self.guest_dir)
        cache = self.settings.work_dir / "vm-images"
        fetched = {}
        for ref in spec.images():
            fetched[ref.param] = await image_path(
                ref,
                cache,
                limit=self.max_image_bytes,
                fetch_timeout=self.fetch_timeout,
                limiter=self._io_limiter,
                private_ok=self.fetch_private,
            )
        kernel = fetched[spec.kernel.param] if spec.kernel else guest.kernel
        base_initrd = fetched[spec.initrd.param] if spec.initrd else guest.initrd
        rootfs = fetched[spec.rootfs.param] if spec.rootfs else None
        if spec.kernel is None or spec.initrd is None:
            missing = guest.missing()
            if missing is not None:
                raise ExecutorUnavailable(f"{self.name}: {missing}")
        files = VmFiles(execution_dir(self.settings.work_dir, request.execution_id))
        network = request.network
        marker = {
            "executor": self.name,
            "executor_id": self.executor_id,
            "execution_id": request.execution_id,
            "job_id": request.job_id,
        }

        def write() -> None:
            directory = files.directory
            if directory.exists():  # a stale run with the same ID: IDs are unique, so ours
                remove_trees([directory])
            directory.mkdir(mode=0o700, parents=True)
            write_marker(directory, **marker)
            for path in (files.console, files.exit):
                path.touch(0o600)

        # The directory first: the subnet's frame socket is bound in it, and its MTU goes to
        # the guest with the workload.
        try:
            await trio.to_thread.run_sync(write, limiter=self._io_limiter)
        except OSError as exc:
            raise ExecutorError(f"cannot prepare {files.directory}: {exc.strerror}") from None
        vm_net = None if network is None else await self._attach(network, files)
        net = None
        if network is not None and vm_net is not None:
            net = net_script(network.address, request.gateway_ip, vm_net.mtu)
        archive = workload_archive(
            spec.command, spec.env, request.provision_scripts, spec.mmds, net
        )
        try:
            await trio.to_thread.run_sync(
                write_initrd, base_initrd, archive, files.initrd, limiter=self._io_limiter
            )
        except OSError as exc:
            raise ExecutorError(f"cannot prepare {files.initrd}: {exc.strerror}") from None
        config = VmConfig(
            accel=self.accel,
            vcpus=vcpus,
            memory_mib=memory_mib,
            kernel=kernel,
            initrd=files.initrd,
            kernel_args=spec.kernel_args,
            rootfs=rootfs,
            name=f"nunet-{request.execution_id}",
            net=vm_net,
        )
        return config, files

    async def _attach(self, network: NetworkAttachment, files: VmFiles) -> VmNet:
        """Bind the subnet router's end of the VM's frame socket in the execution directory."""
        assert network.attach_frames is not None  # checked in start()
        try:
            link = await network.attach_frames(str(files.directory))
        except (DMSError, OSError) as exc:
            raise ExecutorError(f"{self.name}: subnet: {exc}") from None

        def local(path: str) -> str:  # QEMU runs in the execution directory
            where = Path(path)
            return where.name if where.parent == files.directory else path

        return VmNet(local(link.guest_socket), local(link.host_socket), link.mac, link.mtu)

    async def _launch(self, vm: _Vm, config: VmConfig) -> None:
        binary = qemu_binary()
        if binary is None:
            raise ExecutorUnavailable(f"{self.name}: QEMU is not installed")
        files = vm.files
        sock = listen_socket(files.qmp)
        try:
            with open(files.qemu_log, "wb") as log:
                vm.process = await trio.lowlevel.open_process(
                    qemu_argv(binary, config, files, sock.fileno()),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(sock.fileno(),),
                    start_new_session=True,  # a Ctrl-C at the terminal is the DMS's to handle
                    env=qemu_env(files),
                    cwd=files.directory,  # the frame sockets are named relative to it
                )
        except OSError as exc:
            raise ExecutorError(f"cannot start QEMU: {exc.strerror}") from None
        finally:
            sock.close()
        vm.pid = vm.process.pid

    async def _watch(
        self,
        entry: TrackedExecution,
        vm: _Vm,
        config: VmConfig | None,
        task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start (or, with ``config=None``, adopt) the VM, then wait for it and record how it
        ended. ``task_status.started`` once the guest runs."""
        if config is not None:
            await self._launch(vm, config)
        started = False
        try:
            async with connect(vm.files.qmp, timeout=self.start_timeout) as qmp:
                vm.qmp = qmp
                async with trio.open_nursery() as inner:
                    inner.start_soon(qmp.read_loop)
                    if config is not None:
                        await qmp.execute("cont")
                    status = await qmp.execute("query-status")
                    if entry.result is None:
                        paused = isinstance(status, dict) and status.get("status") == "paused"
                        entry.status = ExecutionStatus.PAUSED if paused else ExecutionStatus.RUNNING
                    started = True
                    task_status.started()
                    if vm.timeout is not None:
                        inner.start_soon(self._time_limit, entry, vm, vm.timeout)
                    status = await vm.wait_process()
                    with trio.move_on_after(1.0):  # QEMU's last events (SHUTDOWN) are read
                        await qmp.closed.wait()
                    await self._finish(entry, vm, status)
                    inner.cancel_scope.cancel()
        except QmpError as exc:
            if not started:
                await self._fail_start(vm, exc)
            if entry.result is None:  # the monitor broke while it ran: QEMU is the truth
                await self._finish(entry, vm, await vm.wait_process())

    async def _fail_start(self, vm: _Vm, exc: QmpError) -> NoReturn:
        """QEMU did not come up: kill what is left and say why (QEMU's last words first)."""
        if vm.pid is not None:
            kill(vm.pid)
        status = await vm.wait_process()
        words = _last_line(vm.files.qemu_log)
        if words or status:
            raise ExecutorError(
                f"{self.name}: QEMU did not start (status {status}): {words or exc}"
            ) from None
        raise ExecutorError(f"{self.name}: QEMU did not start: {exc}") from None

    async def _finish(self, entry: TrackedExecution, vm: _Vm, status: int | None) -> None:
        vm.exited.set()

        def gather() -> VmEnd:
            return VmEnd(
                report=read_exit_report(vm.files),
                stop=vm.stop,
                shutdown_reason=None if vm.qmp is None else vm.qmp.shutdown_reason(),
                qemu_status=status,
                qemu_last_words=_last_line(vm.files.qemu_log),
                console=read_tail(vm.files.console, OUTPUT_LIMIT),
                memory_mib=vm.memory_mib,
                timeout=vm.timeout,
            )

        end = await trio.to_thread.run_sync(gather, limiter=self._io_limiter)
        with contextlib.suppress(ExecutionNotFound):
            self.executions.finish(entry.request.execution_id, result_of(end))

    async def _time_limit(self, entry: TrackedExecution, vm: _Vm, seconds: float) -> None:
        await trio.sleep(seconds)
        if vm.stop is None:
            vm.stop = StopReason.TIMEOUT
        await self._stop(entry, vm)

    async def _stop(self, entry: TrackedExecution, vm: _Vm) -> None:
        """Quit QEMU over QMP; kill it when it does not go within :attr:`quit_grace`."""
        if vm.qmp is not None and not vm.exited.is_set():
            with trio.move_on_after(self.quit_grace), contextlib.suppress(QmpError):
                await vm.qmp.execute("quit")
        with trio.move_on_after(self.quit_grace):
            await vm.exited.wait()
        if not vm.exited.is_set() and vm.pid is not None:
            kill(vm.pid)
        await entry.done.wait()

    async def cancel(self, execution_id: str) -> None:
        entry = self.executions.get(execution_id)
        if entry.result is not None:
            return
        entry.cancel_requested = True
        vm: _Vm = entry.handle
        if vm.stop is None:
            vm.stop = StopReason.CANCEL
        await self._stop(entry, vm)

    async def pause(self, execution_id: str) -> None:
        entry, vm = self._running(execution_id)
        await vm.qmp.execute("stop")  # type: ignore[union-attr]
        entry.status = ExecutionStatus.PAUSED

    async def resume(self, execution_id: str) -> None:
        entry, vm = self._running(execution_id)
        await vm.qmp.execute("cont")  # type: ignore[union-attr]
        entry.status = ExecutionStatus.RUNNING

    async def reattach_network(self, execution_id: str, network: NetworkAttachment) -> bool:
        """Bind the router's end of the frame socket again in the execution directory: the
        running QEMU still sends to that path, so its guest's network comes back as it was."""
        if network.attach_frames is None:
            return False
        try:
            self._running(execution_id)
        except (ExecutorError, ExecutionNotFound):
            return False
        directory = execution_dir(self.settings.work_dir, execution_id)
        await network.attach_frames(str(directory))
        return True

    def _running(self, execution_id: str) -> tuple[TrackedExecution, _Vm]:
        entry = self.executions.get(execution_id)
        vm: _Vm = entry.handle
        if entry.result is not None or vm.qmp is None:
            raise ExecutorError(f"execution {execution_id!r} is not running")
        return entry, vm

    async def list_executions(self) -> list[ExecutionInfo]:
        return [entry.info(self.name, entry.handle.detail) for entry in self.executions.all()]

    async def logs(
        self, execution_id: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[LogChunk]:
        entry = self.executions.get(execution_id)
        vm: _Vm = entry.handle
        # The serial console carries both streams; there is no separate stderr file.
        paths: dict[Stream, Path] = {
            "stdout": vm.files.console,
            "stderr": vm.files.directory / "no-stderr",
        }
        async for chunk in follow_logs(paths, entry.done, tail=tail, follow=follow):
            yield chunk

    async def remove(self, execution_id: str) -> None:
        """Forget the execution and delete its directory (stopping the VM first if it runs)."""
        await self.cancel(execution_id)
        entry = self.executions.remove(execution_id)
        vm: _Vm = entry.handle
        await trio.to_thread.run_sync(remove_trees, [vm.files.directory], limiter=self._io_limiter)

    async def cleanup(self) -> None:
        """Stop every VM of this executor ID (tracked or left by a previous run), delete their
        directories and the fetched-image cache."""
        async with trio.open_nursery() as nursery:
            for entry in self.executions.all():
                if entry.result is None:
                    nursery.start_soon(self.cancel, entry.request.execution_id)
        self.executions.clear()

        def remove_all() -> None:
            for directory in owned_dirs(self._root, self.name, self.executor_id):
                pid = owned_pid(VmFiles(directory))
                if pid is not None:
                    kill(pid)
            remove_trees(owned_dirs(self._root, self.name, self.executor_id))
            remove_trees([self.settings.work_dir / "vm-images"])

        await trio.to_thread.run_sync(remove_all, limiter=self._io_limiter)

    @property
    def _root(self) -> Path:
        return executions_root(self.settings.work_dir)

    async def recover(self) -> list[ExecutionInfo]:
        """Adopt the VMs a previous run of this executor left (running or ended): they can then
        be waited on, cancelled, logged and removed like the ones started here."""
        found = []
        directories = await trio.to_thread.run_sync(
            owned_dirs, self._root, self.name, self.executor_id
        )
        for directory in directories:
            marker = _read_marker(directory)
            execution_id = str(marker.get("execution_id") or directory.name)
            if self._known(execution_id) or execution_id in self._starting:
                continue  # ours, or being started now (its directory is being written)
            request = ExecutionRequest(
                job_id=str(marker.get("job_id") or ""),
                execution_id=execution_id,
                spec=SpecConfig(self.name, {}),
            )
            entry = self.executions.add(request)
            files = VmFiles(directory)
            vm = _Vm(files, 0, pid=owned_pid(files), detail="adopted after a restart")
            entry.handle = vm
            if vm.pid is not None:
                # ExecutorError: it ended while we connected; its result is recorded below.
                with contextlib.suppress(ExecutorError):
                    await self.nursery.start(self._watch, entry, vm, None)
            if entry.result is None and (vm.pid is None or not vm.alive()):
                vm.exited.set()
                report = read_exit_report(files)
                if report is not None:
                    await self._finish(entry, vm, None)
                else:
                    self.executions.finish(
                        execution_id,
                        ExecutionResult.failure(
                            "the VM ended while the DMS was down, without reporting an exit code",
                            Termination.ERROR,
                        ),
                    )
            found.append(entry.info(self.name, vm.detail))
        return found


class FirecrackerExecutor(VmExecutor):
    """Go's ``firecracker`` executor name and params, run on the same QEMU back-end (a
    ``firecracker`` binary is not needed)."""

    name = "firecracker"
