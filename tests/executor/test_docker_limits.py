"""Resource limits are enforced by the engine (and measured), not just declared."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from dms.executor import ExecutionStatus, Termination
from tests.executor.docker_support import (
    container_id_of,
    cpu_seconds,
    docker_engine,  # noqa: F401
    docker_executor,
    inspect,
    sh,
)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

MiB = 1 << 20


async def test_exceeding_the_memory_limit_is_an_oom_kill(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        # dd fills a 64 MiB buffer (one block) in a container limited to 16 MiB
        req = sh("dd if=/dev/zero of=/dev/null bs=64M count=1", ram=16 * MiB, execution_id="oom")
        result = await ex.run(req)
        assert result.termination is Termination.OOM_KILLED, result
        assert result.error == "killed: exceeded its memory limit of 16 MiB"
        assert await ex.status("oom") is ExecutionStatus.FAILED
        host = inspect(container_id_of(ex, "oom"))["HostConfig"]
        assert host["Memory"] == host["MemorySwap"] == 16 * MiB  # no swap escape


async def test_memory_within_the_limit_is_fine(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        result = await ex.run(sh("dd if=/dev/zero of=/dev/null bs=4M count=4", ram=32 * MiB))
        assert result.termination is Termination.EXITED
        assert result.exit_code == 0


async def test_half_a_core_gets_no_more_than_half_a_core(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        await ex.start(sh("while :; do :; done", cores=0.5, execution_id="spin"))
        cid = container_id_of(ex, "spin")
        assert inspect(cid)["HostConfig"]["NanoCpus"] == 500_000_000
        await trio.sleep(0.5)  # past start-up
        used0, t0 = cpu_seconds(cid), time.monotonic()
        await trio.sleep(2.0)
        used1, t1 = cpu_seconds(cid), time.monotonic()
        rate = (used1 - used0) / (t1 - t0)
        assert 0.3 <= rate <= 0.6, f"{rate:.3f} core-seconds per second"
        await ex.cancel("spin")


async def test_disk_limit_is_enforced(tmp_path: Path) -> None:
    """Where the storage driver has no quota (overlay2 on ext4) a watchdog kills the writer."""
    async with docker_executor(tmp_path, disk_check_interval=0.2) as ex:
        req = sh(
            "dd if=/dev/zero of=/tmp/big bs=1M count=40 2>&1 || exit 9; sleep 30",
            disk=8 * MiB,
            execution_id="disk",
        )
        await ex.start(req)
        with trio.fail_after(15):
            result = await ex.wait("disk")
        if ex._disk.quota:  # the driver enforces it: dd hits ENOSPC
            assert result.exit_code == 9
            assert "No space left" in result.stdout
        else:
            assert result.termination is Termination.DISK_LIMIT, result
            assert "over its disk limit of 8 MiB" in result.error
            labels = inspect(container_id_of(ex, "disk"))["Config"]["Labels"]
            assert labels["nunet-disk-limit"] == str(8 * MiB)
