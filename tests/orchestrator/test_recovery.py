"""Recovery policy: failure_recovery resolution, restart sets, node/escalation defaults, the
restart budget (on a fake clock) and the supervision settings and their config keys."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dms.config import Config, JobConfig, load_config
from dms.errors import ConfigError, InvalidInput, NotFound
from dms.jobs import Ensemble, HealthCheck, load_ensemble
from dms.orchestrator import (
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


def ensemble(
    allocs: dict[str, str],
    *,
    nodes: dict[str, list[str]] | None = None,
    top: str = "",
    extra: dict[str, str] | None = None,
) -> Ensemble:
    """A real, validated ensemble. ``allocs``: name -> type (service|task); ``extra``: name ->
    YAML lines added to that allocation (``failure_recovery``, ``depends_on``); ``nodes``
    defaults to one node holding everything; ``top``: YAML appended at the top level."""
    lines = ['version: "V1"', "allocations:"]
    for name, kind in allocs.items():
        lines += [
            f"  {name}:",
            '    executor: "null"',
            f"    type: {kind}",
            "    resources: {cpu: {cores: 0.1}, ram: {size: 16MiB}}",
            '    execution: {type: "null"}',
        ]
        for extra_line in (extra or {}).get(name, "").splitlines():
            lines.append(f"    {extra_line}")
    lines.append("nodes:")
    for node, members in (nodes or {"n1": list(allocs)}).items():
        lines += [f"  {node}:", f"    allocations: [{', '.join(members)}]"]
    return load_ensemble("\n".join(lines) + "\n" + textwrap.dedent(top))


SERVICES = {n: "service" for n in ("a", "b", "c", "d", "e")}

# A two-level tree: the root restarts one at a time, a nested group all together, and a
# group below it in order; "e" is in no group.
TREE = """
supervisor:
  strategy: OneForOne
  allocations: [a]
  children:
    - strategy: AllForOne
      allocations: [b]
      children:
        - strategy: RestForOne
          allocations: [c, d]
