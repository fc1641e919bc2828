"""Running one allocation to completion (shared by ``nunet executor run`` and deployments)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dms.executor import (
    ExecutionResult,
    ExecutorSettings,
    LogChunk,
    Termination,
    UnknownExecutor,
)
from dms.jobs import exit_status, load_allocation, run_allocation

NULL = """\
executor: "null"
resources: {cpu: {cores: 1}, ram: {size: 64MiB}}
execution: {type: "null", duration: %(duration)s, exit_code: 3, stdout: "out\\n"}
"""


def _settings(tmp_path: Path) -> ExecutorSettings:
    return ExecutorSettings("test-run", tmp_path / "work")


async def test_output_streams_and_the_result_comes_back(tmp_path: Path) -> None:
    chunks: list[LogChunk] = []
    alloc = load_allocation(NULL % {"duration": 0.05})
    done = await run_allocation(alloc, _settings(tmp_path), on_output=chunks.append)
    assert done.result.exit_code == 3 and exit_status(done.result) == 3
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == b"out\n"
    assert done.seconds >= 0.05


async def test_a_timeout_stops_it_as_a_limit(tmp_path: Path) -> None:
    alloc = load_allocation(NULL % {"duration": 30})
    done = await run_allocation(alloc, _settings(tmp_path), timeout=0.1)
    assert done.result.termination is Termination.CPU_LIMIT
    assert exit_status(done.result) == 124 and done.seconds < 10


async def test_an_unknown_executor_is_one_error(tmp_path: Path) -> None:
    alloc = load_allocation("execution: {type: lxc}")
    with pytest.raises(UnknownExecutor, match="unknown executor 'lxc'"):
        await run_allocation(alloc, _settings(tmp_path))


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (ExecutionResult(0), 0),
        (ExecutionResult(300), 1),
        (ExecutionResult(-1, termination=Termination.OOM_KILLED), 137),
        (ExecutionResult(-1, termination=Termination.CPU_LIMIT), 124),
        (ExecutionResult(-1, termination=Termination.CANCELLED), 130),
        (ExecutionResult.failure("boom"), 1),
        (ExecutionResult(-1, termination=Termination.DISK_LIMIT), 1),
    ],
)
def test_exit_status(result: ExecutionResult, status: int) -> None:
    assert exit_status(result) == status
