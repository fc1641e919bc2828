"""Supervision between real nodes on the memory network (null executor): services that end are
restarted by their policy, restarts are bounded, a lost provider's node is placed elsewhere.

Timings are short (heartbeats every 0.1 s, a provider silent for 0.8 s is lost); the world and
its helpers are the deployment flow tests'.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import trio

from dms.jobs import TASK_TERMINATION
from dms.orchestrator import BiddingSettings, DeploymentStatus, OrchestratorSettings
from dms.orchestrator._recovery import SupervisionSettings
from tests.orchestrator.test_orchestrator_flow import (
    World,
    ensemble_yaml,
    one_per_node,
    service,
    task,
    world,
)

SUPERVISED = OrchestratorSettings(
    bidding=BiddingSettings(grace=0.05, quiet=0.2),
    supervision=SupervisionSettings(
        liveness_interval=0.1,
        liveness_window=0.8,
        restart_backoff=0.05,
        restart_backoff_max=0.2,
        restart_limit=3,
        restart_window=60,
    ),
    redeploy_timeout=10,
)


def short_service(seconds: float, cores: float = 0.5, recovery: str = "") -> str:
    text = task(cores, duration=seconds).replace("type: task", "type: service")
    if recovery:
        text = text[:-1] + f", failure_recovery: {recovery}}}"
    return text


async def wait_for(w: World, eid: str, check: object, what: str, timeout: float = 15) -> None:
    orch = w.live(eid)
    with trio.fail_after(timeout):
        while not check():  # type: ignore[operator]
            assert not orch.status.terminal or what == "ended", (orch.status, orch.error)
            await trio.sleep(0.02)


def messages(w: World, eid: str) -> list[str]:
    return [e.message for e in w.live(eid).events]


async def test_service_that_ends_is_restarted_then_given_up_after_the_limit(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """A service whose execution keeps ending is restarted (one_for_one, its default) with
    backoff; past the restart limit the escalation (teardown by default) fails the deployment
    with the reason, and every reservation is released."""
    w = await world(nursery, tmp_path, stack, [1], settings=SUPERVISED)
    before = await w.free(w.providers[0])
    eid = await w.deploy(one_per_node({"a": short_service(0.2)}))
    orch = await w.ended(eid, timeout=20)
    assert orch.status is DeploymentStatus.FAILED
    assert "restarted too often" in orch.error, orch.error
    restarted = [m for m in messages(w, eid) if m == "allocation a restarted"]
    assert len(restarted) == 3, messages(w, eid)
    assert orch.manifest.allocations["a"].restarts == 3
    with trio.fail_after(5):
        while await w.free(w.providers[0]) != before:
            await trio.sleep(0.02)


async def test_stay_down_service_is_not_restarted(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """``failure_recovery: stay_down``: the ended service stays down while its sibling runs;
    the deployment keeps Running until nothing runs."""
    w = await world(nursery, tmp_path, stack, [1, 1], settings=SUPERVISED)
    allocs = {"a": short_service(0.2, 0.75, "stay_down"), "b": service(0.75)}
    eid = await w.deploy(one_per_node(allocs))
    await w.reaches(eid, DeploymentStatus.RUNNING)
    orch = w.live(eid)
    await wait_for(
        w, eid, lambda: any("allocation a stays down" in m for m in messages(w, eid)), "down"
    )
    assert orch.status is DeploymentStatus.RUNNING
    assert orch.manifest.allocations["a"].status == "failed"
    assert orch.manifest.allocations["a"].restarts == 0
    assert orch.manifest.allocations["b"].status == "running"
    orch.request_shutdown()
    await w.ended(eid)


async def test_one_for_all_restarts_the_siblings(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    w = await world(nursery, tmp_path, stack, [1, 1], settings=SUPERVISED)
    allocs = {"a": short_service(0.3, 0.75, "one_for_all"), "b": service(0.75)}
    eid = await w.deploy(one_per_node(allocs))
    await w.reaches(eid, DeploymentStatus.RUNNING)
    orch = w.live(eid)
    await wait_for(w, eid, lambda: orch.manifest.allocations["b"].restarts >= 1, "b restarted")
    assert orch.manifest.allocations["a"].restarts >= 1
    assert orch.status is DeploymentStatus.RUNNING
    orch.request_shutdown()
    await w.ended(eid)


async def test_lost_provider_node_is_redeployed_and_the_stale_copy_stopped(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """The provider hosting the node stops being heard from (cut off from the orchestrator):
    after the liveness window the node is placed on the other provider and started there;
    when the link comes back, the first provider's copy is stopped and its resources freed."""
    w = await world(nursery, tmp_path, stack, [1, 1], settings=SUPERVISED)
    free_before = [await w.free(p) for p in w.providers]
    eid = await w.deploy(one_per_node({"a": service(0.75)}))
    await w.reaches(eid, DeploymentStatus.RUNNING)
    orch = w.live(eid)
    first = orch.manifest.nodes["n-a"].peer
    lost = next(p for p in w.providers if p.peer_id == first)
    other = next(p for p in w.providers if p.peer_id != first)
    w.fabric.partition(w.orch.peer_id, first)
    started = trio.current_time()
    await wait_for(
        w,
        eid,
        lambda: (
            orch.manifest.nodes["n-a"].peer == other.peer_id
            and orch.manifest.allocations["a"].status == "running"
            # counted once the start returned: the allocation's own "running" report may
            # arrive first
            and orch.manifest.allocations["a"].restarts == 1
        ),
        "moved",
    )
    took = trio.current_time() - started
    assert orch.status is DeploymentStatus.RUNNING
    assert took < 0.8 + 3, took
    assert orch.manifest.allocations["a"].restarts == 1
    text = messages(w, eid)
    assert any(m.startswith("node n-a lost: no heartbeat") for m in text), text
    # The link comes back: the stale copy's heartbeats reach the orchestrator, which stops it.
    w.fabric.heal(w.orch.peer_id, first)
    assert lost.manager is not None
    with trio.fail_after(10):
        while (
            lost.manager.allocations()
            or await w.free(lost) != free_before[0]
            or not any("stopped on" in m for m in messages(w, eid))
        ):
            await trio.sleep(0.05)
    orch.request_shutdown()
    await w.ended(eid)
    idx = w.providers.index(other)
    with trio.fail_after(5):
        while await w.free(other) != free_before[idx]:
            await trio.sleep(0.05)


