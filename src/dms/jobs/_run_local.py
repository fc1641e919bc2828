"""Run one allocation to completion on an executor of this machine.

Shared by ``nunet executor run`` and deployments: start, stream the output as it comes, stop
it at a time limit or (for the CLI) on SIGINT/SIGTERM, wait for the result, and always remove
the execution afterwards (shielded, so even a cancelled caller leaves nothing behind).
:func:`exit_status` maps a result to a process exit status the way ``docker run`` and
``timeout`` do: the program's own code, 137 when killed for memory, 124 when stopped by a CPU
or time limit, 130 when interrupted, 1 for any other failure.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import trio

from dms.executor import (
    ExecutionRequest,
    ExecutionResult,
    Executor,
    ExecutorRegistry,
    ExecutorSettings,
    LogChunk,
    Termination,
)
from dms.jobs._load import LocalAllocation

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

_EXIT_CODES = {
    Termination.OOM_KILLED: 137,
    Termination.CPU_LIMIT: 124,
    Termination.DISK_LIMIT: 1,
    Termination.CANCELLED: 130,
    Termination.ERROR: 1,
}


def exit_status(result: ExecutionResult) -> int:
    """The process exit status that reports ``result`` (see the module docstring)."""
    if result.termination is Termination.EXITED:
        return result.exit_code if 0 <= result.exit_code <= 255 else 1
    return _EXIT_CODES.get(result.termination, 1)


@dataclass(frozen=True)
class LocalRun:
    """How a run ended and how long it took (start to result, in seconds)."""

    result: ExecutionResult
    seconds: float


async def run_execution(
    executor: Executor,
    request: ExecutionRequest,
    *,
    timeout: float | None = None,
    on_output: Callable[[LogChunk], None] | None = None,
    cancel_on_signals: bool = False,
    on_started: Callable[[str], None] | None = None,
) -> LocalRun:
    """Run ``request`` on an open ``executor`` until it ends; the execution is removed after.

    ``on_started`` gets the execution ID once it runs and signals are handled (progress for a
    user; a test knows from it that an interrupt now cancels rather than kills the process).

    ``timeout`` (seconds) stops it and reports ``CPU_LIMIT`` ("time limit reached");
    ``on_output`` gets each piece of output as it is written; ``cancel_on_signals`` makes
    SIGINT/SIGTERM cancel it (for a foreground CLI; a daemon leaves signals to its owner).
    """
    started = time.monotonic()
    timed_out = False
    await executor.start(request)
    try:
        async with trio.open_nursery() as nursery:

            async def on_signal(task_status: TaskStatus[None]) -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    task_status.started()
                    async for _ in signals:
                        await executor.cancel(request.execution_id)
                        return

            async def on_timeout(seconds: float) -> None:
                nonlocal timed_out
                await trio.sleep(seconds)
                timed_out = True
                await executor.cancel(request.execution_id)

            if cancel_on_signals:
                await nursery.start(on_signal)
            if timeout is not None:
                nursery.start_soon(on_timeout, timeout)
            if on_started is not None:
                on_started(request.execution_id)
            if on_output is not None:
                async for chunk in executor.logs(request.execution_id, follow=True):
                    on_output(chunk)
            result = await executor.wait(request.execution_id)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await executor.cancel(request.execution_id)
            await executor.remove(request.execution_id)
    if timed_out and result.termination is Termination.CANCELLED:
        result = replace(
            result, termination=Termination.CPU_LIMIT, error=f"--timeout of {timeout:g} s reached"
        )
    return LocalRun(result, time.monotonic() - started)


async def run_allocation(
    alloc: LocalAllocation,
    settings: ExecutorSettings,
    *,
    timeout: float | None = None,
    on_output: Callable[[LogChunk], None] | None = None,
    cancel_on_signals: bool = False,
    registry: ExecutorRegistry | None = None,
    on_started: Callable[[str], None] | None = None,
) -> LocalRun:
    """Open ``alloc``'s executor with ``settings``, run the allocation to completion, close it.

    See :func:`run_execution` for the options. Executor errors (unknown executor, invalid
    spec, missing image) propagate as their one-line :class:`~dms.errors.DMSError`.
    """
    executor = (registry or ExecutorRegistry()).create(alloc.executor, settings)
    executor.validate(alloc.spec)
    request = ExecutionRequest(
        job_id=alloc.name,
        execution_id=f"{alloc.name}-{uuid.uuid4().hex[:8]}",
        spec=alloc.spec,
        resources=alloc.resources,
    )
    async with executor.open():
        return await run_execution(
            executor,
            request,
            timeout=timeout,
            on_output=on_output,
            cancel_on_signals=cancel_on_signals,
            on_started=on_started,
        )
