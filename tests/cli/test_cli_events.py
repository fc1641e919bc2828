"""How ``nunet deployment events`` and ``status`` render what the DMS answered: every field the
reply may carry, and replies from older records that carry few of them."""

from __future__ import annotations

import time

from dms.cli._deploy import allocation_line, event_line

NS = 1_000_000_000


def _local(ns: int, fmt: str) -> str:
    return time.strftime(fmt, time.localtime(ns // NS))


def test_event_line_in_local_time_with_milliseconds() -> None:
    ns = 1_796_288_462 * NS + 123_456_789
    event = {"time": ns, "message": "allocation hello1 started", "kind": "allocation"}
    event["subject"] = "hello1"
    stamp = _local(ns, "%Y-%m-%d %H:%M:%S") + ".123"
    assert event_line(event) == f"{stamp}  allocation  hello1      allocation hello1 started"
    # An old record's event: no kind (progress), no subject, and a missing time stays visible.
    assert event_line({"time": ns, "message": "Running"}).endswith(
        "  progress    -           Running"
    )
    assert event_line({"message": "x"}).startswith("????-??-?? ??:??:??.???  progress")


def test_allocation_line_with_everything() -> None:
    checked = 1_796_288_462 * NS
    alloc = {
        "status": "running",
        "exit_code": None,
        "error": "",
        "node": "node1",
        "peer": "12D3KooWLRHuqbtHG6ePVfSDXy2Z6DR4VNYUa3qg6xfB8ZSZXs5h",
        "restarts": 2,
        "health": {
            "healthy": False,
            "message": "connection refused",
            "time": checked,
            "failures": 3,
        },
    }
    at = _local(checked, "%H:%M:%S")
    assert allocation_line("web", alloc) == (
        f"  web: running on node1 (8ZSZXs5h), 2 restarts, unhealthy at {at} (3 failures): "
        "connection refused"
    )
    healthy = {**alloc, "restarts": 0, "health": {"healthy": True, "message": "", "time": 0}}
    assert allocation_line("web", healthy) == "  web: running on node1 (8ZSZXs5h), healthy"
    failed = {**alloc, "status": "failed", "exit_code": 3, "error": "oom", "restarts": 1}
    del failed["health"]
    assert allocation_line("t", failed) == (
        "  t: failed (exit code 3) on node1 (8ZSZXs5h), 1 restart, error: oom"
    )


def test_allocation_line_from_an_old_record() -> None:
    assert allocation_line("t", {"status": "completed", "exit_code": 0}) == (
        "  t: completed (exit code 0)"
    )
    assert allocation_line("t", {"status": "running", "exit_code": None, "error": ""}) == (
        "  t: running"
    )
    assert allocation_line("t", "garbage") == "  t: ?"