"""


# -- allocation_policy --------------------------------------------------------------------------


def test_defaults_without_supervisor_depend_on_type() -> None:
    ens = ensemble({"svc": "service", "job": "task"})
    assert allocation_policy(ens, "svc") == "one_for_one"
    assert allocation_policy(ens, "job") == "stay_down"


def test_innermost_group_strategy_applies() -> None:
    ens = ensemble(SERVICES, top=TREE)
    assert allocation_policy(ens, "a") == "one_for_one"
    assert allocation_policy(ens, "b") == "one_for_all"
    assert allocation_policy(ens, "c") == "rest_for_one"
    assert allocation_policy(ens, "d") == "rest_for_one"
    # Not listed anywhere: the type's default, not the root's strategy.
    assert allocation_policy(ens, "e") == "one_for_one"


def test_own_failure_recovery_wins_over_group_and_type() -> None:
    ens = ensemble(
        {**SERVICES, "t": "task"},
        top=TREE,
        extra={"c": "failure_recovery: stay_down", "t": "failure_recovery: one_for_one"},
    )
    assert allocation_policy(ens, "c") == "stay_down"
    assert allocation_policy(ens, "d") == "rest_for_one"
    assert allocation_policy(ens, "t") == "one_for_one"


def test_task_in_a_group_takes_the_group_strategy() -> None:
    ens = ensemble(
        {"s": "service", "t": "task"},
        top="supervisor: {strategy: AllForOne, allocations: [s, t]}",
    )
    assert allocation_policy(ens, "t") == "one_for_all"


def test_group_without_strategy_inherits_from_ancestor() -> None:
    top = """
    supervisor:
      strategy: RestForOne
      children:
        - allocations: [a, b]
    """
    ens = ensemble({"a": "service", "b": "service"}, top=top)
    assert allocation_policy(ens, "a") == "rest_for_one"


def test_deepest_listing_wins_when_listed_twice() -> None:
    top = """
    supervisor:
      strategy: AllForOne
      allocations: [a, b]
      children:
        - strategy: OneForOne
          allocations: [a]
    """
    ens = ensemble({"a": "service", "b": "service"}, top=top)
    assert allocation_policy(ens, "a") == "one_for_one"
    assert allocation_policy(ens, "b") == "one_for_all"


def test_unknown_allocation_is_not_found() -> None:
    ens = ensemble({"a": "service"})
    for call in (allocation_policy, restart_set, supervision_group):
        with pytest.raises(NotFound, match="'zz'"):
            call(ens, "zz")


# -- restart_set ----------------------------------------------------------------------------


def test_restart_sets_follow_the_tree() -> None:
    ens = ensemble(SERVICES, top=TREE)
    assert restart_set(ens, "a") == ["a"]
    # AllForOne group: its own allocations and the nested group's.
    assert restart_set(ens, "b") == ["b", "c", "d"]
    # RestForOne: the failed one and those after it in its group.
    assert restart_set(ens, "c") == ["c", "d"]
    assert restart_set(ens, "d") == ["d"]
    assert restart_set(ens, "e") == ["e"]


def test_stay_down_restarts_nothing() -> None:
    ens = ensemble({"a": "service", "t": "task"}, extra={"a": "failure_recovery: stay_down"})
    assert restart_set(ens, "a") == []
    assert restart_set(ens, "t") == []


def test_one_for_all_without_tree_is_the_whole_ensemble_in_start_order() -> None:
    # y depends on z: z starts first although listed last.
    ens = ensemble(
        {"x": "service", "y": "service", "z": "task"},
        extra={"x": "failure_recovery: one_for_all", "y": "depends_on: [z]"},
    )
    assert supervision_group(ens, "x") == ["x", "z", "y"]
    assert restart_set(ens, "x") == ["x", "z", "y"]


def test_one_for_all_spans_nodes() -> None:
    ens = ensemble(
        {"web": "service", "db": "service", "other": "service"},
        nodes={"n1": ["web", "other"], "n2": ["db"]},
        top="supervisor: {strategy: AllForOne, allocations: [db, web]}",
    )
    assert restart_set(ens, "db") == ["web", "db"]
    assert restart_set(ens, "other") == ["other"]


def test_rest_for_one_uses_start_order_not_listing_order() -> None:
    # Listed [api, db, cache] in the group, but api depends on db and cache: the start order
    # is db, cache, api, so a failing db takes cache and api with it, a failing api alone.
    ens = ensemble(
        {"api": "service", "db": "service", "cache": "service"},
        extra={"api": "depends_on: [db, cache]"},
        top="supervisor: {strategy: RestForOne, allocations: [api, db, cache]}",
    )
    assert ens.start_order() == ["db", "cache", "api"]
    assert restart_set(ens, "db") == ["db", "cache", "api"]
    assert restart_set(ens, "cache") == ["cache", "api"]
    assert restart_set(ens, "api") == ["api"]


def test_rest_for_one_by_own_policy_in_nested_group() -> None:
    # a's own rest_for_one applies to its innermost group (AllForOne [a] + child [b, c]).
    top = """
    supervisor:
      strategy: OneForOne
      allocations: [z]
      children:
        - strategy: AllForOne
          allocations: [a]
          children: [{strategy: OneForOne, allocations: [b, c]}]
    """
    ens = ensemble(
        {"z": "service", "b": "service", "a": "service", "c": "service"},
        extra={"b": "failure_recovery: rest_for_one"},
        top=top,
    )
    # b's innermost group is the child [b, c].
    assert restart_set(ens, "b") == ["b", "c"]
    # a (AllForOne) restarts its group with the nested one, in start (YAML) order, not z.
    assert restart_set(ens, "a") == ["b", "a", "c"]
    assert restart_set(ens, "z") == ["z"]


# -- nodes and escalation -------------------------------------------------------------------


def test_node_policy_and_escalation_defaults_and_overrides() -> None:
    top = """
    escalation_strategy: redeploy
    """
    ens = ensemble({"a": "service", "b": "service"}, nodes={"n1": ["a"], "n2": ["b"]}, top=top)
    assert node_policy(ens, "n1") == "redeploy"
    assert escalation(ens) == "redeploy"
    plain = ensemble({"a": "service"})
    assert escalation(plain) == "teardown"
    with pytest.raises(NotFound, match="'n9'"):
        node_policy(plain, "n9")


def test_explicit_node_policy() -> None:
    text = """
    version: "V1"
    allocations:
      a: {executor: "null", type: service, resources: {cpu: {cores: 0.1}, ram: {size: 16MiB}},
          execution: {type: "null"}}
      b: {executor: "null", type: service, resources: {cpu: {cores: 0.1}, ram: {size: 16MiB}},
          execution: {type: "null"}}
    nodes:
      n1: {allocations: [a], failure_recovery: stay_down}
      n2: {allocations: [b], failure_recovery: restart}
    """
    ens = load_ensemble(textwrap.dedent(text))
    assert node_policy(ens, "n1") == "stay_down"
    assert node_policy(ens, "n2") == "restart"


def test_policies_survive_the_go_json_round_trip() -> None:
    # The orchestrator restored after a crash has the ensemble back from its stored JSON.
    ens = ensemble(SERVICES, top=TREE, extra={"e": "failure_recovery: one_for_all"})
    back = Ensemble.from_json(ens.to_json())
    for name in SERVICES:
        assert restart_set(back, name) == restart_set(ens, name)


# -- RestartBudget --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_first_restart_immediate_then_doubling_and_capped() -> None:
    settings = SupervisionSettings(
        restart_backoff=1.0, restart_backoff_max=5.0, restart_limit=10, restart_window=600
    )
    clock = FakeClock()
    budget = RestartBudget(settings, clock=clock)
    delays = []
    for _ in range(6):
        delays.append(budget.next_delay("a"))
        budget.record("a")
        clock.now += 1
    assert delays == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert budget.next_delay("b") == 0.0  # per allocation


def test_limit_is_per_window_and_resets_when_old_restarts_age_out() -> None:
    settings = SupervisionSettings(restart_limit=3, restart_window=60)
    budget = RestartBudget(settings, clock=FakeClock())
    for t in (0.0, 10.0, 20.0):
        assert not budget.exhausted("a", now=t)
        budget.record("a", now=t)
    assert budget.exhausted("a", now=21.0)
    assert budget.recent("a", now=21.0) == 3
    # At t=60 the restart at 0 is a window old: one more is allowed again.
    assert not budget.exhausted("a", now=60.0)
    assert budget.next_delay("a", now=60.0) == 2.0  # two recent restarts
    # A whole window without restarts: back to an immediate restart.
    assert budget.next_delay("a", now=81.0) == 0.0
    assert budget.total("a") == 3


def test_zero_limit_escalates_at_once_and_reset_keeps_total() -> None:
    budget = RestartBudget(SupervisionSettings(restart_limit=0))
    assert budget.exhausted("a")
    b2 = RestartBudget(SupervisionSettings(restart_limit=1), clock=FakeClock())
    b2.record("a")
    assert b2.exhausted("a")
    b2.reset("a")
    assert not b2.exhausted("a")
    assert b2.total("a") == 1


def test_huge_restart_counts_do_not_overflow() -> None:
    budget = RestartBudget(
        SupervisionSettings(restart_limit=5000, restart_window=1e9), clock=FakeClock()
    )
    for i in range(2000):
        budget.record("a", now=float(i))
    assert budget.next_delay("a", now=2000.0) == 60.0


# -- settings -------------------------------------------------------------------------------


def test_default_settings_are_go_like() -> None:
    s = SupervisionSettings()
    assert (s.healthcheck_interval, s.healthcheck_timeout, s.healthcheck_failures) == (30, 5, 3)
    assert s.liveness_window > s.liveness_interval


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"liveness_interval": 0}, "liveness_interval must be positive"),
        ({"healthcheck_timeout": -1}, "healthcheck_timeout must be positive"),
        ({"restart_window": float("nan")}, "restart_window must be finite"),
        ({"liveness_interval": 5, "liveness_window": 5}, "liveness_window (5s) must exceed"),
        ({"restart_backoff": 10, "restart_backoff_max": 5}, "restart_backoff_max (5s)"),
        ({"healthcheck_failures": 0}, "healthcheck_failures must be a whole number >= 1"),
        ({"restart_limit": -1}, "restart_limit must be a whole number >= 0"),
        ({"restart_limit": 1.5}, "restart_limit must be a whole number"),
        ({"restart_backoff": "1s"}, "restart_backoff must be a number"),
    ],
)
def test_bad_settings_are_refused_with_one_line(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidInput) as info:
        SupervisionSettings(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_healthcheck_interval_prefers_the_checks_own() -> None:
    s = SupervisionSettings(healthcheck_interval=30)
    assert healthcheck_interval(None, s) == 30
    assert healthcheck_interval(HealthCheck(type="http", endpoint="/"), s) == 30
    assert healthcheck_interval(HealthCheck(type="http", interval_s=0.5), s) == 0.5


# -- config keys ----------------------------------------------------------------------------


def test_config_defaults_give_default_settings() -> None:
    assert supervision_settings(JobConfig()) == SupervisionSettings()


def test_config_accepts_seconds_and_go_durations() -> None:
    job = Config.model_validate(
        {
            "job": {
                "liveness_interval": "500ms",
                "liveness_window": 2,
                "healthcheck_interval": "1m30s",
                "healthcheck_timeout": "2.5",
                "healthcheck_failures": 2,
                "restart_backoff": "250ms",
                "restart_backoff_max": "10s",
                "restart_limit": 0,
                "restart_window": "1h",
            }
        }
    ).job
    assert supervision_settings(job) == SupervisionSettings(
        liveness_interval=0.5,
        liveness_window=2.0,
        healthcheck_interval=90.0,
        healthcheck_timeout=2.5,
        healthcheck_failures=2,
        restart_backoff=0.25,
        restart_backoff_max=10.0,
        restart_limit=0,
        restart_window=3600.0,
    )


@pytest.mark.parametrize(
    ("job", "needles"),
    [
        ({"liveness_window": "soon"}, ["job.liveness_window", "not a number of seconds"]),
        ({"liveness_interval": 0}, ["job.liveness_interval", "greater than 0"]),
        ({"restart_limit": -2}, ["job.restart_limit", "greater than or equal to 0"]),
        ({"healthcheck_failures": 0}, ["job.healthcheck_failures"]),
        ({"restart_window": "inf"}, ["job.restart_window", "finite"]),
        ({"liveness_interval": "30s"}, ["job", "liveness_window (20s) must exceed"]),
        ({"restart_backoff": "2m"}, ["job", "restart_backoff_max (60s) must be at least"]),
    ],
)
def test_bad_config_values_are_refused_with_one_line(
    tmp_path: Path, job: dict[str, object], needles: list[str]
) -> None:
    path = tmp_path / "dms_config.json"
    path.write_text(json.dumps({"job": job}))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"HOME": str(tmp_path)}, cwd=tmp_path)
    msg = str(info.value)
    for needle in [*needles, str(path)]:
        assert needle in msg
    assert "\n" not in msg


def test_config_keys_come_from_the_environment(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "DMS_JOB_LIVENESS_WINDOW": "3s",
        "DMS_JOB_LIVENESS_INTERVAL": "500ms",
        "DMS_JOB_RESTART_LIMIT": "2",
    }
    settings = supervision_settings(load_config(env=env, cwd=tmp_path).job)
    assert (settings.liveness_interval, settings.liveness_window) == (0.5, 3.0)
    assert settings.restart_limit == 2
