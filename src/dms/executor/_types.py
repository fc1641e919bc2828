"""What goes into and comes out of an executor (spec §10; Go's ``executor/types.go``).

The Go JSON shapes are kept where they cross the wire: ``SpecConfig`` is
``{"type":..., "params":{...}}`` and ``ExecutionResult`` is
``{"stdout","stderr","exit_code","error_msg"}`` (we add ``termination``, which Go ignores).
Everything else is ours: Python code uses these dataclasses, never raw dicts.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dms import gojson
from dms.executor._errors import InvalidSpec
from dms.resources import Resources


class ExecutionStatus(enum.StrEnum):
    """Go's ``ExecutionStatus`` values."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    SUCCESS = "success"

    @property
    def finished(self) -> bool:
        return self in (ExecutionStatus.FAILED, ExecutionStatus.SUCCESS)


class Termination(enum.StrEnum):
    """Why an execution ended; answers "why did my allocation die?" without reading logs."""

    EXITED = "exited"  # the program exited by itself (any exit code)
    OOM_KILLED = "oom_killed"  # killed for exceeding its memory limit
    CPU_LIMIT = "cpu_limit"  # stopped by its CPU budget (WASM fuel / time limit)
    DISK_LIMIT = "disk_limit"  # stopped for writing more than its disk limit
    CANCELLED = "cancelled"  # stopped by ``cancel``
    ERROR = "error"  # could not run, or lost (engine error, container vanished)


@dataclass(frozen=True)
class SpecConfig:
    """An executor-specific description of the work: ``type`` names the executor."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct([("type", self.type), ("params", dict(self.params))])

    @classmethod
    def from_json(cls, data: Any) -> SpecConfig:
        if not isinstance(data, Mapping):
            raise InvalidSpec("execution spec: expected an object with 'type' and 'params'")
        kind = data.get("type")
        if not isinstance(kind, str) or not kind:
            raise InvalidSpec("execution spec: 'type' must be a non-empty string")
        params = data.get("params") or {}
        if not isinstance(params, Mapping):
            raise InvalidSpec("execution spec: 'params' must be an object")
        return cls(kind, dict(params))

    @classmethod
    def from_execution(cls, execution: Any) -> SpecConfig:
        """From an ensemble allocation's ``execution:`` block (``type`` plus flat params)."""
        if not isinstance(execution, Mapping):
            raise InvalidSpec("execution: expected a mapping with a 'type'")
        kind = execution.get("type")
        if kind is None and "type" in execution:
            raise InvalidSpec(
                "execution: 'type' is YAML null; quote it (\"null\") for the null executor"
            )
        if not isinstance(kind, str) or not kind:
            raise InvalidSpec("execution: 'type' must be a non-empty string")
        return cls(kind, {k: v for k, v in execution.items() if k != "type"})


@dataclass(frozen=True)
class PortBinding:
    """Publish ``executor_port`` inside the execution on ``host_ip:host_port``."""

    host_port: int
    executor_port: int
    host_ip: str = ""  # "" = every interface
    protocol: Literal["tcp", "udp"] = "tcp"


@dataclass(frozen=True)
class FrameLink:
    """Where a VM's network card exchanges raw Ethernet frames with the subnet's router
    (QEMU ``-netdev dgram`` over unix datagram sockets): QEMU binds ``guest_socket`` and sends
    to ``host_socket``, which the DMS has bound. Both are in the directory the executor gave
    :attr:`NetworkAttachment.attach_frames`. ``mac`` is the card's address (the router's
    answers go to it), ``mtu`` the subnet's."""

    host_socket: str
    guest_socket: str
    mac: str  # "02:00:0a:01:02:03"
    mtu: int


@dataclass(frozen=True)
class NetworkAttachment:
    """Join an execution to its ensemble's private network (issue 14).

    A container (network namespace of its own): the executor starts the workload only after
    ``interface`` exists inside the execution (a container waits for
    ``/sys/class/net/<interface>``), so the program never runs without its subnet. Right after
    the execution's namespace exists the executor awaits ``attach(netns_path)``
    (``/proc/<pid>/ns/net``), which puts the interface there; if that raises, the execution is
    stopped and the start fails with that reason.

    A VM (a kernel of its own, no namespace to enter): before it boots, the executor awaits
    ``attach_frames(directory)`` (a private directory of the execution), which binds the DMS's
    end of a frame socket there and says how QEMU reaches it (:class:`FrameLink`); the guest
    configures ``address`` on its card itself. None when the subnet cannot carry frames.
    """

    interface: str
    address: str  # "10.x.y.z/24"
    attach: Callable[[str], Awaitable[None]]
    #: How long the workload waits for the interface before giving up (exit code 125).
    wait_s: float = 60.0
    attach_frames: Callable[[str], Awaitable[FrameLink]] | None = None


@dataclass(frozen=True)
class ExecutionRequest:
    """One execution to start: Go's ``ExecutionRequest``.

    ``execution_id`` is unique per executor; ``job_id`` groups executions of one allocation.
    ``resources`` are the limits the executor enforces. ``provision_scripts`` run, in order,
    before the main command (executors without a shell refuse them).
    """

    job_id: str
    execution_id: str
    spec: SpecConfig
    resources: Resources = field(default_factory=Resources)
    ports: Sequence[PortBinding] = ()
    provision_scripts: Sequence[tuple[str, bytes]] = ()
    gateway_ip: str = ""
    results_dir: str = ""
    network: NetworkAttachment | None = None


@dataclass(frozen=True)
class ExecutionResult:
    """How an execution ended. ``exit_code`` is -1 when it never ran (Go's convention)."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    termination: Termination = Termination.EXITED

    @property
    def status(self) -> ExecutionStatus:
        ok = self.exit_code == 0 and not self.error and self.termination is Termination.EXITED
        return ExecutionStatus.SUCCESS if ok else ExecutionStatus.FAILED

    @classmethod
    def failure(cls, message: str, termination: Termination = Termination.ERROR) -> ExecutionResult:
        return cls(exit_code=-1, error=message, termination=termination)

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            [
                ("stdout", self.stdout),
                ("stderr", self.stderr),
                ("exit_code", self.exit_code),
                ("error_msg", self.error),
                ("termination", str(self.termination)),
            ]
        )

    @classmethod
    def from_json(cls, data: Any) -> ExecutionResult:
        if not isinstance(data, Mapping):
            raise InvalidSpec("execution result: expected an object")
        try:
            termination = Termination(data.get("termination") or "exited")
        except ValueError:
            termination = Termination.ERROR
        return cls(
            exit_code=int(data.get("exit_code", -1)),
            stdout=str(data.get("stdout") or ""),
            stderr=str(data.get("stderr") or ""),
            error=str(data.get("error_msg") or ""),
            termination=termination,
        )


@dataclass(frozen=True)
class ExecutionInfo:
    """What an executor knows of one execution (for ``list`` and crash recovery)."""

    execution_id: str
    job_id: str
    status: ExecutionStatus
    executor: str  # the executor's name ("docker", "wasm", "null")
    detail: str = ""  # e.g. the container ID or the module path


@dataclass(frozen=True)
class LogChunk:
    """A piece of an execution's output, in the order it was written per stream."""

    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True)
class ExecResult:
    """The outcome of a command run inside a running execution (``exec``)."""

    exit_code: int
    output: str
