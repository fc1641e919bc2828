"""A real daemon and a real Docker engine: what a crashed DMS left is reclaimed on restart,
and the executors the node has are in its status, asked through the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import docker
import pytest
from tests.executor.docker_support import IMAGE as TEST_IMAGE
from tests.executor.docker_support import docker_engine  # noqa: F401 (fixture)
from tests.integration.conftest import Cli

from dms import devnet
from dms.daemon import node_executor_id
from dms.executor import ExecutionRequest, ExecutorSettings, SpecConfig
from dms.executor._docker import DockerExecutor

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]


def _labelled(executor_id: str) -> list[str]:
    client = docker.from_env()
    try:
        found = client.containers.list(all=True, filters={"label": f"nunet-executor={executor_id}"})
        return [c.id for c in found]
    finally:
        client.close()


async def test_a_restarted_dms_removes_the_containers_a_crash_left(tmp_path: Path) -> None:
    net = devnet.create(tmp_path / "net", 1)
    node = net.nodes[0]
    executor_id = node_executor_id(node.peer_id)
    work_dir = Path(node.directory) / "work"
    # What a DMS killed mid-allocation leaves behind: a running container with its labels.
    leftover = DockerExecutor(ExecutorSettings(executor_id=executor_id, work_dir=work_dir))
    async with leftover.open():
        await leftover.start(
            ExecutionRequest(
                job_id="job1",
                execution_id="exec1",
                spec=SpecConfig("docker", {"image": TEST_IMAGE, "cmd": ["sleep", "300"]}),
            )
        )
    assert len(_labelled(executor_id)) == 1
    devnet.start(net)
    try:
        deadline = time.monotonic() + 30
        while _labelled(executor_id) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _labelled(executor_id) == [], "the restarted DMS should remove its leftovers"
        log = node.log_path.read_text()
        assert "docker: removed 1 execution(s) a previous run left" in log
        assert "exec1 (running)" in log
        status = Cli(net).run("actor", "cmd", "/public/status", "--json")
        executors = {e["name"]: e for e in json.loads(status.stdout)["Executors"]}
        assert executors["docker"]["available"] and executors["wasm"]["available"]
    finally:
        devnet.stop(net)
