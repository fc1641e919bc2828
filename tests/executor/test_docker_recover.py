"""After a DMS restart, a new executor with the same ID adopts the containers the old one left."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import docker
import pytest
import trio

from dms.executor import ExecutionExists, ExecutionStatus, Termination
from tests.executor.docker_support import (
    docker_engine,  # noqa: F401 (the fixture, used by name)
    docker_executor,
    labelled,
    remove_leftovers,
    sdk,
    sh,
)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]


def _state(executor_id: str) -> dict[str, str]:
    return {c.labels["nunet-execution-id"]: c.status for c in labelled(executor_id)}


async def test_recover_adopts_running_and_exited_containers(tmp_path: Path) -> None:
    executor_id = f"test-recover-{uuid.uuid4().hex[:8]}"
    try:
        # the first DMS run starts two containers, then goes away
        async with docker_executor(tmp_path, executor_id=executor_id, keep=True) as first:
            await first.start(sh("echo up; exec sleep 60", execution_id="long", ram=64 << 20))
            await first.start(
                sh("echo bye; echo gone >&2; sleep 0.3; exit 7", execution_id="short", job_id="j2")
            )
        assert _state(executor_id)["long"] == "running"  # leaving open() stopped nothing
        with trio.fail_after(10):  # "short" exits while no DMS is watching
            while _state(executor_id)["short"] != "exited":
                await trio.sleep(0.05)

        async with docker_executor(tmp_path, executor_id=executor_id) as second:
            infos = {info.execution_id: info for info in await second.recover()}
            assert set(infos) == {"long", "short"}
            assert infos["long"].status is ExecutionStatus.RUNNING
            assert infos["short"].status is ExecutionStatus.FAILED
            assert infos["short"].job_id == "j2"

            exited = await second.wait("short")
            assert (exited.exit_code, exited.stdout, exited.stderr) == (7, "bye\n", "gone\n")
            assert exited.termination is Termination.EXITED

            entry = second.executions.get("long")
            assert entry.request.spec.params["image"] == "nunet-test/busybox:latest"
            assert entry.request.resources.ram.size == 64 << 20
            assert await second.recover() == []  # already adopted

            chunks = [c.data async for c in second.logs("long")]
            assert b"".join(chunks) == b"up\n"
            await second.cancel("long")
            result = await second.wait("long")
            assert result.termination is Termination.CANCELLED
        assert labelled(executor_id) == []
    finally:
        remove_leftovers(executor_id)


async def test_recovered_container_completes_through_events(tmp_path: Path) -> None:
    executor_id = f"test-recover-{uuid.uuid4().hex[:8]}"
    try:
        async with docker_executor(tmp_path, executor_id=executor_id, keep=True) as first:
            await first.start(sh("sleep 1; echo done; exit 3", execution_id="later"))
        async with docker_executor(tmp_path, executor_id=executor_id) as second:
            (info,) = await second.recover()
            assert info.status is ExecutionStatus.RUNNING
            with trio.fail_after(10):
                result = await second.wait("later")
            assert (result.exit_code, result.stdout) == (3, "done\n")
    finally:
        remove_leftovers(executor_id)


async def test_recover_ignores_other_executors(tmp_path: Path) -> None:
    client = sdk()
    other = f"test-other-{uuid.uuid4().hex[:8]}"
    container = client.containers.create(
        "nunet-test/busybox:latest", ["true"], labels={"nunet-executor": other}
    )
    try:
        async with docker_executor(tmp_path) as ex:
            assert await ex.recover() == []
            await ex.cleanup()
        container.reload()  # still there: cleanup only removes its own
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
        client.close()


async def test_a_leftover_container_is_not_clobbered(tmp_path: Path) -> None:
    """Starting an execution whose container a previous run left is refused, not replaced."""
    executor_id = f"test-recover-{uuid.uuid4().hex[:8]}"
    try:
        async with docker_executor(tmp_path, executor_id=executor_id, keep=True) as first:
            req = sh("exec sleep 60", execution_id="dup", provision=[("p", b"true")])
            await first.start(req)
        async with docker_executor(tmp_path, executor_id=executor_id) as second:
            with pytest.raises(ExecutionExists, match="already exists"):
                await second.start(req)
            assert _state(executor_id) == {"dup": "running"}
            assert (second.execution_dir("dup") / "init").is_dir()  # its files stay
            (info,) = await second.recover()
            assert info.execution_id == "dup"
    finally:
        remove_leftovers(executor_id)
