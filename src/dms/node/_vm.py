"""VMs a node's owner starts by hand: ``/dms/node/vm/{start/custom,list,stop}``.

The Go DMS had these behaviours (``dms/node/node.go``@be89833) beside its deployments: they
start a Firecracker micro-VM outside any ensemble, list what runs and stop it. Here the VMs run
on the node's own ``vm`` executor (``firecracker`` for a Go-style spec: the same QEMU back-end
under Go's name, see :mod:`dms.executor._vm`), opened by the node's allocation manager, so
they live in the same work directory and are cleaned up as the executor's other VMs are. Only
what these behaviours started is listed or stopped here: an allocation's VM is its
allocation's business.

Payloads are Go's (untagged structs, so the field names are the keys):

* ``/dms/node/vm/start/custom``: ``CustomVMStartRequest{Execution types.ExecutionRequest}``,
  of which ``ExecutionID`` (a fresh UUID when empty), ``JobID``, ``EngineSpec`` (``{"type":
  "firecracker"|"vm", "params": {...}}``), ``Resources`` (``types.Resources``: cores, RAM in
  bytes) and ``ProvisionScripts`` (name → base64) are used; ``PortsToBind`` and GPUs are
  refused (a VM has no network here). Reply ``CustomVMStartResponse{Error}`` plus our
  ``ExecutionID`` (which a Go CLI ignores and a user needs to stop it).
* ``/dms/node/vm/stop``: ``VMStopRequest{ExecutionID, ExecutionType}`` → ``{Error}``. The VM
  is stopped (QMP ``quit``, killed after a grace) and its files removed.
* ``/dms/node/vm/list`` (any payload) → ``ListVMResponse{Error, VMS, ExecutionType}`` where
  each item is Go's ``ExecutionListItem{ExecutionID, Running}`` plus ``Status``, ``Executor``,
  ``CPU`` (cores), ``Memory`` (bytes), ``Started`` (RFC 3339, UTC) and ``Error`` (why it ended
  badly, or "").

Images by host path are refused unless the node's executor settings allow host paths
(``vm_allow_host_paths``), as for deployments; http(s) URLs need their sha256 pin; without a
kernel or initrd the node's default guest is used. The capability is the behaviour's own
name (``/dms/node/vm/...``), so whoever holds ``/dms/node`` (the node's owner) may call them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import trio

from dms import gojson
from dms.actor import Envelope
from dms.errors import DMSError, InvalidInput, NotFound
from dms.executor import (
    ExecutionNotFound,
    ExecutionRequest,
    ExecutionStatus,
    Executor,
    SpecConfig,
)
from dms.node._payloads import ERR_UNMARSHAL, RequestError, request_object
from dms.node._reply import send_reply
from dms.resources import Resources

if TYPE_CHECKING:
    from dms.node._node import Node

log = logging.getLogger(__name__)

VM_START_CUSTOM = "/dms/node/vm/start/custom"
VM_STOP = "/dms/node/vm/stop"
VM_LIST = "/dms/node/vm/list"

#: Execution types these behaviours run (Go's name first): both are the QEMU back-end.
VM_TYPES = ("firecracker", "vm")
#: ``JobID`` of a VM started without one (it groups nothing; it names where it came from).
DEFAULT_JOB_ID = "dms-node-vm"
#: At most this many VMs are remembered; ended ones are forgotten (and removed) first.
MAX_VMS = 32
#: What Go's list reply names as its ``ExecutionType``.
LIST_TYPE = "firecracker"

NO_MANAGER = "this node cannot run VMs: it runs no executors (no allocation manager)"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
MiB = 1024 * 1024


@dataclass(frozen=True)
class CustomVm:
    """One VM started through ``/dms/node/vm/start/custom``."""

    execution_id: str
    executor: str  # "firecracker" or "vm"
    cores: float
    memory: int  # bytes, as requested (0: the executor's default)
    started: float  # Unix time


@dataclass(frozen=True)
class StartRequest:
    """A checked ``CustomVMStartRequest``."""

    request: ExecutionRequest

    @property
    def kind(self) -> str:
        return self.request.spec.type


def _execution_id(fields: Mapping[str, Any]) -> str:
    text = gojson.str_value(fields.get("executionid"), "ExecutionID", error=RequestError)
    if not text:
        return str(uuid.uuid4())
    if not _ID.fullmatch(text):
        raise InvalidInput(
            "ExecutionID must be 1-128 letters, digits, '_', '.', ':' or '-' "
            "(leave it empty for a fresh one)"
        )
    return text


def _scripts(value: Any) -> tuple[tuple[str, bytes], ...]:
    """Go's ``map[string][]byte``: run in name order (Go's map order is random)."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise RequestError("ProvisionScripts must be an object of base64 scripts")
    out = []
    for name in sorted(value):
        data = gojson.bytes_value(value[name], f"ProvisionScripts[{name}]", error=RequestError)
        out.append((str(name), data or b""))
    return tuple(out)


