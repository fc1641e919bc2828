"""Deploying ensembles: bidding, matching, two-phase commit, the per-deployment state machine.

Public API (everything else is private):

* matching (:mod:`._matcher`, :mod:`._explain`, :mod:`._geo`): :func:`match` places an
  ensemble's nodes on the providers that bid (:class:`NodeDemand`, :class:`Offer`,
  :class:`Decline`, :class:`DeclineReason`, :class:`Edge`) and returns a
  :class:`Match` with an :class:`Explanation` (:class:`NodeExplanation` per node);
  :func:`locate` / :func:`locate_area` and :func:`rtt_lower_bound_ms` for the speed-of-light
  bound on edge constraints.
"""

from dms.orchestrator._bidding import BiddingSettings

# -- deployments (the orchestrator proper) --
from dms.orchestrator._edge import EDGE_PINGS, EdgeConstraintRequest
from dms.orchestrator._explain import DeclineReason, Explanation, NodeExplanation
from dms.orchestrator._geo import Area, locate, locate_area, rtt_lower_bound_ms
from dms.orchestrator._manifest import EnsembleManifest
from dms.orchestrator._matcher import (
    Decline,
    Edge,
    Match,
    NodeDemand,
    Offer,
    match,
)
from dms.orchestrator._orchestrator import (
    DEADLINE_MARGIN,
    MIN_REQUEST_LIFETIME,
    Orchestrator,
    OrchestratorSettings,
    snapshot_fields,
)
from dms.orchestrator._status import DeploymentStatus

__all__ = [
    "DEADLINE_MARGIN",
    "EDGE_PINGS",
    "MIN_REQUEST_LIFETIME",
    "Area",
    "BiddingSettings",
    "Decline",
    "DeclineReason",
    "DeploymentStatus",
    "Edge",
    "EdgeConstraintRequest",
    "EnsembleManifest",
    "Explanation",
    "Match",
    "NodeDemand",
    "NodeExplanation",
    "Offer",
    "Orchestrator",
    "OrchestratorSettings",
    "locate",
    "locate_area",
    "match",
    "rtt_lower_bound_ms",
    "snapshot_fields",
]
