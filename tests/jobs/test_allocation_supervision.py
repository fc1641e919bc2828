"""Keeping an allocation alive, provider side: restart, health checks and liveness heartbeats.

The provider and orchestrator are the real nodes of ``tests/node/test_node_deployment.py`` on
the memory network; the orchestrator's node actor answers ``/dms/orchestrator/allocation/
liveness`` and task terminations as the lead's orchestrator will. Null-executor tests cover the
protocol; Docker tests (the real engine, image ``nunet-test/busybox``) cover a command health
check and the restart of a killed container.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import trio

from dms.actor import Envelope, Handle
from dms.db import AllocationRepo
from dms.errors import DMSError
from dms.executor import ExecutorSettings, SpecConfig
from dms.jobs import (
    ALLOCATION_LIVENESS,
    ALLOCATION_RESTART,
    ALLOCATION_START,
    ALLOCATION_STATUS,
    DEPLOYMENT_ALLOCATE,
    DEPLOYMENT_COMMIT,
    HEALTHCHECK,
    HEALTHCHECK_REGISTER,
    AllocateRequest,
    AllocateResponse,
    Allocation,
    AllocationDeploymentConfig,
    AllocationLiveness,
    AllocationManager,
    AllocationStatus,
    BidRequest,
    CommitRequest,
    HealthCheck,
    OkResponse,
    RegisterHealthcheck,
    TaskTermination,
    allocation_id,
)
from dms.jobs._allocations import parse_record_config
from dms.jobs._health import http_target
from dms.resources import CPU, RAM, Disk, Resources
from tests.executor.docker_support import (
    IMAGE,
    docker_engine,  # noqa: F401 (the fixture, used by name)
    remove_leftovers,
    require_docker,
    sdk,
)
from tests.node.test_node_deployment import MIB, Orchestrator, Peer, bid_for, world

SMALL = Resources(cpu=CPU(cores=0.25), ram=RAM(size=64 * MIB), disk=Disk(size=MIB))
NS = 1_000_000_000


class Beats:
    """The heartbeats an orchestrator receives, with the handle each came from."""

    def __init__(self, orch: Orchestrator) -> None:
        self._in, self._out = trio.open_memory_channel[tuple[Handle, AllocationLiveness]](10_000)
        orch.actor.add_behavior(ALLOCATION_LIVENESS, self._on_beat)

    async def _on_beat(self, env: Envelope) -> None:
        self._in.send_nowait((env.from_, AllocationLiveness.from_json(env.message)))

    async def next(self, timeout: float = 5) -> tuple[Handle, AllocationLiveness]:
        with trio.fail_after(timeout):
            return await self._out.receive()

    async def until(
        self, wanted: Callable[[AllocationLiveness], bool], timeout: float = 5
    ) -> tuple[Handle, AllocationLiveness]:
        """The first heartbeat (from now on) that ``wanted`` accepts."""
        with trio.fail_after(timeout):
            while True:
                sender, beat = await self._out.receive()
                if wanted(beat):
                    return sender, beat


def null_service(**params: Any) -> AllocationDeploymentConfig:
    return AllocationDeploymentConfig("service", "null", SMALL, SpecConfig("null", params))


def docker_service(script: str) -> AllocationDeploymentConfig:
    execution = SpecConfig("docker", {"image": IMAGE, "cmd": ["sh", "-c", script]})
    return AllocationDeploymentConfig("service", "docker", SMALL, execution)


async def allocate(
    provider: Peer,
    orch: Orchestrator,
    ensemble: str,
    config: AllocationDeploymentConfig,
    *,
    manager: AllocationManager | None = None,
    interval: float = 60.0,
    ports: int = 0,
) -> Allocation:
    """Commit (leasing ``ports`` public ports, each mapped to private 8080+i) and allocate."""
    alloc_id = allocation_id(ensemble, "a")

    def commit() -> dict[int, int]:
        provider.resources.commit(alloc_id, ensemble, "a", config.resources, 60)
        leased = provider.resources.ports.allocate(alloc_id, ports) if ports else []
        return {public: 8080 + i for i, public in enumerate(leased)}

    mapping = await trio.to_thread.run_sync(commit)
    return await (manager or provider.manager).create(
        ensemble,
        "a",
        config,
        orch.actor.handle,
        mapping,
        liveness_interval_ns=int(interval * NS),
    )


async def call_ok(orch: Orchestrator, to: Handle, behavior: str, payload: Any) -> OkResponse:
    return OkResponse.from_json(await orch.call(to, behavior, payload))


async def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def record_status(provider: Peer, alloc_id: str) -> str:
    record = await trio.to_thread.run_sync(AllocationRepo(provider.store).get, alloc_id)
    return "" if record is None else record.status


# -- restart (null executor) ----------------------------------------------------------------------


async def test_restart_is_silent_and_a_later_natural_end_is_reported(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    allocation = await allocate(provider, orch, "ens-r", null_service(duration=1.0, stdout="hi\n"))
    handle = allocation.handle
    assert (await call_ok(orch, handle, ALLOCATION_START, None)).ok

    answer = await call_ok(orch, handle, ALLOCATION_RESTART, allocation.id)
    assert answer == OkResponse(True)
    assert allocation.restarts == 1 and allocation.status == "running"
    assert await record_status(provider, allocation.id) == "running"

    # The restarted execution's cancellation is never reported; its natural end is.
    with trio.fail_after(10):
        notice = await orch.terminations.receive()
    assert notice == TaskTermination(allocation.id, "completed", "", 0, False, b"hi\n", b"")
    with pytest.raises(trio.WouldBlock):
        orch.terminations.receive_nowait()
    assert await record_status(provider, allocation.id) == "completed"

    # A completed allocation restarts too, and ends (and is reported) again.
    assert (await call_ok(orch, handle, ALLOCATION_RESTART, allocation.id)).ok
    status = AllocationStatus.from_json(await orch.call(handle, ALLOCATION_STATUS, None))
    assert (status.status, status.exit_code) == ("running", None)
    with trio.fail_after(10):
        again = await orch.terminations.receive()
    assert again.status == "completed" and allocation.restarts == 2

    await provider.manager.stop(allocation.id)
    assert await trio.to_thread.run_sync(provider.resources.allocated) == Resources()


async def test_restart_refusals(nursery: trio.Nursery, tmp_path: Path, stack: ExitStack) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    allocation = await allocate(provider, orch, "ens-q", null_service(duration=60))
    handle = allocation.handle

    pending = await call_ok(orch, handle, ALLOCATION_RESTART, allocation.id)
    assert not pending.ok and "is pending" in pending.error
    assert (await call_ok(orch, handle, ALLOCATION_START, None)).ok

    wrong = await call_ok(orch, handle, ALLOCATION_RESTART, "ens-q_other")
    assert wrong == OkResponse(False, "this is allocation ens-q_a, not ens-q_other")
    bad = await call_ok(orch, handle, ALLOCATION_RESTART, {"not": "an id"})
    assert not bad.ok and "allocation ID" in bad.error
    assert allocation.restarts == 0

    # A stopped allocation cannot restart (its actor is gone too, so only in-process).
    await provider.manager.stop(allocation.id, close=False)
    with pytest.raises(DMSError, match="is stopped"):
        await allocation.restart()
    allocation.close()


async def test_foreign_actor_is_refused(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """The provider's own node actor holds every /dms capability, and is still refused."""
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    allocation = await allocate(provider, orch, "ens-f", null_service(duration=60))
    await allocation.start()
    check = RegisterHealthcheck("ens-f", HealthCheck("command", exec=("true",)))
    refusal = OkResponse(
        False, "only the orchestrator that deployed allocation ens-f_a may control it"
    )
    for behavior, payload in (
        (ALLOCATION_RESTART, allocation.id),
        (HEALTHCHECK_REGISTER, check),
        (HEALTHCHECK, allocation.id),
    ):
        reply = await provider.actor.invoke(allocation.handle, behavior, payload, timeout=5)
        assert OkResponse.from_json(reply.decode_payload()) == refusal, behavior
    assert allocation.restarts == 0 and allocation.health_check is None