def parse_start(obj: Mapping[str, Any]) -> StartRequest:
    """Check a ``CustomVMStartRequest`` (see the module docstring); raises
    :class:`RequestError` for a wrong JSON type, :class:`InvalidInput` for a bad value."""
    outer = gojson.folded(obj, "request", error=RequestError)
    execution = outer.get("execution")
    if execution is None:
        raise InvalidInput("the request has no Execution")
    fields = gojson.folded(execution, "Execution", error=RequestError)
    engine = fields.get("enginespec")
    if engine is None:
        raise InvalidInput("Execution.EngineSpec is missing (give a firecracker or vm spec)")
    spec = SpecConfig.from_json(engine)
    if spec.type.strip().lower() not in VM_TYPES:
        raise InvalidInput(
            f"EngineSpec type {spec.type!r} is not a VM (use one of: {', '.join(VM_TYPES)})"
        )
    spec = SpecConfig(spec.type.strip().lower(), spec.params)
    try:
        resources = Resources.from_json(fields.get("resources"))
    except DMSError as exc:
        raise InvalidInput(f"Execution.Resources: {exc}") from None
    if resources.gpus:
        raise InvalidInput("a VM cannot be given GPUs here")
    if resources.cpu.cores < 0:
        raise InvalidInput("Resources.cpu.cores must not be negative")
    if resources.cpu.cores == 0:  # Go's CLI default: one core
        resources = replace(resources, cpu=replace(resources.cpu, cores=1.0))
    ports = fields.get("portstobind")
    if ports:
        raise InvalidInput("PortsToBind: a VM started here has no network, so no ports")
    job_id = gojson.str_value(fields.get("jobid"), "JobID", error=RequestError)
    return StartRequest(
        ExecutionRequest(
            job_id=job_id or DEFAULT_JOB_ID,
            execution_id=_execution_id(fields),
            spec=spec,
            resources=resources,
            provision_scripts=_scripts(fields.get("provisionscripts")),
        )
    )


