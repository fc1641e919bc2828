"""Executors: where allocations actually run (spec §10).

Public API:

* the interface :class:`Executor` and its settings :class:`ExecutorSettings`;
* types: :class:`SpecConfig`, :class:`ExecutionRequest`, :class:`ExecutionResult`,
  :class:`ExecutionStatus`, :class:`Termination`, :class:`ExecutionInfo`, :class:`LogChunk`,
  :class:`ExecResult`, :class:`PortBinding`;
* :class:`ExecutorRegistry` (executors by name, which can run here and why not);
* :func:`reclaim_leftovers` (after a restart: adopt or remove what a previous run left);
* :func:`gpu_run_flags`: the ``docker run`` flags that give a container GPUs exactly as the
  docker back-end does (``nunet gpu test`` uses them); loaded on first use, with the Docker SDK;
* errors: :class:`ExecutorError` and its subclasses.

Back-ends, one module each, imported lazily through the registry: ``docker`` (a real Docker
engine via the ``docker`` SDK), ``wasm`` (``wasmtime``; the embedded default, runs anywhere),
``null`` (no work; for scheduler tests and benchmarks).
"""

from typing import TYPE_CHECKING, Any

from dms.executor._base import ExecutionTable, Executor, ExecutorSettings, TrackedExecution
from dms.executor._errors import (
    ExecutionExists,
    ExecutionNotFound,
    ExecutorError,
    ExecutorUnavailable,
    ImageUnavailable,
    InvalidSpec,
    Unsupported,
)
from dms.executor._reclaim import reclaim_leftovers
from dms.executor._registry import (
    BUILTIN_EXECUTORS,
    ExecutorAvailability,
    ExecutorRegistry,
    UnknownExecutor,
)
from dms.executor._types import (
    ExecResult,
    ExecutionInfo,
    ExecutionRequest,
    ExecutionResult,
    ExecutionStatus,
    FrameLink,
    LogChunk,
    NetworkAttachment,
    PortBinding,
    SpecConfig,
    Termination,
)

__all__ = [
    "BUILTIN_EXECUTORS",
    "ExecResult",
    "ExecutionExists",
    "ExecutionInfo",
    "ExecutionNotFound",
    "ExecutionRequest",
    "ExecutionResult",
    "ExecutionStatus",
    "ExecutionTable",
    "Executor",
    "ExecutorAvailability",
    "ExecutorError",
    "ExecutorRegistry",
    "ExecutorSettings",
    "ExecutorUnavailable",
    "FrameLink",
    "ImageUnavailable",
    "InvalidSpec",
    "LogChunk",
    "NetworkAttachment",
    "PortBinding",
    "SpecConfig",
    "Termination",
    "TrackedExecution",
    "UnknownExecutor",
    "Unsupported",
    "gpu_run_flags",
    "reclaim_leftovers",
]

if TYPE_CHECKING:
    from dms.executor._docker_spec import gpu_run_flags


def __getattr__(name: str) -> Any:
    # Lazy: the Docker SDK costs start-up time that commands without Docker should not pay.
    if name == "gpu_run_flags":
        from dms.executor._docker_spec import gpu_run_flags

        return gpu_run_flags
    raise AttributeError(f"module 'dms.executor' has no attribute {name!r}")
