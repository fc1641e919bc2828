"""How a VM's run ended, as an :class:`ExecutionResult`, from what the guest and QEMU said.

The exit code is the one the guest's init reported over virtio-serial (``exit=<code>
oom=<kills>``), never read from the console. A workload killed by SIGKILL (137) while the guest
kernel counted OOM kills was stopped for memory: ``OOM_KILLED``. Without a report: a stop we
asked for (cancel, timeout) says so; a guest that powered off by itself (a foreign root file
system's own init, as under Firecracker) exited 0; a guest reset (kernel panic: ``panic=-1``
and ``-no-reboot``) or a QEMU failure is an ``ERROR`` naming QEMU's last words.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from dms.executor._types import ExecutionResult, Termination


class StopReason(enum.Enum):
    CANCEL = "cancel"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class VmEnd:
    """Everything known once QEMU has exited."""

    report: tuple[int, int] | None  # (exit code, oom kills) from the guest
    stop: StopReason | None  # a stop the executor asked for
    shutdown_reason: str | None  # QMP SHUTDOWN reason, when the monitor saw it
    qemu_status: int | None  # QEMU's exit status (None: not our child)
    qemu_last_words: str  # last line of QEMU's own log
    console: str  # the end of the console log
    memory_mib: int
    timeout: float | None


def result_of(end: VmEnd) -> ExecutionResult:
    """The result (see the module docstring)."""
    if end.report is not None:
        code, oom = end.report
        if oom > 0 and code == 137:
            return ExecutionResult(
                exit_code=code,
                stdout=end.console,
                error=(
                    f"out of memory: the workload used up the VM's {end.memory_mib} MiB and the "
                    "guest kernel killed it"
                ),
                termination=Termination.OOM_KILLED,
            )
        return ExecutionResult(exit_code=code, stdout=end.console)
    if end.stop is StopReason.TIMEOUT:
        return ExecutionResult(
            exit_code=-1,
            stdout=end.console,
            error=f"time limit of {end.timeout:g} s reached; the VM was stopped",
            termination=Termination.CPU_LIMIT,
        )
    if end.stop is StopReason.CANCEL:
        return ExecutionResult(
            exit_code=-1, stdout=end.console, error="cancelled", termination=Termination.CANCELLED
        )
    if end.shutdown_reason == "guest-shutdown":
        return ExecutionResult(exit_code=0, stdout=end.console)
    if end.shutdown_reason in ("guest-reset", "guest-panic"):
        why = "the guest reset (kernel panic?) before reporting an exit code; see the log"
    elif end.qemu_status not in (None, 0):
        why = f"QEMU exited with status {end.qemu_status}: {end.qemu_last_words or 'no message'}"
    else:
        why = "the VM stopped without the guest reporting an exit code"
    return ExecutionResult(
        exit_code=-1, stdout=end.console, error=why, termination=Termination.ERROR
    )
