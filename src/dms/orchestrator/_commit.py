"""Two-phase commit of a placement (spec §8, Go's ``commit.go``).

Phase 1: every node of the placement commits each of its allocations on its provider, all
nodes in parallel (``/dms/deployment/commit``, 3 s per allocation). Any failure reverts every
node that committed (``/dms/deployment/revert``) and names the peers that failed, so the next
attempt excludes them. Phase 2: every node allocates (``/dms/deployment/allocate``, 5 s per
allocation) and answers with the handles of its allocation actors; a failure reverts everything.
Reservations on the provider carry a TTL, so an orchestrator that dies halfway leaks nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import trio

from dms.actor import Actor, Handle
from dms.errors import DMSError
from dms.jobs import (
    DEPLOYMENT_ALLOCATE,
    DEPLOYMENT_COMMIT,
    DEPLOYMENT_REVERT,
    AllocateRequest,
    AllocateResponse,
    AllocationDeploymentConfig,
    CommitRequest,
    Ensemble,
    OkResponse,
    RevertRequest,
)

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_PER_ALLOC = 3.0
ALLOCATE_TIMEOUT_PER_ALLOC = 5.0
REVERT_TIMEOUT = 5.0


class CommitFailed(DMSError):
    """Some providers could not commit or allocate; ``peers`` are the ones to avoid next time.

    ``reverted`` are the providers that were told to revert: they forget their bid for the
    ensemble (as Go's do), so the next round must ask them again rather than reuse it.
    """

    def __init__(self, message: str, peers: set[str], reverted: set[str]) -> None:
        super().__init__(message)
        self.peers = peers
        self.reverted = reverted


@dataclass
class Committed:
    """What the two phases produced: per allocation, the actor handle on its provider and the
    published ports as leased (public -> private; a provider that does not report them, such
    as a Go one, leaves an allocation out)."""

    handles: dict[str, Handle] = field(default_factory=dict)
    ports: dict[str, dict[int, int]] = field(default_factory=dict)


def _port_mapping(ensemble: Ensemble, node: str, alloc: str) -> dict[int, int]:
    return {p.public: p.private for p in ensemble.nodes[node].ports if p.allocation == alloc}


def allocation_config(ensemble: Ensemble, alloc: str) -> AllocationDeploymentConfig:
    """What a provider needs to run ``alloc`` (its provision scripts inlined, in order).

    SSH keys are not sent yet: no executor installs them (the VM executor will).
    """
    config = ensemble.allocations[alloc]
    return AllocationDeploymentConfig(
        type=config.type,
        executor=config.executor,
        resources=config.resources,
        execution=config.execution,
        provision_scripts=tuple((name, ensemble.scripts[name]) for name in config.provision),
        dns_name=config.dns_name,
        depends_on=config.depends_on,
    )


async def _revert(actor: Actor, handle: Handle, ensemble_id: str, allocs: list[str]) -> None:
    try:
        env = actor.message(
            handle,
            DEPLOYMENT_REVERT,
            RevertRequest(ensemble_id, tuple(allocs)),
            timeout=REVERT_TIMEOUT,
        )
        await actor.send(env)
    except DMSError as exc:
        log.info("revert of %s on %s failed: %s", ", ".join(allocs), handle.address.host, exc)


async def revert_all(
    actor: Actor, ensemble_id: str, targets: Mapping[str, tuple[Handle, list[str]]]
) -> None:
    """Revert ``{peer: (root handle, allocations)}`` in parallel (best effort)."""
    async with trio.open_nursery() as nursery:
        for handle, allocs in targets.values():
            nursery.start_soon(_revert, actor, handle, ensemble_id, allocs)


async def two_phase_commit(
    actor: Actor,
    ensemble_id: str,
    *,
    ensemble: Ensemble,
    placement: Mapping[str, str],
    handle_of: Callable[[str], Handle],
    progress: Callable[[str], None],
    liveness_interval_ns: int = 0,
) -> Committed:
    """Commit, then allocate, ``placement`` (ensemble node -> peer); see the module doc."""
    failed: dict[str, str] = {}
    committed: dict[str, tuple[Handle, list[str]]] = {}

    async def commit_node(node: str, peer: str) -> None:
        handle = handle_of(peer)
        allocs = list(ensemble.nodes[node].allocations)
        done: list[str] = []
        try:
            for alloc in allocs:
                request = CommitRequest(
                    ensemble_id=ensemble_id,
                    allocation_name=alloc,
                    node_id=node,
                    resources=ensemble.allocations[alloc].resources,
                    port_mapping=_port_mapping(ensemble, node, alloc),
                )
                reply = await actor.invoke(
                    handle, DEPLOYMENT_COMMIT, request, timeout=COMMIT_TIMEOUT_PER_ALLOC
                )
                answer = OkResponse.from_json(reply.decode_payload())
                if not answer.ok:
                    raise DMSError(answer.error or "commit refused")
                done.append(alloc)
        except DMSError as exc:
            failed[peer] = f"commit of node {node} on {peer}: {exc}"
        finally:
            if done:
                previous = committed.get(peer, (handle, []))[1]
                committed[peer] = (handle, previous + done)

    async def on_every_node(phase: Callable[[str, str], Awaitable[None]]) -> None:
        """Run ``phase`` for every node in parallel; on any failure revert all and raise."""
        async with trio.open_nursery() as nursery:
            for node, peer in placement.items():
                nursery.start_soon(phase, node, peer)
        if failed:
            await revert_all(actor, ensemble_id, committed)
            raise CommitFailed("; ".join(failed.values()), set(failed), set(committed))

    await on_every_node(commit_node)
    count = sum(len(allocs) for _, allocs in committed.values())
    progress(f"committed {count} allocations on {len(committed)} providers")

    result = Committed()

    async def allocate_node(node: str, peer: str) -> None:
        allocs = list(ensemble.nodes[node].allocations)
        request = AllocateRequest(
            ensemble_id=ensemble_id,
            node_id=node,
            allocations={a: allocation_config(ensemble, a) for a in allocs},
            liveness_interval_ns=liveness_interval_ns,
        )
        try:
            reply = await actor.invoke(
                handle_of(peer),
                DEPLOYMENT_ALLOCATE,
                request,
                timeout=ALLOCATE_TIMEOUT_PER_ALLOC * max(1, len(allocs)),
            )
            answer = AllocateResponse.from_json(reply.decode_payload())
            if not answer.ok:
                raise DMSError(answer.error or "allocation refused")
            missing = [a for a in allocs if a not in answer.allocations]
            if missing:
                raise DMSError(f"no handle for {', '.join(missing)}")
            for alloc in allocs:
                result.handles[alloc] = answer.allocations[alloc]
                if alloc in answer.ports:
                    result.ports[alloc] = dict(answer.ports[alloc])
        except DMSError as exc:
            failed[peer] = f"allocation of node {node} on {peer}: {exc}"

    await on_every_node(allocate_node)
    return result
