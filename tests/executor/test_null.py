"""The null executor honours the executor contract (it is what scheduler tests build on)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from dms import gojson
from dms.executor import (
    ExecutionExists,
    ExecutionNotFound,
    ExecutionRequest,
    ExecutionResult,
    ExecutionStatus,
    ExecutorError,
    ExecutorSettings,
    InvalidSpec,
    SpecConfig,
    Termination,
)
from dms.executor._null import NullExecutor


def _executor(tmp_path: Path) -> NullExecutor:
    return NullExecutor(ExecutorSettings(executor_id="test-null", work_dir=tmp_path))


def _request(execution_id: str = "e1", **params: object) -> ExecutionRequest:
    return ExecutionRequest(job_id="j1", execution_id=execution_id, spec=SpecConfig("null", params))


async def test_run_returns_the_configured_result(tmp_path: Path) -> None:
    async with _executor(tmp_path).open() as ex:
        result = await ex.run(_request(exit_code=3, stdout="out\n", stderr="err\n"))
        assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
        assert result.status is ExecutionStatus.FAILED
        assert result.termination is Termination.EXITED
        assert await ex.status("e1") is ExecutionStatus.FAILED
        ok = await ex.run(_request("e2"))
        assert ok.status is ExecutionStatus.SUCCESS


async def test_many_waiters_before_and_after_the_end(tmp_path: Path) -> None:
    async with _executor(tmp_path).open() as ex:
        await ex.start(_request(duration=0.05, stdout="x"))
        assert await ex.status("e1") is ExecutionStatus.RUNNING
        results: list[ExecutionResult] = []

        async def waiter() -> None:
            results.append(await ex.wait("e1"))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(waiter)
        results.append(await ex.wait("e1"))  # after the end: still answers
        assert len(results) == 6 and all(r.stdout == "x" for r in results)


async def test_cancel_ends_it_at_once_as_cancelled(tmp_path: Path) -> None:
    async with _executor(tmp_path).open() as ex:
        await ex.start(_request(duration=60))
        with trio.fail_after(1):
            await ex.cancel("e1")
            result = await ex.wait("e1")
        assert result.termination is Termination.CANCELLED
        assert result.status is ExecutionStatus.FAILED
        await ex.cancel("e1")  # cancelling an ended execution is a no-op


async def test_ids_are_unique_and_unknown_ids_are_refused(tmp_path: Path) -> None:
    async with _executor(tmp_path).open() as ex:
        await ex.start(_request())
        with pytest.raises(ExecutionExists):
            await ex.start(_request())
        with pytest.raises(ExecutionNotFound, match="no execution 'nope'"):
            await ex.wait("nope")
        await ex.wait("e1")
        await ex.remove("e1")
        with pytest.raises(ExecutionNotFound):
            await ex.status("e1")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"duration": -1}, "must not be negative"),
        ({"duration": "soon"}, "'duration' must be a number"),
        ({"exit_code": 1.5}, "'exit_code' must be an integer"),
        ({"image": "x"}, "unknown parameter"),
        ({"stdout": 3}, "'stdout' must be a string"),
    ],
)
async def test_bad_specs_are_refused_and_start_nothing(
    tmp_path: Path, params: dict[str, object], message: str
) -> None:
    async with _executor(tmp_path).open() as ex:
        with pytest.raises(InvalidSpec, match=message):
            await ex.start(_request(**params))
        assert await ex.list_executions() == []


async def test_a_simulated_start_failure_raises(tmp_path: Path) -> None:
    async with _executor(tmp_path).open() as ex:
        with pytest.raises(ExecutorError, match="image missing"):
            await ex.start(_request(error="image missing"))
        assert await ex.list_executions() == []


async def test_logs_tail_and_follow(tmp_path: Path) -> None:
    async with _executor(tmp_path).open() as ex:
        await ex.start(_request(duration=0.05, stdout="a\nb\nc\n", stderr="e\n"))
        followed = [(c.stream, c.data) async for c in ex.logs("e1", follow=True)]
        assert followed == [
            ("stdout", b"a\n"),
            ("stdout", b"b\n"),
            ("stdout", b"c\n"),
            ("stderr", b"e\n"),
        ]
        tail = [c.data async for c in ex.logs("e1", tail=1)]
        assert tail == [b"c\n", b"e\n"]


async def test_cleanup_cancels_running_and_forgets_everything(tmp_path: Path) -> None:
    async with _executor(tmp_path).open() as ex:
        for i in range(3):
            await ex.start(_request(f"e{i}", duration=60))
        infos = await ex.list_executions()
        assert {i.execution_id for i in infos} == {"e0", "e1", "e2"}
        assert {i.status for i in infos} == {ExecutionStatus.RUNNING}
        await ex.cleanup()
        assert await ex.list_executions() == []


async def test_leaving_open_cancels_in_process_work(tmp_path: Path) -> None:
    executor = _executor(tmp_path)
    with trio.fail_after(2):
        async with executor.open() as ex:
            await ex.start(_request(duration=60))
    result = await executor.executions.wait("e1")
    assert result.termination is Termination.CANCELLED


def test_result_json_is_gos_shape_plus_termination() -> None:
    result = ExecutionResult(exit_code=-1, error="boom", termination=Termination.OOM_KILLED)
    data = gojson.marshal(result)
    assert data == (
        b'{"stdout":"","stderr":"","exit_code":-1,"error_msg":"boom","termination":"oom_killed"}'
    )
    assert ExecutionResult.from_json(json.loads(data)) == result


def test_spec_from_an_ensemble_execution_block() -> None:
    spec = SpecConfig.from_execution({"type": "docker", "image": "x", "cmd": ["a"]})
    assert spec == SpecConfig("docker", {"image": "x", "cmd": ["a"]})
    assert gojson.marshal(spec) == b'{"type":"docker","params":{"cmd":["a"],"image":"x"}}'
    with pytest.raises(InvalidSpec, match="'type'"):
        SpecConfig.from_execution({"image": "x"})
    with pytest.raises(InvalidSpec):
        SpecConfig.from_json(["not", "an", "object"])
