"""The provider side of deployments between real nodes on the memory network.

Providers are real :class:`dms.node.Node` actors with a real SQLite store, resource manager,
port allocator and allocation manager (null and WASM executors); the orchestrator is a plain
node actor that speaks the Go payloads. Trust is set up as a user would: the user's DID is a
root everywhere and the user grants each node the capabilities it may present.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
from tests.actor.actor_sim import User

from dms.actor import Actor, Envelope, Handle, InvokeTimeout, SecurityContext
from dms.config import Config
from dms.crypto import Ed25519PrivateKey, peer_id_from_public_key
from dms.db import AllocationRepo, BidRepo, Database
from dms.did import KeyProvider
from dms.executor import ExecutorSettings, SpecConfig
from dms.jobs import (
    ALLOCATION_LOGS,
    ALLOCATION_START,
    ALLOCATION_STATUS,
    ALLOCATION_STOP,
    BID_REQUEST_TOPIC,
    DEPLOYMENT_ALLOCATE,
    DEPLOYMENT_COMMIT,
    DEPLOYMENT_REQUEST,
    DEPLOYMENT_REVERT,
    TASK_TERMINATION,
    AllocateRequest,
    AllocateResponse,
    AllocationDeploymentConfig,
    AllocationLogs,
    AllocationManager,
    AllocationStatus,
    Bid,
    BidDecline,
    BidRequest,
    CommitRequest,
    EnsembleBidRequest,
    LocationConstraints,
    OkResponse,
    RevertRequest,
    TaskTermination,
    allocation_id,
    parse_bid_reply,
)
from dms.network import MemoryFabric, MemoryNetwork
from dms.node import Node
from dms.node._hello import root_handle
from dms.resources import (
    CPU,
    RAM,
    Disk,
    Location,
    PortAllocator,
    ResourceManager,
    Resources,
    detect_machine,
)
from dms.ucan import CapabilityContext

GIB = 1024**3
MIB = 1024**2
HOUR_NS = 3600 * 10**9
PORTS = (41000, 41050)
SLOW_HELLO = (60.0, 60.0)  # the hello exchange is not what these tests are about


class Peer:
    """A node with a store, resource books and an allocation manager (a provider) or not."""

    def __init__(
        self,
        fabric: MemoryFabric,
        work_dir: Path,
        stack: ExitStack,
        *,
        general: dict[str, Any] | None = None,
        job: dict[str, Any] | None = None,
    ) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.key = Ed25519PrivateKey.generate()
        self.peer_id = str(peer_id_from_public_key(self.key.public_key))
        self.net = MemoryNetwork(fabric, self.peer_id)
        self.ctx = CapabilityContext(KeyProvider(self.key))
        config = Config.model_validate(
            {"general": {"work_dir": str(work_dir), **(general or {})}, "job": job or {}}
        )
        self.node = Node(
            self.net,
            SecurityContext(self.key, self.ctx),
            config,
            hello_delay=SLOW_HELLO,
            peer_poll_interval=60,
        )
        self.store = stack.enter_context(Database.open(work_dir / "dms.sqlite3"))
        self.machine = detect_machine(work_dir, gpus=False)
        self.resources = ResourceManager(
            self.store, self.machine, ports=PortAllocator(self.store, *PORTS)
        )
        self.node.resources = self.resources
        settings = ExecutorSettings(executor_id=f"dms-test-{self.peer_id[-8:]}", work_dir=work_dir)
        self.manager = AllocationManager(
            self.node.actor, self.resources, self.store, self.node.executors, settings
        )
        self.node.allocations = self.manager

    @property
    def actor(self) -> Actor:
        return self.node.actor

    @property
    def handle(self) -> Handle:
        return root_handle(self.peer_id)

    def onboard(self, cores: float = 1, ram: int | None = None) -> Resources:
        wanted = Resources(
            cpu=CPU(cores=cores),
            ram=RAM(size=ram or int(self.machine.ram.size * 0.2)),
            disk=Disk(size=GIB),
        )
        return self.resources.onboard(wanted)

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.net.run)
        await nursery.start(self.node.run)
        await nursery.start(self.manager.run)


def grant(user: User, peer: Peer, caps: Sequence[str]) -> None:
    tokens = user.ctx.grant(
        "delegate",
        peer.ctx.did,
        caps=list(caps),
        topics=["/nunet"],
        expire_ns=user.ctx.clock() + HOUR_NS,
    )
    peer.ctx.add_provide(tokens.tokens)


class Orchestrator:
    """A node actor that asks for bids and collects what comes back on its continuation."""

    BIDS = "/dms/deployment/bid"

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.replies_in, self.replies = trio.open_memory_channel[Envelope](100)
        self.terminations_in, self.terminations = trio.open_memory_channel[TaskTermination](10)
        peer.actor.add_behavior(self.BIDS, self._on_bid)
        peer.actor.add_behavior(TASK_TERMINATION, self._on_termination)

    @property
    def actor(self) -> Actor:
        return self.peer.actor

    async def _on_bid(self, env: Envelope) -> None:
        await self.replies_in.send(env)

    async def _on_termination(self, env: Envelope) -> None:
        await self.terminations_in.send(TaskTermination.from_json(env.decode_payload()))

    async def request(self, to: Handle, request: EnsembleBidRequest) -> None:
        await self.actor.send(
            self.actor.message(to, DEPLOYMENT_REQUEST, request, timeout=10, reply_to=self.BIDS)
        )

    async def answers(self, count: int) -> list[Bid | BidDecline]:
        out: list[Bid | BidDecline] = []
        with trio.fail_after(10):
            for _ in range(count):
                out.append(parse_bid_reply((await self.replies.receive()).decode_payload()))
        return out

    async def call(self, to: Handle, behavior: str, payload: Any, timeout: float = 10) -> Any:
        reply = await self.actor.invoke(to, behavior, payload, timeout=timeout)
        return reply.decode_payload()


async def world(
    nursery: trio.Nursery,
    tmp_path: Path,
    stack: ExitStack,
    *,
    orchestrator_caps: Sequence[str] | None = ("/dms/deployment", "/broadcast"),
    general: dict[str, Any] | None = None,
) -> tuple[Peer, Orchestrator, User, MemoryFabric]:
    """One onboarded provider and one orchestrator, both trusting the same user."""
    fabric = MemoryFabric()
    user = User()
    provider = Peer(fabric, tmp_path / "provider", stack, general=general)
    orch = Peer(fabric, tmp_path / "orchestrator", stack)
    for peer in (provider, orch):
        peer.ctx.add_roots([user.did])
    grant(user, provider, ("/dms", "/public", "/broadcast"))
    if orchestrator_caps is not None:
        grant(user, orch, orchestrator_caps)
    provider.onboard()
    orchestrator = Orchestrator(orch)
    await provider.start(nursery)
    await orch.start(nursery)
    return provider, orchestrator, user, fabric


def null_config(**params: Any) -> AllocationDeploymentConfig:
    return AllocationDeploymentConfig(
        type="task",
        executor="null",
        resources=Resources(cpu=CPU(cores=0.5), ram=RAM(size=64 * MIB), disk=Disk(size=MIB)),
        execution=SpecConfig("null", params),
    )


async def bid_for(
    orch: Orchestrator, provider: Peer, ensemble: str, nodes: Sequence[BidRequest]
) -> Bid:
    await orch.request(provider.handle, EnsembleBidRequest(ensemble, 1, tuple(nodes)))
    (answer,) = await orch.answers(1)
    assert isinstance(answer, Bid), answer
    return answer


async def test_explain_bids_and_declines_say_why(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(
        nursery, tmp_path, stack, general={"host_continent": "EU", "host_country": "DE"}
    )
    free = await trio.to_thread.run_sync(provider.resources.free)
    small = Resources(cpu=CPU(cores=0.5), ram=RAM(size=MIB))
    nodes = (
        BidRequest("fits", ("null",), small, static_ports=(PORTS[0],), dynamic_ports=2),
        BidRequest("big", ("null",), Resources(cpu=CPU(cores=64))),
        BidRequest("far", ("null",), small, LocationConstraints(accept=(Location("NA"),))),
        BidRequest("exec", ("nope",), small),
        BidRequest("ports", ("null",), small, static_ports=(80,)),
        BidRequest("also", ("null",), small, LocationConstraints(reject=(Location("NA"),))),
    )
    request = EnsembleBidRequest("ens-1", 7, nodes, explain=True)
    await orch.request(provider.handle, request)
    answers = {a.node_id: a for a in await orch.answers(len(nodes))}
    for name in ("fits", "also"):
        bid = answers[name]
        assert isinstance(bid, Bid) and bid.verify()
        assert bid.peer == provider.peer_id and bid.ensemble_id == "ens-1"
        assert bid.location == Location("EU", "DE") and bid.free == free
        assert bid.handle == provider.actor.handle
    reasons = {n: (a.reason, a.detail) for n, a in answers.items() if isinstance(a, BidDecline)}
    assert (
        reasons["big"][0] == "resources"
        and "CPU cores: 64 requested, 1 available" in (reasons["big"][1])
    )
    assert reasons["far"] == (
        "location",
        "this node is in EU/DE, outside the node's constraints",
    )
    assert reasons["exec"][0] == "executor" and "nope" in reasons["exec"][1]
    assert reasons["ports"][0] == "ports" and "outside the available range" in reasons["ports"][1]
    # One record for the ensemble holds every bid made.
    record = await trio.to_thread.run_sync(BidRepo(provider.store).get, "ens-1")
    assert record is not None and '"Nodes":["fits","also"]' in record.bid
    # The same nonce again (a broadcast copy of a direct request) is not answered twice: a
    # request with a fresh nonce, sent after it, is the next thing answered.
    await orch.request(provider.handle, request)
    await orch.request(provider.handle, replace(request, nonce=request.nonce + 1))
    again = await orch.answers(len(nodes))
    assert {a.node_id for a in again} == {n.node_id for n in nodes}
    with trio.move_on_after(0.3):
        extra = await orch.replies.receive()
        raise AssertionError(f"answered the repeated nonce: {extra.decode_payload()}")


async def test_go_style_one_bid_and_silent_broadcast_on_own_node(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    small = Resources(cpu=CPU(cores=0.5))
    nodes = [BidRequest(f"n{i}", ("null",), small) for i in range(4)]
    nodes.append(BidRequest("big", ("null",), Resources(cpu=CPU(cores=64))))
    # Broadcast without Explain: exactly one bid, for one of the nodes it can host.
    await orch.actor.publish(
        BID_REQUEST_TOPIC,
        DEPLOYMENT_REQUEST,
        EnsembleBidRequest("ens-b", 1, tuple(nodes)),
        timeout=10,
        reply_to=Orchestrator.BIDS,
    )
    (bid,) = await orch.answers(1)
    assert isinstance(bid, Bid) and bid.verify() and bid.node_id.startswith("n")
    # A direct request that cannot be hosted at all is declined per node.
    await orch.request(provider.handle, EnsembleBidRequest("ens-c", 1, (nodes[-1], nodes[-1])))
    declines = await orch.answers(2)
    assert all(isinstance(d, BidDecline) and d.reason == "resources" for d in declines)
    # A node that is not onboarded says so when asked directly.
    await trio.to_thread.run_sync(provider.resources.offboard)
    await orch.request(provider.handle, EnsembleBidRequest("ens-d", 1, (nodes[0],)))
    (off,) = await orch.answers(1)
    assert isinstance(off, BidDecline) and off.reason == "not_onboarded"


async def test_commit_allocate_run_stop_returns_free_to_what_it_was(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    before = await trio.to_thread.run_sync(provider.resources.free)
    config = null_config(duration=0.05, stdout="done\n", exit_code=3)
    await bid_for(orch, provider, "ens-2", [BidRequest("n1", ("null",), config.resources)])
    commit = CommitRequest("ens-2", "a1", "n1", config.resources, {0: 8080})
    assert OkResponse.from_json(await orch.call(provider.handle, DEPLOYMENT_COMMIT, commit)).ok
    alloc_id = allocation_id("ens-2", "a1")
    (public,) = await trio.to_thread.run_sync(provider.resources.ports.ports_of, alloc_id)
    assert PORTS[0] <= public < PORTS[1]
    committed = await trio.to_thread.run_sync(provider.resources.free)
    assert committed.cpu.cores == before.cpu.cores - 0.5
    # Committing the same allocation twice is refused and leaks nothing.
    again = OkResponse.from_json(await orch.call(provider.handle, DEPLOYMENT_COMMIT, commit))
    assert not again.ok and "already committed" in again.error
    assert await trio.to_thread.run_sync(provider.resources.ports.ports_of, alloc_id) == [public]

    allocate = AllocateRequest("ens-2", "n1", {"a1": config})
    reply = AllocateResponse.from_json(
        await orch.call(provider.handle, DEPLOYMENT_ALLOCATE, allocate)
    )
    assert reply.ok, reply.error
    handle = reply.allocations["a1"]
    assert handle.address == provider.actor.handle.address.__class__(provider.peer_id, alloc_id)
    record = await trio.to_thread.run_sync(AllocationRepo(provider.store).get, alloc_id)
    assert record is not None and record.status == "pending"
    allocation = provider.manager.get(alloc_id)
    assert allocation is not None and allocation.ports == {public: 8080}

    started = OkResponse.from_json(await orch.call(handle, ALLOCATION_START, None))
    assert started.ok, started.error
    with trio.fail_after(10):
        notice = await orch.terminations.receive()
    assert notice == TaskTermination(alloc_id, "failed", "", 3, False, b"done\n", b"")
    status = AllocationStatus.from_json(await orch.call(handle, ALLOCATION_STATUS, None))
    assert (status.status, status.exit_code) == ("failed", 3)
    assert status.finished_at >= status.started_at > 0
    logs = AllocationLogs.from_json(await orch.call(handle, ALLOCATION_LOGS, None))
    assert logs.stdout == b"done\n"
    record = await trio.to_thread.run_sync(AllocationRepo(provider.store).get, alloc_id)
    assert record is not None and (record.status, record.exit_code) == ("failed", 3)

    stopped = OkResponse.from_json(await orch.call(handle, ALLOCATION_STOP, None))
    assert stopped.ok, stopped.error
    after = await trio.to_thread.run_sync(provider.resources.free)
    assert after == before
    assert await trio.to_thread.run_sync(provider.resources.ports.leases) == {}
    assert await trio.to_thread.run_sync(AllocationRepo(provider.store).get, alloc_id) is None
    with trio.fail_after(5):
        while provider.manager.get(alloc_id) is not None or allocation.actor.running:
            await trio.sleep(0.01)


async def test_commit_needs_a_live_bid_from_the_same_orchestrator(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, user, fabric = await world(nursery, tmp_path, stack)
    small = Resources(cpu=CPU(cores=0.5))
    commit = CommitRequest("ens-3", "a1", "n1", small, {})
    none = OkResponse.from_json(await orch.call(provider.handle, DEPLOYMENT_COMMIT, commit))
    assert none == OkResponse(False, "no live bid for ensemble ens-3")
    await bid_for(orch, provider, "ens-3", [BidRequest("n1", ("null",), small)])
    other_node = CommitRequest("ens-3", "a1", "n2", small, {})
    wrong = OkResponse.from_json(await orch.call(provider.handle, DEPLOYMENT_COMMIT, other_node))
    assert wrong == OkResponse(False, "no bid for node 'n2' of ensemble ens-3")
    # Another orchestrator, with the same rights, cannot use this one's bid.
    intruder_peer = Peer(fabric, tmp_path / "intruder", stack)
    intruder_peer.ctx.add_roots([user.did])
    grant(user, intruder_peer, ("/dms/deployment",))
    intruder = Orchestrator(intruder_peer)
    await intruder_peer.start(nursery)
    stolen = OkResponse.from_json(await intruder.call(provider.handle, DEPLOYMENT_COMMIT, commit))
    assert stolen == OkResponse(False, "ensemble ens-3 was not requested by this orchestrator")
    assert await trio.to_thread.run_sync(provider.resources.committed) == Resources()
    # Too big for what is free: refused with the shortfall, nothing leased.
    big = CommitRequest("ens-3", "a2", "n1", Resources(cpu=CPU(cores=8)), {0: 80})
    short = OkResponse.from_json(await orch.call(provider.handle, DEPLOYMENT_COMMIT, big))
    assert not short.ok and "CPU cores: 8 requested, 1 available" in short.error
    assert await trio.to_thread.run_sync(provider.resources.ports.leases) == {}


async def test_revert_releases_commitments_and_is_idempotent(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    before = await trio.to_thread.run_sync(provider.resources.free)
    small = Resources(cpu=CPU(cores=0.25))
    await bid_for(orch, provider, "ens-4", [BidRequest("n1", ("null",), small)])
    for name in ("a1", "a2"):
        request = CommitRequest("ens-4", name, "n1", small, {0: 9000})
        assert OkResponse.from_json(await orch.call(provider.handle, DEPLOYMENT_COMMIT, request)).ok
    assert (await trio.to_thread.run_sync(provider.resources.free)).cpu.cores == 0.5
    revert = RevertRequest("ens-4", ("a1", "a2"))
    for _ in range(2):
        reply = OkResponse.from_json(await orch.call(provider.handle, DEPLOYMENT_REVERT, revert))
        assert reply.ok
        assert await trio.to_thread.run_sync(provider.resources.free) == before
        assert await trio.to_thread.run_sync(provider.resources.ports.leases) == {}
    assert await trio.to_thread.run_sync(BidRepo(provider.store).get, "ens-4") is None


async def test_allocate_without_commitment_fails_and_undoes(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack)
    before = await trio.to_thread.run_sync(provider.resources.free)
    config = null_config()
    await bid_for(orch, provider, "ens-5", [BidRequest("n1", ("null",), config.resources)])
    commit = CommitRequest("ens-5", "a1", "n1", config.resources, {})
    assert OkResponse.from_json(await orch.call(provider.handle, DEPLOYMENT_COMMIT, commit)).ok
    allocate = AllocateRequest("ens-5", "n1", {"a1": config, "a2": config})
    reply = AllocateResponse.from_json(
        await orch.call(provider.handle, DEPLOYMENT_ALLOCATE, allocate)
    )
    assert not reply.ok and "no committed resources for allocation ens-5_a2" in reply.error
    assert provider.manager.allocations() == []
    assert await trio.to_thread.run_sync(provider.resources.free) == before
    assert await trio.to_thread.run_sync(AllocationRepo(provider.store).list) == []


async def test_request_without_deployment_capability_is_refused(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, _, _ = await world(nursery, tmp_path, stack, orchestrator_caps=None)
    small = Resources(cpu=CPU(cores=0.5))
    await orch.request(
        provider.handle, EnsembleBidRequest("ens-6", 1, (BidRequest("n1", ("null",), small),))
    )
    commit = CommitRequest("ens-6", "a1", "n1", small, {})
    with pytest.raises(InvokeTimeout):
        await orch.call(provider.handle, DEPLOYMENT_COMMIT, commit, timeout=0.5)
    assert provider.actor.stats.get("unauthorized", 0) >= 2
    assert await trio.to_thread.run_sync(BidRepo(provider.store).get, "ens-6") is None
    assert await trio.to_thread.run_sync(provider.resources.committed) == Resources()


async def test_allocation_obeys_only_its_orchestrator(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    provider, orch, user, fabric = await world(nursery, tmp_path, stack)
    config = null_config(duration=60)
    await bid_for(orch, provider, "ens-7", [BidRequest("n1", ("null",), config.resources)])
    commit = CommitRequest("ens-7", "a1", "n1", config.resources, {})
    assert OkResponse.from_json(await orch.call(provider.handle, DEPLOYMENT_COMMIT, commit)).ok
    allocate = AllocateRequest("ens-7", "n1", {"a1": config})
    handle = AllocateResponse.from_json(
        await orch.call(provider.handle, DEPLOYMENT_ALLOCATE, allocate)
    ).allocations["a1"]
    # A peer holding every /dms capability is still not this allocation's orchestrator.
    other_peer = Peer(fabric, tmp_path / "other", stack)
    other_peer.ctx.add_roots([user.did])
    grant(user, other_peer, ("/dms",))
    other = Orchestrator(other_peer)
    await other_peer.start(nursery)
    refused = OkResponse.from_json(await other.call(handle, ALLOCATION_START, None))
    assert refused == OkResponse(
        False, "only the orchestrator that deployed allocation ens-7_a1 may control it"
    )
    assert provider.manager.get("ens-7_a1").status == "pending"  # type: ignore[union-attr]
    # The orchestrator holds no /dms/allocation capability of its own: the allocation's grant
    # (a require anchor for the orchestrator's DID) is what lets it in.
    started = OkResponse.from_json(await orch.call(handle, ALLOCATION_START, None))
    assert started.ok, started.error
    status = AllocationStatus.from_json(await orch.call(handle, ALLOCATION_STATUS, None))
    assert status.status == "running"
    assert OkResponse.from_json(await orch.call(handle, ALLOCATION_STOP, None)).ok
    assert await trio.to_thread.run_sync(provider.resources.allocated) == Resources()
