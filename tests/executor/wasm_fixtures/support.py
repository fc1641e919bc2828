"""Helpers shared by the WASM executor tests: an executor in a temporary work dir, module
files written from the WAT fixtures, and requests for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dms.executor import ExecutionRequest, ExecutorSettings, SpecConfig
from dms.executor._wasm import WasmExecutor
from dms.resources import RAM, Resources


def make_executor(tmp_path: Path, **extra: Any) -> WasmExecutor:
    """A wasm executor for tests that run module files: host paths allowed unless the test
    says otherwise (``wasm_allow_host_paths=False``), as ``nunet executor run`` does."""
    extra.setdefault("wasm_allow_host_paths", True)
    return WasmExecutor(
        ExecutorSettings(executor_id="test-wasm", work_dir=tmp_path / "work", extra=extra)
    )


def module_file(tmp_path: Path, name: str, text: str | bytes | bytearray) -> Path:
    """Write a module (WAT text, or binary) under ``tmp_path/modules``; return its path."""
    path = tmp_path / "modules" / name
    path.parent.mkdir(exist_ok=True)
    if isinstance(text, bytes | bytearray):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def wasm_request(
    module: Path | str,
    execution_id: str = "e1",
    *,
    ram: int = 0,
    **params: Any,
) -> ExecutionRequest:
    return ExecutionRequest(
        job_id="j1",
        execution_id=execution_id,
        spec=SpecConfig("wasm", {"module": str(module), **params}),
        resources=Resources(ram=RAM(size=ram)),
    )
