"""Ensembles (spec §7): the v1 YAML, its validation, Go's JSON, and running one allocation.

Public API:

* the model: :class:`Ensemble`, :class:`AllocationConfig`, :class:`NodeConfig`,
  :class:`PortConfig`, :class:`LocationConstraints`, :class:`EdgeConstraint`,
  :class:`SupervisorConfig`, :class:`HealthCheck`;
* loading: :func:`load_ensemble` (YAML → a checked :class:`Ensemble`; every problem with its
  path and line in :class:`EnsembleInvalid`, each a :class:`Problem`),
  :meth:`Ensemble.from_json` / :meth:`Ensemble.to_json` (Go's ``EnsembleConfig`` JSON),
  :func:`inline_local_modules` (local WASM modules travel inside the deployment);
* one allocation on this machine: :func:`load_allocation`, :func:`resources_from_yaml`,
  :class:`LocalAllocation`, :func:`run_allocation`, :func:`run_execution`, :class:`LocalRun`,
  :func:`exit_status`.
"""

# -- ensembles (dms.jobs core) -------------------------------------------------------------------
from dms.jobs._inline import MAX_INLINE_MODULE_BYTES, inline_local_modules, load_ensemble_file
from dms.jobs._json import default_executors, ensemble_struct
from dms.jobs._load import LocalAllocation, load_allocation, load_ensemble
from dms.jobs._model import (
    NETWORKED_EXECUTORS,
    AllocationConfig,
    EdgeConstraint,
    Ensemble,
    HealthCheck,
    LocationConstraints,
    NodeConfig,
    PortConfig,
    SupervisorConfig,
)
from dms.jobs._problems import EnsembleInvalid, Problem
from dms.jobs._resources import resources_from_yaml
from dms.jobs._run_local import LocalRun, exit_status, run_allocation, run_execution
from dms.jobs._yaml import MAX_YAML_BYTES

__all__ = [
    "MAX_INLINE_MODULE_BYTES",
    "MAX_YAML_BYTES",
    "NETWORKED_EXECUTORS",
    "AllocationConfig",
    "EdgeConstraint",
    "Ensemble",
    "EnsembleInvalid",
    "HealthCheck",
    "LocalAllocation",
    "LocalRun",
    "LocationConstraints",
    "NodeConfig",
    "PortConfig",
    "Problem",
    "SupervisorConfig",
    "default_executors",
    "ensemble_struct",
    "exit_status",
    "inline_local_modules",
    "load_allocation",
    "load_ensemble",
    "load_ensemble_file",
    "resources_from_yaml",
    "run_allocation",
    "run_execution",
]
# -- end of ensembles; other parts of dms.jobs append their exports below --------------------------

# -- deployments on a provider: wire payloads, allocation actors and their manager -------------
from dms.jobs._allocation import Allocation
from dms.jobs._allocations import AllocationHooks, AllocationManager
from dms.jobs._health import HealthResult
from dms.jobs._json import healthcheck_from_json, healthcheck_gojson
from dms.jobs._wire import (
    ALLOCATION_BEHAVIORS,
    ALLOCATION_LOGS,
    ALLOCATION_RESTART,
    ALLOCATION_START,
    ALLOCATION_STATUS,
    ALLOCATION_STATUSES,
    ALLOCATION_STOP,
    BID_PREFIX,
    BID_REQUEST_TOPIC,
    DECLINE_REASONS,
    DEPLOYMENT_ALLOCATE,
    DEPLOYMENT_BID,
    DEPLOYMENT_COMMIT,
    DEPLOYMENT_REQUEST,
    DEPLOYMENT_REVERT,
    EDGE_CONSTRAINT,
    HEALTHCHECK,
    HEALTHCHECK_REGISTER,
    TASK_TERMINATION,
    AllocateRequest,
    AllocateResponse,
    AllocationDeploymentConfig,
    AllocationKey,
    AllocationLogs,
    AllocationStatus,
    Bid,
    BidDecline,
    BidRequest,
    CommitRequest,
    EnsembleBidRequest,
    OkResponse,
    RevertRequest,
    TaskTermination,
    allocation_id,
    parse_bid_reply,
)
from dms.jobs._wire_supervision import (
    ALLOCATION_LIVENESS,
    DEFAULT_LIVENESS_INTERVAL,
    AllocationLiveness,
    RegisterHealthcheck,
    allocation_id_payload,
)

__all__ += [
    "ALLOCATION_BEHAVIORS",
    # keeping deployments alive: health checks, restarts, liveness
    "ALLOCATION_LIVENESS",
    "ALLOCATION_LOGS",
    "ALLOCATION_RESTART",
    "ALLOCATION_START",
    "ALLOCATION_STATUS",
    "ALLOCATION_STATUSES",
    "ALLOCATION_STOP",
    "BID_PREFIX",
    "BID_REQUEST_TOPIC",
    "DECLINE_REASONS",
    "DEFAULT_LIVENESS_INTERVAL",
    "DEPLOYMENT_ALLOCATE",
    "DEPLOYMENT_BID",
    "DEPLOYMENT_COMMIT",
    "DEPLOYMENT_REQUEST",
    "DEPLOYMENT_REVERT",
    "EDGE_CONSTRAINT",
    "HEALTHCHECK",
    "HEALTHCHECK_REGISTER",
    "TASK_TERMINATION",
    "AllocateRequest",
    "AllocateResponse",
    "Allocation",
    "AllocationDeploymentConfig",
    "AllocationHooks",
    "AllocationKey",
    "AllocationLiveness",
    "AllocationLogs",
    "AllocationManager",
    "AllocationStatus",
    "Bid",
    "BidDecline",
    "BidRequest",
    "CommitRequest",
    "EnsembleBidRequest",
    "HealthResult",
    "OkResponse",
    "RegisterHealthcheck",
    "RevertRequest",
    "TaskTermination",
    "allocation_id",
    "allocation_id_payload",
    "healthcheck_from_json",
    "healthcheck_gojson",
    "parse_bid_reply",
]