async def test_task_ensemble_still_completes_under_supervision(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    w = await world(nursery, tmp_path, stack, [1], settings=SUPERVISED)
    text = ensemble_yaml({"t": task(0.5, duration=0.2)}, {"n": "{allocations: [t]}"})
    eid = await w.deploy(text)
    orch = await w.ended(eid)
    assert orch.status is DeploymentStatus.COMPLETED, orch.error
    assert not any("restart" in m for m in messages(w, eid))


async def test_escalation_redeploy_moves_the_node_once_then_tears_down(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """``escalation_strategy: redeploy``: when an allocation used up its restarts, its node is
    placed on another provider (once); when it uses them up there too, the deployment is torn
    down with the reason."""
    w = await world(nursery, tmp_path, stack, [1, 1], settings=SUPERVISED)
    text = one_per_node({"a": short_service(0.2, 0.75)}, "escalation_strategy: redeploy\n")
    eid = await w.deploy(text)
    orch = await w.ended(eid, timeout=30)
    assert orch.status is DeploymentStatus.FAILED
    assert "restarted too often" in orch.error and "redeploy" not in orch.error, orch.error
    text_events = messages(w, eid)
    assert sum(m.startswith("node n-a runs again, on") for m in text_events) == 1, text_events
    assert any("escalating: node n-a is placed elsewhere" in m for m in text_events), text_events
    peers = [m for m in text_events if m.startswith("placement: ")]
    assert len(peers) == 2 and peers[0] != peers[1], peers
    for provider in w.providers:
        assert provider.manager is not None
        with trio.fail_after(5):
            while provider.manager.allocations():
                await trio.sleep(0.02)


async def test_lost_node_with_stay_down_gives_its_allocations_up(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """A node whose ``failure_recovery`` is stay_down is not placed again when its provider
    is lost; with nothing left running the deployment fails, saying why."""
    w = await world(nursery, tmp_path, stack, [1, 1], settings=SUPERVISED)
    text = ensemble_yaml(
        {"a": service(0.75)}, {"n-a": "{allocations: [a], failure_recovery: stay_down}"}
    )
    eid = await w.deploy(text)
    await w.reaches(eid, DeploymentStatus.RUNNING)
    orch = w.live(eid)
    w.fabric.partition(w.orch.peer_id, orch.manifest.nodes["n-a"].peer)
    orch = await w.ended(eid)
    assert orch.status is DeploymentStatus.FAILED
    assert "no allocation runs any more" in orch.error, orch.error
    assert not any(m.startswith("placing node n-a again") for m in messages(w, eid))


async def test_an_end_whose_report_is_lost_is_seen_in_the_heartbeats(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    """The orchestrator never receives the service's termination report (dropped here; in life
    lost, or swallowed while a recovery replaced the allocation): the allocation's heartbeats
    say it ended, and it is recovered all the same."""
    w = await world(nursery, tmp_path, stack, [1], settings=SUPERVISED)
    eid = await w.deploy(one_per_node({"a": short_service(0.3)}))
    orch = w.live(eid)
    orch.actor.remove_behavior(TASK_TERMINATION)
    await w.reaches(eid, DeploymentStatus.RUNNING)
    await wait_for(w, eid, lambda: orch.manifest.allocations["a"].restarts >= 1, "restarted")
    text = messages(w, eid)
    assert any("as its heartbeat says (its end was not reported)" in m for m in text), text
    assert orch.status is DeploymentStatus.RUNNING
    orch.request_shutdown()
    await w.ended(eid)