def custom_vm_start_payload(
    *,
    kernel: str = "",
    rootfs: str = "",
    initrd: str = "",
    kernel_args: str = "",
    cpu: float = 1.0,
    memory_mib: int = 1024,
    command: str = "",
    execution_id: str = "",
    pins: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Go's ``CustomVMStartRequest`` for a ``firecracker`` VM, as Go's CLI builds it
    (``kernel_image``, ``root_file_system``, ``initrd_path``, ``kernel_args``; RAM in bytes).

    ``command`` (run by the default guest's init) and ``pins`` (``{"kernel_image":
    sha256, ...}`` for URL images) are ours; empty values are left out, so the node's
    defaults apply. Checked here so a typo fails before anything is sent.
    """
    if cpu <= 0:
        raise InvalidInput("--cpu must be a positive number of cores")
    if memory_mib <= 0:
        raise InvalidInput("--memory must be a positive number of MiB")
    params: dict[str, Any] = {}
    for key, value in (
        ("kernel_image", kernel),
        ("root_file_system", rootfs),
        ("initrd_path", initrd),
        ("kernel_args", kernel_args),
        ("command", command),
    ):
        if value:
            params[key] = value
    for key, digest in (pins or {}).items():
        if digest:
            params[f"{key}_sha256"] = digest
    return {
        "Execution": {
            "JobID": "",
            "ExecutionID": execution_id or str(uuid.uuid4()),
            "EngineSpec": {"type": "firecracker", "params": params},
            "Resources": {"cpu": {"cores": cpu}, "ram": {"size": memory_mib * MiB}},
        }
    }


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeVms:
    """The VMs this node's owner started, and the executors they run on."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.vms: dict[str, CustomVm] = {}
        self._starting: set[str] = set()
        self._lock = trio.Lock()  # table changes one at a time

    async def _executor(self, name: str) -> Executor:
        manager = self.node.allocations
        if manager is None:
            raise NotFound(NO_MANAGER)
        return await manager.executor(name)

    async def _state(self, vm: CustomVm) -> tuple[str, str]:
        """(status, error) of ``vm`` as its executor knows it (``lost`` when it does not)."""
        try:
            executor = await self._executor(vm.executor)
            entry = executor.executions.get(vm.execution_id)
        except ExecutionNotFound:
            return "lost", "its executor no longer knows it (the executor was restarted)"
        except DMSError as exc:
            return "lost", str(exc)
        error = ""
        if entry.result is not None:
            error = entry.result.error or (
                f"exit code {entry.result.exit_code}" if entry.result.exit_code else ""
            )
        return str(entry.status), error

    async def start(self, wanted: StartRequest) -> str:
        """Start the VM; returns its execution ID once QEMU runs it."""
        request = wanted.request
        machine = await self.node.machine()
        cores = request.resources.cpu.cores
        if machine.cpu.cores and cores > machine.cpu.cores:
            raise InvalidInput(f"{cores:g} cores asked, the machine has {machine.cpu.cores:g}")
        if machine.ram.size and request.resources.ram.size > machine.ram.size:
            raise InvalidInput(
                f"{request.resources.ram.size // MiB} MiB of RAM asked, "
                f"the machine has {machine.ram.size // MiB}"
            )
        execution_id = request.execution_id
        async with self._lock:
            if execution_id in self.vms or execution_id in self._starting:
                raise InvalidInput(f"a VM {execution_id!r} already exists on this node")
            await self._make_room()
            self._starting.add(execution_id)
        try:  # not under the lock: fetching an image may take a while
            executor = await self._executor(wanted.kind)
            await executor.start(request)
            self.vms[execution_id] = CustomVm(
                execution_id, wanted.kind, cores, request.resources.ram.size, time.time()
            )
        finally:
            self._starting.discard(execution_id)
        log.info("started VM %s (%s)", request.execution_id, wanted.kind)
        return request.execution_id

    async def _make_room(self) -> None:
        """Forget ended VMs, oldest first, until one more fits under :data:`MAX_VMS`."""
        if len(self.vms) + len(self._starting) < MAX_VMS:
            return
        for vm in sorted(self.vms.values(), key=lambda v: v.started):
            status, _ = await self._state(vm)
            if status in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
                continue
            await self._forget(vm)
            if len(self.vms) + len(self._starting) < MAX_VMS:
                return
        raise InvalidInput(f"this node already runs {MAX_VMS} VMs: stop one first")

    async def _forget(self, vm: CustomVm) -> None:
        """Stop ``vm`` if it runs, remove its files and drop it from the table."""
        self.vms.pop(vm.execution_id, None)
        with contextlib.suppress(ExecutionNotFound):
            executor = await self._executor(vm.executor)
            await executor.remove(vm.execution_id)

    async def stop(self, execution_id: str, kind: str) -> None:
        """Stop the VM ``execution_id`` and remove its files."""
        if kind and kind.strip().lower() not in VM_TYPES:
            raise InvalidInput(f"ExecutionType {kind!r} is not a VM executor")
        if not execution_id:
            raise InvalidInput("ExecutionID is empty: name the VM to stop")
        async with self._lock:
            vm = self.vms.get(execution_id)
            if vm is None:
                raise NotFound(f"no VM {execution_id!r} on this node (see /dms/node/vm/list)")
            await self._forget(vm)
        log.info("stopped VM %s", execution_id)

    async def items(self) -> list[gojson.Struct]:
        """``ExecutionListItem`` values (plus ours), oldest first."""
        out = []
        for vm in sorted(self.vms.values(), key=lambda v: v.started):
            status, error = await self._state(vm)
            out.append(
                gojson.Struct(
                    ExecutionID=vm.execution_id,
                    Running=status == ExecutionStatus.RUNNING,
                    Status=status,
                    Executor=vm.executor,
                    CPU=vm.cores,
                    Memory=vm.memory,
                    Started=_rfc3339(vm.started),
                    Error=error,
                )
            )
        return out


def _error_text(exc: DMSError) -> str:
    return ERR_UNMARSHAL if isinstance(exc, RequestError) else str(exc)


def install_vm(node: Node) -> NodeVms:
    """Register the VM behaviours on ``node``; returns their state (what runs)."""
    vms = NodeVms(node)

    async def start(env: Envelope) -> None:
        execution_id = ""
        try:
            wanted = parse_start(request_object(env))
            execution_id = await vms.start(wanted)
            error = ""
        except DMSError as exc:
            log.info("VM not started: %s", exc)
            error = _error_text(exc)
        await send_reply(node, env, gojson.Struct(Error=error, ExecutionID=execution_id))

    async def stop(env: Envelope) -> None:
        try:
            obj = request_object(env)
            fields = gojson.folded(obj, "request", error=RequestError)
            execution_id = gojson.str_value(
                fields.get("executionid"), "ExecutionID", error=RequestError
            )
            kind = gojson.str_value(
                fields.get("executiontype"), "ExecutionType", error=RequestError
            )
            await vms.stop(execution_id, kind)
            error = ""
        except DMSError as exc:
            error = _error_text(exc)
        await send_reply(node, env, gojson.Struct(Error=error))

    async def list_(env: Envelope) -> None:
        error = "" if node.allocations is not None else NO_MANAGER
        items = await vms.items()
        await send_reply(node, env, gojson.Struct(Error=error, VMS=items, ExecutionType=LIST_TYPE))

    node.actor.add_behavior(VM_START_CUSTOM, start)
    node.actor.add_behavior(VM_STOP, stop)
    node.actor.add_behavior(VM_LIST, list_)
    return vms
