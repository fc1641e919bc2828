"""Controlling running containers: cancel, logs, exec, pause/resume, remove, cleanup."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from dms.executor import ExecutionNotFound, ExecutionStatus, LogChunk, Termination
from tests.executor.docker_support import (
    container_id_of,
    docker_engine,  # noqa: F401 (the fixture, used by name)
    docker_executor,
    inspect,
    labelled,
    request,
    sh,
)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]


async def test_cancel_stops_it_and_says_cancelled(tmp_path: Path) -> None:
    async with docker_executor(tmp_path, stop_grace=5) as ex:
        # a program that exits on SIGTERM: cancel does not wait out the grace period
        await ex.start(sh("trap 'exit 143' TERM; while :; do sleep 0.1; done", execution_id="c"))
        started = time.monotonic()
        await ex.cancel("c")
        assert time.monotonic() - started < 3
        result = await ex.wait("c")
        assert result.termination is Termination.CANCELLED
        assert result.exit_code == 143
        assert await ex.status("c") is ExecutionStatus.FAILED
        assert inspect(container_id_of(ex, "c"))["State"]["Running"] is False
        await ex.cancel("c")  # a no-op once ended


async def test_cancel_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    async with docker_executor(tmp_path, stop_grace=0.5) as ex:
        await ex.start(sh("trap '' TERM; while :; do sleep 0.1; done", execution_id="stubborn"))
        await ex.cancel("stubborn")
        result = await ex.wait("stubborn")
        assert result.termination is Termination.CANCELLED
        assert result.exit_code == 137


async def _collect(ex: object, execution_id: str, **kwargs: object) -> list[LogChunk]:
    return [chunk async for chunk in ex.logs(execution_id, **kwargs)]  # type: ignore[attr-defined]


async def test_logs_keep_streams_apart_and_tail(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        await ex.run(sh("for i in 1 2 3 4; do echo out$i; echo err$i >&2; done", execution_id="l"))
        chunks = await _collect(ex, "l")
        out = b"".join(c.data for c in chunks if c.stream == "stdout")
        err = b"".join(c.data for c in chunks if c.stream == "stderr")
        assert out == b"out1\nout2\nout3\nout4\n"
        assert err == b"err1\nerr2\nerr3\nerr4\n"
        await ex.run(request(["seq", "1", "10"], execution_id="seq"))
        tail = await _collect(ex, "seq", tail=3)
        assert b"".join(c.data for c in tail) == b"8\n9\n10\n"
        assert {c.stream for c in tail} == {"stdout"}
        assert await _collect(ex, "seq", tail=0) == []


async def test_logs_follow_receives_lines_as_written(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        await ex.start(sh("for i in 1 2 3; do echo line$i; sleep 0.4; done", execution_id="f"))
        arrivals: list[tuple[float, bytes]] = []
        with trio.fail_after(10):
            async for chunk in ex.logs("f", follow=True):
                arrivals.append((time.monotonic(), chunk.data))
        # the iterator ended by itself when the container did
        assert b"".join(data for _, data in arrivals) == b"line1\nline2\nline3\n"
        assert arrivals[-1][0] - arrivals[0][0] >= 0.6  # line1 came long before line3
        result = await ex.wait("f")
        assert result.exit_code == 0


async def test_leaving_a_followed_log_early_frees_its_thread(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        await ex.start(sh("echo hello; exec sleep 30", execution_id="quiet"))
        streams = ex._engine._streams
        assert streams.borrowed_tokens == 0
        logs = ex.logs("quiet", follow=True)
        first = await logs.__anext__()
        assert first.data == b"hello\n"
        assert streams.borrowed_tokens == 1  # this follower's thread
        await logs.aclose()  # type: ignore[attr-defined]
        with trio.fail_after(5):
            while streams.borrowed_tokens > 0:
                await trio.sleep(0.02)


async def test_exec_runs_inside_the_running_container(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        await ex.start(sh("echo inside > /tmp/here; exec sleep 30", execution_id="x"))
        with trio.fail_after(5):
            while True:
                found = await ex.exec("x", ["cat", "/tmp/here"])
                if found.exit_code == 0:
                    break
                await trio.sleep(0.05)
        assert found.output == "inside\n"
        failed = await ex.exec("x", ["sh", "-c", "echo nope >&2; exit 5"])
        assert (failed.exit_code, failed.output) == (5, "nope\n")


async def test_pause_and_resume(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        await ex.start(request(["sleep", "30"], execution_id="p"))
        await ex.pause("p")
        assert await ex.status("p") is ExecutionStatus.PAUSED
        assert inspect(container_id_of(ex, "p"))["State"]["Paused"] is True
        await ex.resume("p")
        assert await ex.status("p") is ExecutionStatus.RUNNING
        await ex.pause("p")
        await ex.cancel("p")  # a paused container can be cancelled
        assert (await ex.wait("p")).termination is Termination.CANCELLED


async def test_remove_deletes_the_container(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        await ex.run(request(["true"], execution_id="r"))
        await ex.remove("r")
        assert labelled(ex.executor_id) == []
        with pytest.raises(ExecutionNotFound):
            await ex.status("r")


async def test_cleanup_leaves_nothing_labelled(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        await ex.start(sh("exec sleep 30", execution_id="running"))
        await ex.run(request(["true"], execution_id="exited"))
        await ex.start(request(["sleep", "30"], provision=[("p", b"true")], execution_id="prov"))
        assert ex.execution_dir("prov").is_dir()
        assert len(labelled(ex.executor_id)) == 3
        waiter_result = []

        async def waiter() -> None:
            waiter_result.append(await ex.wait("running"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.05)
            await ex.cleanup()
        assert labelled(ex.executor_id) == []
        assert not ex.execution_dir("prov").exists()
        assert await ex.list_executions() == []
        assert waiter_result[0].termination is Termination.CANCELLED


async def test_results_arrive_after_the_event_stream_drops(tmp_path: Path) -> None:
    """The engine connection breaks (a dockerd restart): the executor re-subscribes and
    finishes what died in between."""
    async with docker_executor(tmp_path) as ex:
        await ex.start(sh("sleep 0.3; exit 4", execution_id="gap"))
        ex._engine.close_streams()  # what a dockerd restart does to the event stream
        with trio.fail_after(10):
            result = await ex.wait("gap")
        assert result.exit_code == 4
        await ex.run(request(["true"], execution_id="after"))  # and events flow again


async def test_the_sweep_finishes_a_death_whose_event_was_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine that drops a ``die`` event (the stream stays up, so no reconnect check runs):
    the periodic sweep still finds the stopped container and records its result."""
    async with docker_executor(tmp_path, sweep_interval=0.3) as ex:
        monkeypatch.setattr(ex._watch, "_on_event", lambda event: None)  # every event lost
        await ex.start(sh("exit 5", execution_id="quiet"))
        with trio.fail_after(10):
            result = await ex.wait("quiet")
        assert result.exit_code == 5