# -- health checks (null executor, a real HTTP server on the published port) ----------------------


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://localhost:8080/health", "http://127.0.0.1:41001/health"),
        ("http://example.com:8080/h?a=b", "http://127.0.0.1:41001/h?a=b"),  # never another host
        ("http://localhost:41002", "http://127.0.0.1:41002/"),  # a public port as is
        ("http://localhost/", "http://127.0.0.1:41002/"),  # port 80 is private here
        ("https://localhost:8080/", "https://127.0.0.1:41001/"),
    ],
)
def test_http_endpoint_maps_to_the_published_port(endpoint: str, url: str) -> None:
    assert http_target(endpoint, {41001: 8080, 41002: 80}) == url


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("/health", "names no port and the allocation publishes 2 ports"),
        ("http://localhost:9000/", "port 9000 is not published by the allocation"),
        ("ftp://localhost:8080/", "only http and https are supported"),
        ("http://localhost:99999/", "out of range"),
    ],
)
def test_http_endpoint_problems(endpoint: str, problem: str) -> None:
    with pytest.raises(DMSError, match=problem):
        http_target(endpoint, {41001: 8080, 41002: 80})


@contextlib.asynccontextmanager
async def http_server(port: int, answers: list[tuple[int, bytes]]) -> AsyncIterator[list[str]]:
    """Serve on 127.0.0.1:``port``; each request gets ``answers[0]`` (status, body); yields
    the request lines seen."""
    seen: list[str] = []

    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        with trio.move_on_after(5):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                data += chunk
        seen.append(data.split(b"\r\n", 1)[0].decode())
        status, body = answers[0]
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        await stream.send_all(head.encode() + body)
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        yield seen
        nursery.cancel_scope.cancel()


