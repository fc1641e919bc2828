"""A restarted provider re-adopts its allocations (``AllocationManager.run``).

Each test runs an allocation under one manager, ends that manager as a killed DMS would
(nothing stopped: Docker containers keep running), then builds a new manager on the same store
and executor ID, as the next ``nunet run`` does, and checks what the orchestrator sees: a
heartbeat from the allocation's new handle, its status, a termination report when the work was
lost, and that a stop through the new handle frees everything.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from pathlib import Path

import docker
import pytest
import trio

from dms.actor import Handle
from dms.jobs import (
    ALLOCATION_RESTART,
    ALLOCATION_START,
    ALLOCATION_STATUS,
    ALLOCATION_STOP,
    HEALTHCHECK,
    AllocationStatus,
    OkResponse,
    TaskTermination,
)
from dms.resources import Resources
from tests.executor.docker_support import (
    docker_engine,  # noqa: F401 (the fixture, used by name)
    sdk,
)
from tests.jobs.test_allocation_supervision import (
    Beats,
    allocate,
    call_ok,
    container_of,
    docker_service,
    null_service,
    own_manager,
    record_status,
)
from tests.node.test_node_deployment import Orchestrator, Peer, world

LOST = "lost while the DMS was down"


async def everything_released(provider: Peer) -> None:
    assert await trio.to_thread.run_sync(provider.resources.allocated) == Resources()
    assert await trio.to_thread.run_sync(provider.resources.ports.leases) == {}


async def stop_through(orch: Orchestrator, handle: Handle, alloc_id: str, provider: Peer) -> None:
    assert (await call_ok(orch, handle, ALLOCATION_STOP, None)).ok
    assert await record_status(provider, alloc_id) == ""
    await everything_released(provider)


async def test_null_allocations_come_back_lost_pending_or_as_they_ended(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """In-process work cannot outlive the DMS: a running null allocation comes back failed
    (reported), and can be restarted; a pending one comes back pending; a half-done stop is
    finished."""
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    beats = Beats(orch)
    executor_id = f"test-readopt-{uuid.uuid4().hex[:8]}"
    work = tmp_path / "work"
    async with own_manager(provider, work, executor_id, docker=False) as (first, crash):
        running = await allocate(
            provider, orch, "ens-n", null_service(duration=60), manager=first, interval=0.1, ports=1
        )
        await running.start()
        waiting = await allocate(
            provider, orch, "ens-p", null_service(duration=60), manager=first, interval=0.1
        )
        halted = await allocate(provider, orch, "ens-s", null_service(), manager=first)
        old = {a.id: a.handle for a in (running, waiting, halted)}
        await crash()
    # A crash between recording "stopped" and releasing: the next run finishes the stop.
    await trio.to_thread.run_sync(
        lambda: provider.manager.records.set_status(halted.id, "stopped", finished=True)
    )
    assert await record_status(provider, running.id) == "running"

    async with own_manager(provider, work, executor_id, docker=False) as (second, _):
        lost = second.get(running.id)
        assert lost is not None and (lost.status, lost.error) == ("failed", LOST)
        assert lost.handle != old[running.id] and lost.ports == running.ports
        assert lost.heartbeat.interval == 0.1  # the orchestrator's interval, from the record
        assert await record_status(provider, running.id) == "failed"
        with trio.fail_after(5):
            notice = await orch.terminations.receive()
        assert notice == TaskTermination(running.id, "failed", LOST, -1, False)
        sender, _ = await beats.until(
            lambda b: b.allocation_id == running.id and b.status == "failed"
        )
        assert sender == lost.handle

        pending = second.get(waiting.id)
        assert pending is not None and pending.status == "pending"
        assert (await call_ok(orch, pending.handle, ALLOCATION_START, None)).ok
        assert second.get(halted.id) is None
        assert await record_status(provider, halted.id) == ""

        # The orchestrator restarts the lost allocation through its new handle.
        assert (await call_ok(orch, lost.handle, ALLOCATION_RESTART, running.id)).ok
        assert lost.status == "running" and lost.restarts == 1
        assert (await call_ok(orch, pending.handle, ALLOCATION_STOP, None)).ok
        await stop_through(orch, lost.handle, running.id, provider)


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
async def test_running_container_is_readopted(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    beats = Beats(orch)
    executor_id = f"test-readopt-{uuid.uuid4().hex[:8]}"
    work = tmp_path / "work"
    async with own_manager(provider, work, executor_id) as (first, crash):
        config = docker_service("echo up; exec sleep 60")
        allocation = await allocate(
            provider, orch, "ens-d", config, manager=first, interval=0.2, ports=1
        )
        assert (await call_ok(orch, allocation.handle, ALLOCATION_START, None)).ok
        container = container_of(first, allocation.id)
        old_handle = allocation.handle
        await crash()
        client = sdk()
        try:
            assert client.containers.get(container).status == "running"  # the crash left it

            async with own_manager(provider, work, executor_id) as (second, _):
                again = second.get(allocation.id)
                assert again is not None and again.status == "running"
                assert container_of(second, allocation.id) == container
                sender, beat = await beats.until(lambda b: b.status == "running", timeout=5)
                while sender == old_handle:  # heartbeats the old actor sent before the crash
                    sender, beat = await beats.until(lambda b: b.status == "running")
                assert sender == again.handle and beat.allocation_id == allocation.id
                status = AllocationStatus.from_json(
                    await orch.call(again.handle, ALLOCATION_STATUS, None)
                )
                assert status.status == "running"
                assert await call_ok(orch, again.handle, HEALTHCHECK, allocation.id) == OkResponse(
                    True
                )
                await stop_through(orch, again.handle, allocation.id, provider)
                with pytest.raises(docker.errors.NotFound):
                    client.containers.get(container)
        finally:
            client.close()
        with pytest.raises(trio.WouldBlock):
            orch.terminations.receive_nowait()


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
async def test_container_removed_or_ended_while_down_is_reported(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """A container removed while the DMS was down is lost; one that exited is reported with
    its real exit code and output."""
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    beats = Beats(orch)
    executor_id = f"test-readopt-{uuid.uuid4().hex[:8]}"
    work = tmp_path / "work"
    async with own_manager(provider, work, executor_id) as (first, crash):
        removed = await allocate(
            provider, orch, "ens-g", docker_service("exec sleep 60"), manager=first, interval=0.2
        )
        await removed.start()
        ended = await allocate(
            provider,
            orch,
            "ens-x",
            docker_service("echo bye; sleep 0.5; exit 3"),
            manager=first,
            interval=0.2,
        )
        await ended.start()
        gone, exits = container_of(first, removed.id), container_of(first, ended.id)
        await crash()
        client = sdk()
        try:
            client.containers.get(gone).remove(force=True)
            with trio.fail_after(10):
                while client.containers.get(exits).status != "exited":
                    await trio.sleep(0.05)
        finally:
            client.close()
        await readopt_and_check(
            provider,
            orch,
            beats,
            work=work,
            executor_id=executor_id,
            removed=removed.id,
            ended=ended.id,
        )


async def readopt_and_check(
    provider: Peer,
    orch: Orchestrator,
    beats: Beats,
    *,
    work: Path,
    executor_id: str,
    removed: str,
    ended: str,
) -> None:
    """The second run of the DMS: the removed container is lost, the exited one reported."""
    async with own_manager(provider, work, executor_id) as (second, _):
        notices: dict[str, TaskTermination] = {}
        with trio.fail_after(10):
            while len(notices) < 2:
                notice = await orch.terminations.receive()
                notices[notice.allocation_id] = notice
        assert notices[removed] == TaskTermination(removed, "failed", LOST, -1, False)
        assert (notices[ended].status, notices[ended].exit_code) == ("failed", 3)
        assert notices[ended].stdout == b"bye\n"
        lost = second.get(removed)
        assert lost is not None and lost.status == "failed"
        sender, _ = await beats.until(lambda b: b.allocation_id == removed and b.status == "failed")
        assert sender == lost.handle
        assert await record_status(provider, ended) == "failed"
        for alloc_id in (removed, ended):
            allocation = second.get(alloc_id)
            assert allocation is not None
            assert (await call_ok(orch, allocation.handle, ALLOCATION_STOP, None)).ok
        await everything_released(provider)
