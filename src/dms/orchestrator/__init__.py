"""Deploying ensembles: bidding, matching, two-phase commit, the per-deployment state machine.

Public API (everything else is private):

* matching (:mod:`._matcher`, :mod:`._explain`, :mod:`._geo`): :func:`match` places an
  ensemble's nodes on the providers that bid (:class:`NodeDemand`, :class:`Offer`,
  :class:`Decline`, :class:`DeclineReason`, :class:`Edge`) and returns a
  :class:`Match` with an :class:`Explanation` (:class:`NodeExplanation` per node);
  :func:`locate` / :func:`locate_area` and :func:`rtt_lower_bound_ms` for the speed-of-light
  bound on edge constraints.
* recovery policy (:mod:`._recovery`, pure): :func:`allocation_policy`, :func:`restart_set`,
  :func:`supervision_group`, :func:`node_policy`, :func:`escalation`, the
  :class:`RestartBudget` (backoff and limit) and :class:`SupervisionSettings` (read from the
  config by :func:`supervision_settings`).
"""

from dms.orchestrator._bidding import BiddingSettings

# -- deployments (the orchestrator proper) --
from dms.orchestrator._edge import EDGE_PINGS, EdgeConstraintRequest
from dms.orchestrator._events import EVENT_KINDS, Event, log_event
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
from dms.orchestrator._recovery import (
    DEFAULT_ESCALATION,
    DEFAULT_NODE_POLICY,
    RestartBudget,
    SupervisionSettings,
    allocation_policy,
    escalation,
    healthcheck_interval,
    node_policy,
    restart_set,
    supervision_group,
    supervision_settings,
)
from dms.orchestrator._status import DeploymentStatus

__all__ = [
    "DEADLINE_MARGIN",
    "DEFAULT_ESCALATION",
    "DEFAULT_NODE_POLICY",
    "EDGE_PINGS",
    "EVENT_KINDS",
    "MIN_REQUEST_LIFETIME",
    "Area",
    "BiddingSettings",
    "Decline",
    "DeclineReason",
    "DeploymentStatus",
    "Edge",
    "EdgeConstraintRequest",
    "EnsembleManifest",
    "Event",
    "Explanation",
    "Match",
    "NodeDemand",
    "NodeExplanation",
    "Offer",
    "Orchestrator",
    "OrchestratorSettings",
    "RestartBudget",
    "SupervisionSettings",
    "allocation_policy",
    "escalation",
    "healthcheck_interval",
    "locate",
    "locate_area",
    "log_event",
    "match",
    "node_policy",
    "restart_set",
    "rtt_lower_bound_ms",
    "snapshot_fields",
    "supervision_group",
    "supervision_settings",
]
