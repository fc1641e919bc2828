"""Allocation actors run on the node's executors (the embedded WASM one and null) and report
their end to the orchestrator that deployed them, with their output.

The provider and orchestrator are the real nodes of ``tests/node/test_node_deployment.py``;
here the allocations are created through the :class:`dms.jobs.AllocationManager` directly
after a real commitment, as ``/dms/deployment/allocate`` does.
"""

from __future__ import annotations

import base64
import hashlib
from contextlib import ExitStack
from pathlib import Path

import trio
import wasmtime

from dms.executor import SpecConfig
from dms.jobs import (
    ALLOCATION_LOGS,
    ALLOCATION_START,
    AllocationDeploymentConfig,
    AllocationLogs,
    OkResponse,
    TaskTermination,
    allocation_id,
)
from dms.resources import CPU, RAM, Disk, Resources
from tests.executor import wasm_fixtures as wat
from tests.node.test_node_deployment import MIB, Orchestrator, Peer, world

SMALL = Resources(cpu=CPU(cores=0.25), ram=RAM(size=64 * MIB), disk=Disk(size=MIB))


async def deploy(
    provider: Peer, orch: Orchestrator, ensemble: str, config: AllocationDeploymentConfig
) -> TaskTermination:
    """Commit, allocate, start through the allocation's behaviour; wait for its end report."""
    alloc_id = allocation_id(ensemble, "a")
    await trio.to_thread.run_sync(
        lambda: provider.resources.commit(alloc_id, ensemble, "a", config.resources, 60)
    )
    allocation = await provider.manager.create(ensemble, "a", config, orch.actor.handle, {})
    reply = await orch.actor.invoke(allocation.handle, ALLOCATION_START, None, timeout=10)
    assert OkResponse.from_json(reply.decode_payload()).ok
    with trio.fail_after(20):
        return await orch.terminations.receive()


async def test_wasm_task_runs_and_reports_its_output(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    module = wasmtime.wat2wasm(wat.hello(0))
    execution = SpecConfig(
        "wasm",
        {
            "module": "hello.wasm",
            "module_data": base64.b64encode(module).decode(),
            "sha256": hashlib.sha256(module).hexdigest(),
        },
    )
    config = AllocationDeploymentConfig("task", "wasm", SMALL, execution)
    notice = await deploy(provider, orch, "ens-w", config)
    assert notice == TaskTermination("ens-w_a", "completed", "", 0, False, b"hello\n", b"warn\n")
    record = await trio.to_thread.run_sync(provider.manager.records.get, "ens-w_a")
    assert record is not None and (record.status, record.exit_code) == ("completed", 0)
    allocation = provider.manager.get("ens-w_a")
    assert allocation is not None
    logs = await orch.actor.invoke(allocation.handle, ALLOCATION_LOGS, None, timeout=10)
    assert AllocationLogs.from_json(logs.decode_payload()).stdout == b"hello\n"
    await provider.manager.stop("ens-w_a")
    assert await trio.to_thread.run_sync(provider.resources.allocated) == Resources()


async def test_null_task_failure_reports_exit_code_and_capped_output(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    noisy = "x" * 100_000 + "end\n"
    execution = SpecConfig("null", {"exit_code": 2, "stdout": noisy, "stderr": "bad\n"})
    config = AllocationDeploymentConfig("task", "null", SMALL, execution)
    notice = await deploy(provider, orch, "ens-n", config)
    assert (notice.status, notice.exit_code, notice.killed) == ("failed", 2, False)
    assert len(notice.stdout) == 32 * 1024 and notice.stdout.endswith(b"end\n")
    assert notice.stderr == b"bad\n"


async def test_start_failure_is_recorded_and_answered(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    execution = SpecConfig("null", {"error": "image missing"})
    config = AllocationDeploymentConfig("task", "null", SMALL, execution)
    await trio.to_thread.run_sync(
        lambda: provider.resources.commit("ens-f_a", "ens-f", "a", SMALL, 60)
    )
    allocation = await provider.manager.create("ens-f", "a", config, orch.actor.handle, {})
    reply = await orch.actor.invoke(allocation.handle, ALLOCATION_START, None, timeout=10)
    answer = OkResponse.from_json(reply.decode_payload())
    assert not answer.ok and "image missing" in answer.error
    record = await trio.to_thread.run_sync(provider.manager.records.get, "ens-f_a")
    assert record is not None and record.status == "failed" and "image missing" in record.error


async def test_live_records_claim_their_executions(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """What ``reclaim_leftovers`` keeps after a restart: executions of pending/running records."""
    from dms.executor import ExecutionInfo, ExecutionStatus
    from dms.jobs import AllocationManager

    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    execution = SpecConfig("null", {"duration": 60})
    config = AllocationDeploymentConfig("service", "null", SMALL, execution)
    await trio.to_thread.run_sync(
        lambda: provider.resources.commit("ens-c_a", "ens-c", "a", SMALL, 60)
    )
    allocation = await provider.manager.create("ens-c", "a", config, orch.actor.handle, {})
    await allocation.start()
    live = await trio.to_thread.run_sync(provider.manager.records.live_ids)
    mine = ExecutionInfo("ens-c_a", "ens-c", ExecutionStatus.RUNNING, "docker")
    stray = ExecutionInfo("ens-x_a", "ens-x", ExecutionStatus.RUNNING, "docker")
    assert AllocationManager.claims(mine, live) and not AllocationManager.claims(stray, live)
    await provider.manager.stop("ens-c_a")
    assert await trio.to_thread.run_sync(provider.manager.records.live_ids) == set()
