"""What an ensemble asks of the network, per node: the bid requests and the matcher's demands.

Both are derived from the ensemble once, here, so the request a provider judges and the demand
the matcher checks its answer against can never disagree.
"""

from __future__ import annotations

from dms.jobs import BidRequest, Ensemble, EnsembleBidRequest
from dms.orchestrator._matcher import Edge, NodeDemand


def _privileged(ensemble: Ensemble, node: str) -> bool:
    allocations = ensemble.nodes[node].allocations
    return any(
        bool(ensemble.allocations[a].execution.params.get("privileged")) for a in allocations
    )


def node_demands(ensemble: Ensemble) -> dict[str, NodeDemand]:
    """One :class:`NodeDemand` per ensemble node (aggregate resources, executors, ports...)."""
    demands: dict[str, NodeDemand] = {}
    for name, node in ensemble.nodes.items():
        demands[name] = NodeDemand(
            name=name,
            resources=ensemble.node_resources(name),
            executors=ensemble.node_executors(name),
            accept=tuple(node.location.accept),
            reject=tuple(node.location.reject),
            static_ports=tuple(sorted(p.public for p in node.ports if p.public)),
            dynamic_ports=sum(1 for p in node.ports if not p.public),
            peer=node.peer,
            privileged=_privileged(ensemble, name),
        )
    return demands


def edges_of(ensemble: Ensemble) -> list[Edge]:
    """The ensemble's edge constraints in the matcher's terms."""
    return [Edge(e.s, e.t, rtt_ms=e.rtt, bw_bps=e.bw) for e in ensemble.edges]


def bid_request(
    ensemble_id: str,
    nonce: int,
    *,
    demands: dict[str, NodeDemand],
    ensemble: Ensemble,
    nodes: list[str],
    excluded: frozenset[str],
) -> EnsembleBidRequest:
    """Go's ``EnsembleBidRequest`` for ``nodes`` (with our ``explain`` flag set)."""
    requests = []
    for name in nodes:
        demand = demands[name]
        requests.append(
            BidRequest(
                node_id=name,
                executors=tuple(sorted(demand.executors)),
                resources=demand.resources,
                location=ensemble.nodes[name].location,
                static_ports=demand.static_ports,
                dynamic_ports=demand.dynamic_ports,
                privileged_docker=demand.privileged,
                subnet=ensemble.needs_subnet
                and any(a in ensemble.subnet_members() for a in ensemble.nodes[name].allocations),
            )
        )
    return EnsembleBidRequest(
        id=ensemble_id,
        nonce=nonce,
        requests=tuple(requests),
        peer_exclusion=tuple(sorted(excluded)),
        explain=True,
    )
