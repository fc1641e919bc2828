"""Wire payloads that keep a deployment alive: health checks, restarts and liveness (spec §2.7,
§2.8, §8 "Supervision").

* ``/dms/actor/healthcheck/register`` (orchestrator → allocation): Go's
  ``RegisterHealthcheckRequest{EnsembleID, HealthCheck}``, answered ``{OK, Error}``.
* ``/dms/actor/healthcheck`` (orchestrator → allocation): the payload is the allocation ID as a
  JSON string; the answer is Go's ``HealthCheckResponse{OK, Error}`` (OK = healthy, Error = why
  not).
* ``/dms/allocation/restart`` (orchestrator → allocation): the allocation ID as a JSON string;
  answered ``{OK, Error}``. The allocation's execution is stopped (if it still runs) and started
  again with the same resources and ports.
* ``/dms/orchestrator/allocation/liveness`` (allocation → orchestrator, a message, no reply):
  the liveness payload of the newest Go DMS (spec §2.8 table: ``allocation_id, status,
  timestamp, sequence_number, health_check_enabled, health{healthy, last_check_time, message,
  check_type}, resource_usage, version "0.1"``). Go names the behaviour
  ``NotifyAllocationLivenessBehavior`` without a known string value; ours is
  :data:`ALLOCATION_LIVENESS`. The sender's handle (the envelope's ``from``) is how an
  orchestrator learns the handle of an allocation its provider re-adopted after a restart.

The heartbeat interval an orchestrator wants rides in the allocate request
(``LivenessInterval``, ns; ours, a Go provider ignores it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dms import gojson
from dms.errors import InvalidInput
from dms.jobs._json import healthcheck_from_json, healthcheck_gojson
from dms.jobs._model import HealthCheck
from dms.jobs._wire import (
    _bool,
    _get,
    _int,
    _loads,
    _obj,
    _str,
)

ALLOCATION_LIVENESS = "/dms/orchestrator/allocation/liveness"

#: Version string of the liveness payload (Go's).
LIVENESS_VERSION = "0.1"
#: Heartbeat interval a provider uses when the orchestrator named none (a Go orchestrator).
DEFAULT_LIVENESS_INTERVAL = 5.0


def allocation_id_payload(data: Any) -> str:
    """The allocation ID a restart or health-check request carries (a JSON string)."""
    value = _loads(data, "allocation ID")
    if not isinstance(value, str) or not value:
        raise InvalidInput("expected the allocation ID as a JSON string")
    return value


@dataclass(frozen=True)
class RegisterHealthcheck:
    """Go ``RegisterHealthcheckRequest{EnsembleID, HealthCheck}``."""

    ensemble_id: str
    check: HealthCheck

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            EnsembleID=self.ensemble_id, HealthCheck=healthcheck_gojson(self.check)
        )

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> RegisterHealthcheck:
        obj = _obj(_loads(data, "health-check registration"), "health-check registration")
        check = healthcheck_from_json(_get(obj, "HealthCheck") or {})
        if check is None:
            raise InvalidInput("health-check registration: HealthCheck has no type")
        return cls(_str(obj, "EnsembleID"), check)


@dataclass(frozen=True)
class AllocationLiveness:
    """One heartbeat of an allocation; times are Unix ns (0 = never)."""

    allocation_id: str
    status: str
    timestamp_ns: int
    sequence: int
    health_check_enabled: bool = False
    healthy: bool = True
    last_check_ns: int = 0
    message: str = ""
    check_type: str = ""

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            allocation_id=self.allocation_id,
            status=self.status,
            timestamp=self.timestamp_ns,
            sequence_number=self.sequence,
            health_check_enabled=self.health_check_enabled,
            health=gojson.Struct(
                healthy=self.healthy,
                last_check_time=self.last_check_ns,
                message=self.message,
                check_type=self.check_type,
            ),
            resource_usage=gojson.Struct(),
            version=LIVENESS_VERSION,
        )

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> AllocationLiveness:
        obj = _obj(_loads(data, "liveness"), "liveness")
        health_value = _get(obj, "health")
        health = _obj(health_value, "liveness health") if health_value is not None else {}
        allocation = _str(obj, "allocation_id")
        if not allocation:
            raise InvalidInput("liveness: allocation_id is empty")
        return cls(
            allocation_id=allocation,
            status=_str(obj, "status"),
            timestamp_ns=_int(obj, "timestamp"),
            sequence=_int(obj, "sequence_number"),
            health_check_enabled=_bool(obj, "health_check_enabled"),
            healthy=_bool(health, "healthy") if "healthy" in health else True,
            last_check_ns=_int(health, "last_check_time"),
            message=_str(health, "message"),
            check_type=_str(health, "check_type"),
        )
