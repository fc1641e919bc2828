"""Helpers for the Docker executor tests: a real engine, the test image, one executor per test.

CI must run these tests for real, so a missing engine FAILS them (with the probe's reason);
set ``NUNET_SKIP_DOCKER=1`` to skip them instead on a machine without Docker. The image
``nunet-test/busybox:latest`` is built on demand by ``scripts/docker.sh image`` (the same code
CI's set-up runs), since no registry is reachable.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import docker
import pytest
import trio

from dms.executor import ExecutionRequest, ExecutorSettings, PortBinding, SpecConfig
from dms.executor._docker import DockerExecutor
from dms.resources import CPU, RAM, Disk, Resources

REPO = Path(__file__).resolve().parents[2]
IMAGE = "nunet-test/busybox:latest"
IMAGE_LABEL = "org.nunet.test-image"
IMAGE_VERSION = "2"  # keep in step with scripts/docker.sh


def skip_requested() -> bool:
    return os.environ.get("NUNET_SKIP_DOCKER") == "1"


@functools.cache
def _engine_problem() -> str | None:
    reason = DockerExecutor.probe()
    if reason is not None:
        return reason
    return _image_problem()


def _image_is_current(client: docker.DockerClient) -> bool:
    try:
        image = client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return False
    return (image.labels or {}).get(IMAGE_LABEL) == IMAGE_VERSION


def _image_problem() -> str | None:
    client = docker.from_env(timeout=30)
    try:
        if _image_is_current(client):
            return None
        done = subprocess.run(
            [str(REPO / "scripts" / "docker.sh"), "image"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0 or not _image_is_current(client):
            return f"cannot build {IMAGE}: {done.stderr.strip() or done.stdout.strip()}"
        return None
    finally:
        client.close()


def require_docker() -> None:
    """Fail (or skip, with ``NUNET_SKIP_DOCKER=1``) unless an engine and the image are here."""
    problem = _engine_problem()
    if problem is None:
        return
    if skip_requested():
        pytest.skip(f"NUNET_SKIP_DOCKER=1 and {problem}")
    pytest.fail(f"{problem} (set NUNET_SKIP_DOCKER=1 to skip the docker tests)", pytrace=False)


@pytest.fixture
def docker_engine() -> None:
    """Use as ``pytest.mark.usefixtures("docker_engine")``: with ``NUNET_SKIP_DOCKER=1`` and no
    engine, skip before the test starts (outside trio, so the reason is reported plainly).
    Without that variable the test itself FAILS in :func:`docker_executor`."""
    problem = _engine_problem()
    if problem is not None and skip_requested():
        pytest.skip(f"NUNET_SKIP_DOCKER=1 and {problem}")


def sdk() -> docker.DockerClient:
    return docker.from_env(timeout=30)


def labelled(executor_id: str) -> list[Any]:
    """Every container carrying ``nunet-executor=<executor_id>``, running or not."""
    client = sdk()
    try:
        return list(
            client.containers.list(all=True, filters={"label": f"nunet-executor={executor_id}"})
        )
    finally:
        client.close()


def settings(work_dir: Path, *, executor_id: str | None = None, **extra: Any) -> ExecutorSettings:
    allow = bool(extra.pop("allow_privileged", False))
    extra.setdefault("stop_grace", 1.0)
    return ExecutorSettings(
        executor_id=executor_id or f"test-{uuid.uuid4().hex[:10]}",
        work_dir=work_dir,
        allow_privileged=allow,
        extra=extra,
    )


@contextlib.asynccontextmanager
async def docker_executor(
    work_dir: Path, *, executor_id: str | None = None, keep: bool = False, **extra: Any
) -> AsyncIterator[DockerExecutor]:
    """An open executor with a unique ID; everything it made is removed afterwards.

    ``keep`` leaves the containers behind (to test recovery); the caller cleans up then.
    """
    require_docker()
    executor = DockerExecutor(settings(work_dir, executor_id=executor_id, **extra))
    try:
        async with executor.open():
            yield executor
            if not keep:
                with trio.CancelScope(shield=True):
                    await executor.cleanup()
    finally:
        if not keep:
            remove_leftovers(executor.executor_id)


def remove_leftovers(executor_id: str) -> None:
    for container in labelled(executor_id):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def request(
    cmd: Sequence[str] | None = None,
    *,
    execution_id: str | None = None,
    job_id: str = "job",
    image: str = IMAGE,
    cores: float = 0.0,
    ram: int = 0,
    disk: int = 0,
    ports: Sequence[PortBinding] = (),
    provision: Sequence[tuple[str, bytes]] = (),
    **params: Any,
) -> ExecutionRequest:
    """A docker ``ExecutionRequest`` in the test image (``cmd`` a list, like the ensemble's)."""
    spec: dict[str, Any] = {"image": image, **params}
    if cmd is not None:
        spec["cmd"] = list(cmd)
    return ExecutionRequest(
        job_id=job_id,
        execution_id=execution_id or f"ex-{uuid.uuid4().hex[:8]}",
        spec=SpecConfig("docker", spec),
        resources=Resources(cpu=CPU(cores=cores), ram=RAM(size=ram), disk=Disk(size=disk)),
        ports=tuple(ports),
        provision_scripts=tuple(provision),
    )


def sh(script: str, **kwargs: Any) -> ExecutionRequest:
    """A request running ``sh -c script``."""
    return request(["sh", "-c", script], **kwargs)


def cpu_seconds(container_id: str) -> float:
    """CPU time the container used so far, read from its cgroup (v1 or v2)."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text()) / 1e9
    for v2 in (
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat"),
        Path(f"/sys/fs/cgroup/docker/{container_id}/cpu.stat"),
    ):
        if v2.exists():
            for line in v2.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
    client = sdk()
    try:
        stats = client.api.stats(container_id, stream=False, one_shot=True)
        return int(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9
    finally:
        client.close()


def inspect(container_id: str) -> dict[str, Any]:
    client = sdk()
    try:
        attrs: dict[str, Any] = client.api.inspect_container(container_id)
        return attrs
    finally:
        client.close()


def container_id_of(executor: DockerExecutor, execution_id: str) -> str:
    handle = executor.executions.get(execution_id).handle
    return str(handle.id)
