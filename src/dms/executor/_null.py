"""The ``null`` executor: does no work, for scheduler tests and benchmarks.

``params``: ``duration`` (seconds, default 0), ``exit_code`` (default 0), ``stdout`` and
``stderr`` (text written when the execution ends), ``error`` (a start failure to simulate,
e.g. a missing image). Cancelling ends it at once with ``Termination.CANCELLED``. It behaves
like a real executor in every other respect (IDs, waiters, logs, cleanup), so code that
orchestrates thousands of allocations can be measured without paying for containers.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

import trio

from dms.executor._base import Executor, TrackedExecution
from dms.executor._errors import ExecutorError, InvalidSpec
from dms.executor._types import (
    ExecutionRequest,
    ExecutionResult,
    ExecutionStatus,
    LogChunk,
    SpecConfig,
    Termination,
)

_PARAMS = {"duration", "exit_code", "stdout", "stderr", "error"}


def _number(params: Mapping[str, Any], key: str, default: float) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSpec(f"null execution: {key!r} must be a number")
    return float(value)


class NullExecutor(Executor):
    """Sleeps for ``duration`` and returns the configured result."""

    name = "null"

    def validate(self, spec: SpecConfig) -> None:
        if spec.type != self.name:
            raise InvalidSpec(f"null executor cannot run a {spec.type!r} execution")
        unknown = sorted(set(spec.params) - _PARAMS)
        if unknown:
            raise InvalidSpec(f"null execution: unknown parameter(s) {', '.join(unknown)}")
        if _number(spec.params, "duration", 0) < 0:
            raise InvalidSpec("null execution: 'duration' must not be negative")
        code = _number(spec.params, "exit_code", 0)
        if code != int(code):
            raise InvalidSpec("null execution: 'exit_code' must be an integer")
        for key in ("stdout", "stderr", "error"):
            if not isinstance(spec.params.get(key, ""), str):
                raise InvalidSpec(f"null execution: {key!r} must be a string")

    async def start(self, request: ExecutionRequest) -> None:
        self.validate(request.spec)
        error = str(request.spec.params.get("error", ""))
        if error:
            raise ExecutorError(error)
        entry = self.executions.add(request)
        entry.status = ExecutionStatus.RUNNING
        entry.handle = trio.CancelScope()
        self.nursery.start_soon(self._finish_later, entry)

    async def _finish_later(self, entry: TrackedExecution) -> None:
        params = entry.request.spec.params
        with entry.handle:
            await trio.sleep(_number(params, "duration", 0))
            result = ExecutionResult(
                exit_code=int(_number(params, "exit_code", 0)),
                stdout=str(params.get("stdout", "")),
                stderr=str(params.get("stderr", "")),
            )
            self.executions.finish(entry.request.execution_id, result)

    async def cancel(self, execution_id: str) -> None:
        entry = self.executions.get(execution_id)
        if entry.result is not None:
            return
        entry.cancel_requested = True
        entry.handle.cancel()
        self.executions.finish(
            execution_id,
            ExecutionResult(exit_code=-1, error="cancelled", termination=Termination.CANCELLED),
        )

    async def logs(
        self, execution_id: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[LogChunk]:
        entry = self.executions.get(execution_id)
        if follow:
            await entry.done.wait()
        if entry.result is None:
            return
        for stream, text in (("stdout", entry.result.stdout), ("stderr", entry.result.stderr)):
            lines = text.splitlines(keepends=True)
            if tail is not None:
                lines = lines[-tail:] if tail > 0 else []
            for line in lines:
                yield LogChunk(stream, line.encode())  # type: ignore[arg-type]

    async def cleanup(self) -> None:
        for entry in self.executions.all():
            if entry.result is None:
                await self.cancel(entry.request.execution_id)
        self.executions.clear()

    async def _teardown(self) -> None:
        for entry in self.executions.all():
            if entry.result is None:
                await self.cancel(entry.request.execution_id)
