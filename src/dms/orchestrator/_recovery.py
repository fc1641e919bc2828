"""What to do when part of a deployment fails: the recovery policy, as pure functions.

The supervision loop asks three questions and this module answers them from the ensemble alone
(no I/O, no trio, no clock of its own), so every rule is unit-tested on real ensembles:

* **Which allocations restart** when one fails: :func:`allocation_policy` resolves the
  allocation's effective ``failure_recovery`` (its own; else the strategy of the innermost
  ``supervisor`` group listing it; else ``one_for_one`` for a service, ``stay_down`` for a task)
  and :func:`restart_set` turns it into names, in start order.
* **What happens to a lost node** (its provider went silent): :func:`node_policy`
  (``redeploy`` unless the node says otherwise).
* **What happens when recovery keeps failing**: :class:`RestartBudget` paces restarts with
  exponential backoff and says when an allocation has used up its restarts; then
  :func:`escalation` applies (``teardown`` unless the ensemble says ``redeploy``).

Go declares these values (``AllocationFailureRecovery``, ``NodeFailureRecovery``,
``SupervisorStrategy``, ``EscalationStrategy``) but its supervisor only restarts an allocation
after 3 failed health checks in a row; the semantics here are Erlang/OTP's supervisor strategies
applied to allocations, which is what the names promise.

:class:`SupervisionSettings` holds the timing knobs (heartbeats, health checks, backoff, restart
limit); :func:`supervision_settings` reads them from the ``job`` section of the configuration.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

from dms.config import JobConfig
from dms.errors import InvalidInput, NotFound
from dms.jobs import Ensemble, HealthCheck, SupervisorConfig

__all__ = [
    "DEFAULT_ESCALATION",
    "DEFAULT_NODE_POLICY",
    "RestartBudget",
    "SupervisionSettings",
    "allocation_policy",
    "escalation",
    "healthcheck_interval",
    "node_policy",
    "restart_set",
    "supervision_group",
    "supervision_settings",
]

#: ``supervisor.strategy`` -> the allocation ``failure_recovery`` it stands for.
_STRATEGY_POLICY = {
    "OneForOne": "one_for_one",
    "AllForOne": "one_for_all",
    "RestForOne": "rest_for_one",
}
#: A lost node is placed again elsewhere unless its ``failure_recovery`` says otherwise.
DEFAULT_NODE_POLICY = "redeploy"
#: When restarts are used up: stop the whole deployment (Failed, with the reason), the outcome
#: that never leaves a half-working service behind.
DEFAULT_ESCALATION = "teardown"


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class SupervisionSettings:
    """Timing of supervision (seconds). Defaults suit real deployments; tests shorten them.

    * ``liveness_interval``: the heartbeat period asked of providers; ``liveness_window``: a
      provider silent this long is declared lost (must exceed the interval, so one late beat
      is not a loss).
    * ``healthcheck_interval``: between health checks when the ensemble's check names no
      interval (Go's ``HealthCheckInterval``); ``healthcheck_timeout``: the wait for one check's
      answer (Go's ``HealthCheckTimeout``); ``healthcheck_failures``: failures in a row that
      restart the allocation (Go's 3).
    * ``restart_backoff`` / ``restart_backoff_max``: the backoff of repeated restarts (see
      :class:`RestartBudget`); ``restart_limit`` restarts of one allocation within
      ``restart_window`` are allowed, the next failure escalates (0: escalate at once).
    """

    liveness_interval: float = 5.0
    liveness_window: float = 20.0
    healthcheck_interval: float = 30.0
    healthcheck_timeout: float = 5.0
    healthcheck_failures: int = 3
    restart_backoff: float = 1.0
    restart_backoff_max: float = 60.0
    restart_limit: int = 5
    restart_window: float = 600.0

    def __post_init__(self) -> None:
        problem = _settings_problem(self)
        if problem:
            raise InvalidInput(f"supervision settings: {problem}")


def _settings_problem(s: SupervisionSettings) -> str:
    """The first thing wrong with ``s``, or "" (one line, naming the field)."""
    for f in fields(s):
        value = getattr(s, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{f.name} must be a number, not {value!r}"
        if not math.isfinite(value):
            return f"{f.name} must be finite, not {value!r}"
        if f.name == "restart_limit":
            if value < 0 or value != int(value):
                return f"restart_limit must be a whole number >= 0, not {value!r}"
        elif f.name == "healthcheck_failures":
            if value < 1 or value != int(value):
                return f"healthcheck_failures must be a whole number >= 1, not {value!r}"
        elif value <= 0:
            return f"{f.name} must be positive, not {value!r}"
    if s.liveness_window <= s.liveness_interval:
        return (
            f"liveness_window ({s.liveness_window:g}s) must exceed "
            f"liveness_interval ({s.liveness_interval:g}s)"
        )
    if s.restart_backoff_max < s.restart_backoff:
        return (
            f"restart_backoff_max ({s.restart_backoff_max:g}s) must be at least "
            f"restart_backoff ({s.restart_backoff:g}s)"
        )
    return ""


def supervision_settings(job: JobConfig) -> SupervisionSettings:
    """The supervision settings of a node's configuration (``job.*`` keys).

    The config loader has already checked each value; this adds the checks that relate them
    (raises :class:`~dms.errors.InvalidInput`, one line).
    """
    return SupervisionSettings(
        liveness_interval=job.liveness_interval,
        liveness_window=job.liveness_window,
        healthcheck_interval=job.healthcheck_interval,
        healthcheck_timeout=job.healthcheck_timeout,
        healthcheck_failures=job.healthcheck_failures,
        restart_backoff=job.restart_backoff,
        restart_backoff_max=job.restart_backoff_max,
        restart_limit=job.restart_limit,
        restart_window=job.restart_window,
    )


def healthcheck_interval(check: HealthCheck | None, settings: SupervisionSettings) -> float:
    """Seconds between two runs of ``check``: its own ``interval`` if it gives a positive one,
    else the configured default."""
    if check is not None and check.interval_s is not None and check.interval_s > 0:
        return check.interval_s
    return settings.healthcheck_interval


# --------------------------------------------------------------------------------------------
# policies


def _allocation(ensemble: Ensemble, alloc: str) -> None:
    if alloc not in ensemble.allocations:
        raise NotFound(f"no allocation {alloc!r} in the ensemble")


def _paths(
    group: SupervisorConfig, trail: tuple[SupervisorConfig, ...] = ()
) -> Iterator[tuple[SupervisorConfig, ...]]:
    """Every group of the tree, as its path from the root (depth first, in YAML order)."""
    path = (*trail, group)
    yield path
    for child in group.children:
        yield from _paths(child, path)


def _innermost(ensemble: Ensemble, alloc: str) -> tuple[SupervisorConfig, ...]:
    """Path from the root to the deepest group that lists ``alloc`` (the first such in YAML
    order if several are as deep), or ``()`` when no group lists it."""
    if ensemble.supervisor is None:
        return ()
    best: tuple[SupervisorConfig, ...] = ()
    for path in _paths(ensemble.supervisor):
        if alloc in path[-1].allocations and len(path) > len(best):
            best = path
    return best


def _members(group: SupervisorConfig) -> set[str]:
    """The allocations of ``group`` and of every group nested in it."""
    out = set(group.allocations)
    for child in group.children:
        out |= _members(child)
    return out


def allocation_policy(ensemble: Ensemble, alloc: str) -> str:
    """The effective ``failure_recovery`` of ``alloc``: one of ``stay_down``, ``one_for_one``,
    ``one_for_all``, ``rest_for_one``.

    In order: the allocation's own ``failure_recovery``; else the strategy of the innermost
    ``supervisor`` group listing it (a group without a strategy takes its nearest ancestor's);
    else ``one_for_one`` for a service (long-running: it is kept up) and ``stay_down`` for a
    task (a failed task is a result, reported, not retried). Raises :class:`NotFound`.
    """
    _allocation(ensemble, alloc)
    config = ensemble.allocations[alloc]
    if config.failure_recovery:
        return config.failure_recovery
    for group in reversed(_innermost(ensemble, alloc)):
        if group.strategy in _STRATEGY_POLICY:
            return _STRATEGY_POLICY[group.strategy]
    return "stay_down" if config.type == "task" else "one_for_one"


def supervision_group(ensemble: Ensemble, alloc: str) -> list[str]:
    """The allocations supervised together with ``alloc``, in start order: those of the
    innermost ``supervisor`` group listing it, nested groups included; every allocation of the
    ensemble when no group lists it (the ensemble is the implicit root group)."""
    _allocation(ensemble, alloc)
    path = _innermost(ensemble, alloc)
    members = _members(path[-1]) if path else set(ensemble.allocations)
    return [a for a in ensemble.start_order() if a in members]


def restart_set(ensemble: Ensemble, failed: str) -> list[str]:
    """The allocations to restart when ``failed`` fails, in start order (stop them in reverse).

    By :func:`allocation_policy`: ``stay_down`` -> ``[]``; ``one_for_one`` -> ``[failed]``;
    ``one_for_all`` -> its whole :func:`supervision_group`; ``rest_for_one`` -> ``failed`` and
    the members of its group that start after it. The set is computed from the ensemble alone:
    the caller drops what must not run again (tasks that already completed, allocations of a
    node being redeployed) and counts the restart against ``failed``'s :class:`RestartBudget`.
    Raises :class:`NotFound` for an unknown allocation.
    """
    policy = allocation_policy(ensemble, failed)
    if policy == "stay_down":
        return []
    if policy == "one_for_one":
        return [failed]
    group = supervision_group(ensemble, failed)
    if policy == "one_for_all":
        return group
    return group[group.index(failed) :]


def node_policy(ensemble: Ensemble, node: str) -> str:
    """What to do when ``node``'s provider is lost: its ``failure_recovery`` (``stay_down``,
    ``restart`` on the same provider when it returns, ``redeploy`` elsewhere), by default
    ``redeploy``. Raises :class:`NotFound` for an unknown node."""
    if node not in ensemble.nodes:
        raise NotFound(f"no node {node!r} in the ensemble")
    return ensemble.nodes[node].failure_recovery or DEFAULT_NODE_POLICY


def escalation(ensemble: Ensemble) -> str:
    """What to do when recovery keeps failing: the ensemble's ``escalation_strategy``
    (``redeploy`` the whole ensemble, or ``teardown``), by default ``teardown``."""
    return ensemble.escalation_strategy or DEFAULT_ESCALATION


# --------------------------------------------------------------------------------------------
# restart budget


class RestartBudget:
    """Restarts of each allocation within the sliding ``restart_window``: their pacing and limit.

    Per allocation, the restarts recorded less than ``restart_window`` ago count. With ``n``
    of them:

    * :meth:`next_delay` is ``0`` when ``n == 0`` (a lone failure is repaired at once: this is
      what keeps recovery inside the liveness window), then ``restart_backoff * 2**(n-1)``
      capped at ``restart_backoff_max`` (1 s, 2 s, 4 s, ... with the defaults): crash loops
      slow down;
    * :meth:`exhausted` is true once ``n >= restart_limit``: one more restart would exceed
      the limit, so the caller escalates instead (:func:`escalation`).

    An allocation that stays up for a whole window has its count, and so its backoff, back at
    zero. Not thread-safe and no I/O: one orchestrator's supervision loop owns it. ``clock``
    (monotonic seconds) is used wherever ``now`` is omitted.
    """

    def __init__(
        self, settings: SupervisionSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._restarts: dict[str, deque[float]] = {}
        self._total: dict[str, int] = {}

    def _recent(self, alloc: str, now: float | None) -> deque[float]:
        """``alloc``'s restarts within the window ending at ``now`` (older ones dropped)."""
        at = self._clock() if now is None else now
        times = self._restarts.get(alloc)
        if times is None:
            return deque()
        while times and times[0] <= at - self.settings.restart_window:
            times.popleft()
        return times

    def recent(self, alloc: str, now: float | None = None) -> int:
        """Restarts of ``alloc`` within the window."""
        return len(self._recent(alloc, now))

    def total(self, alloc: str) -> int:
        """Every restart of ``alloc`` recorded (what ``deployment status`` shows)."""
        return self._total.get(alloc, 0)

    def next_delay(self, alloc: str, now: float | None = None) -> float:
        """Seconds to wait before restarting ``alloc`` now (see the class docstring)."""
        n = self.recent(alloc, now)
        if n == 0:
            return 0.0
        s = self.settings
        # min() before the power would overflow on very long crash loops.
        doublings = min(n - 1, 62)
        return min(s.restart_backoff * (2.0**doublings), s.restart_backoff_max)

    def exhausted(self, alloc: str, now: float | None = None) -> bool:
        """True when ``alloc`` has had ``restart_limit`` restarts within the window already."""
        return self.recent(alloc, now) >= self.settings.restart_limit

    def record(self, alloc: str, now: float | None = None) -> None:
        """Count a restart of ``alloc`` (call when it is started again)."""
        at = self._clock() if now is None else now
        self._recent(alloc, at)
        self._restarts.setdefault(alloc, deque()).append(at)
        self._total[alloc] = self._total.get(alloc, 0) + 1

    def reset(self, alloc: str) -> None:
        """Start ``alloc``'s window afresh (it was redeployed, or recovered by escalation);
        its :meth:`total` is kept."""
        self._restarts.pop(alloc, None)