async def test_health_checks_are_registered_run_and_remembered(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    allocation = await allocate(provider, orch, "ens-h", null_service(duration=60), ports=1)
    handle, alloc_id = allocation.handle, allocation.id
    (public,) = allocation.ports

    async def check() -> OkResponse:
        return await call_ok(orch, handle, HEALTHCHECK, alloc_id)

    async def register(hc: HealthCheck, ensemble: str = "ens-h") -> OkResponse:
        return await call_ok(orch, handle, HEALTHCHECK_REGISTER, RegisterHealthcheck(ensemble, hc))

    not_yet = await check()
    assert not_yet == OkResponse(False, "allocation ens-h_a is pending, not running")
    assert (await call_ok(orch, handle, ALLOCATION_START, None)).ok
    assert await check() == OkResponse(True)  # no check registered: alive is healthy

    refused = await register(HealthCheck("command"))
    assert refused == OkResponse(
        False, "health check not registered: a command health check needs 'exec'"
    )
    other = await register(HealthCheck("command", exec=("true",)), ensemble="ens-x")
    assert not other.ok and "belongs to ensemble ens-h, not ens-x" in other.error

    # The null executor cannot run commands: unhealthy, with the executor's reason.
    assert (await register(HealthCheck("command", exec=("true",)))).ok
    unsupported = await check()
    assert unsupported == OkResponse(
        False, "the null executor cannot run commands inside an execution"
    )
    health = allocation.health
    assert health is not None and health.check_type == "command" and not health.healthy

    # HTTP: the endpoint names the private port (8080); the provider GETs the public one.
    answers = [(200, b"ok\n")]
    http = HealthCheck("http", endpoint="http://localhost:8080/health?x=1", response_value="ok")
    assert (await register(http)).ok
    async with http_server(public, answers) as seen:
        assert await check() == OkResponse(True)
        assert seen == ["GET /health?x=1 HTTP/1.1"]
        answers[0] = (200, b"degraded")
        bad = await check()
        assert bad == OkResponse(False, "unexpected health check response (HTTP 200): 'degraded'")
        assert (await register(HealthCheck("http", endpoint="/ready"))).ok  # the only port
        answers[0] = (503, b"")
        down = await check()
        assert not down.ok and down.error.endswith("/ready answered HTTP 503")
        answers[0] = (204, b"")
        assert await check() == OkResponse(True)
    refused_port = HealthCheck("http", endpoint="http://10.0.0.1:9999/")
    assert (await register(refused_port)).ok
    stray = await check()
    assert stray == OkResponse(
        False, "health check endpoint port 9999 is not published by the allocation"
    )
    assert (await register(HealthCheck("http", endpoint="/health"))).ok
    gone = await check()  # nobody listens on the published port any more
    assert not gone.ok and gone.error.startswith(
        f"health check request to http://127.0.0.1:{public}/health failed"
    )
    await provider.manager.stop(alloc_id)


# -- heartbeats (null executor) -------------------------------------------------------------------


async def test_heartbeats_keep_time_count_up_and_carry_status_and_health(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    beats = Beats(orch)
    interval = 0.1
    allocation = await allocate(
        provider, orch, "ens-b", null_service(duration=60), interval=interval
    )
    sender, first = await beats.until(lambda b: b.status == "pending")
    assert sender == allocation.handle and first.allocation_id == allocation.id
    assert not first.health_check_enabled and first.healthy

    assert (await call_ok(orch, allocation.handle, ALLOCATION_START, None)).ok
    started = time.monotonic()
    _, running = await beats.until(lambda b: b.status == "running")  # sent at once
    assert time.monotonic() - started < interval * 5
    sequence = [running.sequence]
    stamps = [running.timestamp_ns]
    for _ in range(6):
        _, beat = await beats.next()
        sequence.append(beat.sequence)
        stamps.append(beat.timestamp_ns)
    assert sequence == list(range(sequence[0], sequence[0] + 7))  # no gaps, increasing
    spacing = [(b - a) / NS for a, b in itertools.pairwise(stamps)]
    assert min(spacing) >= interval * 0.8, spacing  # the interval is respected

    # A health result rides in the next heartbeats.
    check = RegisterHealthcheck("ens-b", HealthCheck("command", exec=("true",)))
    assert (await call_ok(orch, allocation.handle, HEALTHCHECK_REGISTER, check)).ok
    assert not (await call_ok(orch, allocation.handle, HEALTHCHECK, allocation.id)).ok
    _, unhealthy = await beats.until(lambda b: not b.healthy)
    assert unhealthy.health_check_enabled and unhealthy.check_type == "command"
    assert unhealthy.message == "the null executor cannot run commands inside an execution"
    assert unhealthy.last_check_ns > 0 and unhealthy.sequence > sequence[-1]

    await provider.manager.stop(allocation.id)
    await allocation.done.wait()


async def test_heartbeat_interval_defaults_and_a_short_task_shows_its_end(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    beats = Beats(orch)
    allocation = await allocate(provider, orch, "ens-e", null_service(duration=0.2), interval=0)
    assert allocation.heartbeat.interval == 5.0  # DEFAULT_LIVENESS_INTERVAL
    await allocation.start()
    await beats.until(lambda b: b.status == "running")
    _, ended = await beats.until(lambda b: b.status != "running")  # sent at the end, not in 5 s
    assert ended.status == "completed"
    with trio.fail_after(5):
        assert (await orch.terminations.receive()).status == "completed"
    await provider.manager.stop(allocation.id)


async def test_allocate_request_sets_the_heartbeat_interval(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """``/dms/deployment/allocate`` passes ``LivenessInterval`` to the allocation (and its
    record, for a re-adoption)."""
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    beats = Beats(orch)
    config = null_service(duration=60)
    await bid_for(orch, provider, "ens-i", [BidRequest("n1", ("null",), config.resources)])
    commit = CommitRequest("ens-i", "a", "n1", config.resources, {})
    assert (await call_ok(orch, provider.handle, DEPLOYMENT_COMMIT, commit)).ok
    allocate_request = AllocateRequest("ens-i", "n1", {"a": config}, liveness_interval_ns=NS // 5)
    answer = AllocateResponse.from_json(
        await orch.call(provider.handle, DEPLOYMENT_ALLOCATE, allocate_request)
    )
    assert answer.ok, answer.error
    allocation = provider.manager.get("ens-i_a")
    assert allocation is not None and allocation.heartbeat.interval == 0.2
    record = await trio.to_thread.run_sync(provider.manager.records.get, "ens-i_a")
    assert record is not None and parse_record_config(record)[2] == NS // 5
    sender, _ = await beats.next()
    assert sender == answer.allocations["a"]
    await provider.manager.stop("ens-i_a")


async def test_commitments_that_never_become_allocations_expire(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """``ResourceManager.run_expiry`` releases a lapsed commitment and its ports."""
    provider, _, _, _ = await world(nursery, tmp_path, stack)
    free = await trio.to_thread.run_sync(provider.resources.free)

    committed_at = time.time_ns()

    def commit() -> None:
        provider.resources.commit("ens-t_a", "ens-t", "a", SMALL, 0.2, now=committed_at)
        provider.resources.ports.allocate("ens-t_a", 2)

    await trio.to_thread.run_sync(commit)
    # Read at the commit's own instant: a loaded machine can take longer than the TTL to get
    # here, and the commitment must not count as lapsed before the expiry loop even ran.
    held = functools.partial(provider.resources.free, now=committed_at)
    assert await trio.to_thread.run_sync(held) != free
    nursery.start_soon(provider.resources.run_expiry, 0.05)
    # The expiry pass releases the commitment, then the port leases: wait for both.
    with trio.fail_after(5):
        while await trio.to_thread.run_sync(
            provider.resources.free
        ) != free or await trio.to_thread.run_sync(provider.resources.ports.ports_of, "ens-t_a"):
            await trio.sleep(0.05)
    assert await trio.to_thread.run_sync(provider.resources.commitment, "ens-t_a") is None


# -- Docker ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def own_manager(
    provider: Peer, work_dir: Path, executor_id: str | None = None, *, docker: bool = True
) -> AsyncIterator[tuple[AllocationManager, Callable[[], Any]]]:
    """A second allocation manager on the provider (its own executor ID, a short Docker stop
    grace); yields it, re-adoption done, and a ``crash()`` coroutine function that ends it as
    a killed DMS would (nothing stopped). Containers it leaves are removed afterwards."""
    if docker:
        require_docker()
    executor_id = executor_id or f"test-sup-{uuid.uuid4().hex[:10]}"
    settings = ExecutorSettings(executor_id, work_dir, extra={"stop_grace": 0.5})
    manager = AllocationManager(
        provider.node.actor, provider.resources, provider.store, provider.node.executors, settings
    )
    scope = trio.CancelScope()
    ended = trio.Event()

    async def run(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with scope:
                await manager.run(task_status=task_status)
        finally:
            ended.set()

    async def crash() -> None:
        scope.cancel()
        await ended.wait()

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(run)
            with trio.fail_after(30):
                await manager.recovered.wait()
            yield manager, crash
            scope.cancel()
    finally:
        if docker:
            remove_leftovers(executor_id)


def container_of(manager: AllocationManager, alloc_id: str) -> str:
    executor = manager._open["docker"]
    return str(executor.executions.get(alloc_id).handle.id)


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
async def test_docker_command_health_check_passes_then_fails(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    async with own_manager(provider, tmp_path / "docker") as (manager, _):
        config = docker_service("touch /tmp/ok; exec sleep 60")
        allocation = await allocate(provider, orch, "ens-dh", config, manager=manager)
        handle = allocation.handle
        assert (await call_ok(orch, handle, ALLOCATION_START, None)).ok
        hc = HealthCheck(
            "command", exec=("sh", "-c", "test -f /tmp/ok && echo fine"), response_value="fine"
        )
        assert (
            await call_ok(orch, handle, HEALTHCHECK_REGISTER, RegisterHealthcheck("ens-dh", hc))
        ).ok
        assert await call_ok(orch, handle, HEALTHCHECK, allocation.id) == OkResponse(True)

        client = sdk()
        try:
            client.containers.get(container_of(manager, allocation.id)).exec_run(["rm", "/tmp/ok"])
        finally:
            client.close()
        sick = await call_ok(orch, handle, HEALTHCHECK, allocation.id)
        assert sick == OkResponse(False, "health check command exited with code 1")
        assert allocation.health is not None and not allocation.health.healthy
        await manager.stop(allocation.id)


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
async def test_docker_killed_container_is_reported_then_restarted(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    async with own_manager(provider, tmp_path / "docker") as (manager, _):
        config = docker_service("echo up; exec sleep 60")
        allocation = await allocate(provider, orch, "ens-dk", config, manager=manager, ports=1)
        handle = allocation.handle
        assert (await call_ok(orch, handle, ALLOCATION_START, None)).ok
        first = container_of(manager, allocation.id)

        client = sdk()
        try:
            client.containers.get(first).kill()
            with trio.fail_after(10):
                notice = await orch.terminations.receive()
            assert notice.status == "failed" and notice.stdout == b"up\n"
            assert await record_status(provider, allocation.id) == "failed"

            assert (await call_ok(orch, handle, ALLOCATION_RESTART, allocation.id)).ok
            second = container_of(manager, allocation.id)
            assert second != first and client.containers.get(second).status == "running"
            with pytest.raises(Exception, match="No such container"):
                client.containers.get(first)
            assert await record_status(provider, allocation.id) == "running"
            await manager.stop(allocation.id)
            with pytest.raises(Exception, match="No such container"):
                client.containers.get(second)
        finally:
            client.close()
        with pytest.raises(trio.WouldBlock):
            orch.terminations.receive_nowait()
        assert await trio.to_thread.run_sync(provider.resources.allocated) == Resources()
        assert await trio.to_thread.run_sync(provider.resources.ports.leases) == {}
