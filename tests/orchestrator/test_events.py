"""Deployment events: their JSON (and records written before events had kinds), the log line
each one becomes, and ``/dms/node/deployment/events`` against live and stored deployments on
real nodes over the memory network."""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import trio

from dms import gojson
from dms.db import DeploymentRecord
from dms.node._deployment_control import EVENTS_PAGE
from dms.orchestrator import EVENT_KINDS, DeploymentStatus, Event, log_event
from tests.orchestrator.test_orchestrator_flow import (
    SHUTDOWN,
    World,
    one_per_node,
    service,
    task,
    world,
)

EVENTS = "/dms/node/deployment/events"


# -- the event -------------------------------------------------------------------------------


def test_json_round_trip_leaves_out_empty_fields() -> None:
    full = Event(
        1_700_000_000_123_456_789, "hello1 unhealthy", "allocation", "hello1", "unhealthy", "rc 7"
    )
    wire = json.loads(gojson.marshal(full))
    assert wire == {
        "time": 1_700_000_000_123_456_789,
        "message": "hello1 unhealthy",
        "kind": "allocation",
        "subject": "hello1",
        "status": "unhealthy",
        "reason": "rc 7",
    }
    assert list(wire) == ["time", "message", "kind", "subject", "status", "reason"]
    assert Event.from_json(wire) == full
    bids = Event.now("asking 3 of 3 known providers for bids")
    assert set(json.loads(gojson.marshal(bids))) == {"time", "message", "kind"}
    assert Event.from_json(json.loads(gojson.marshal(bids))) == bids


def test_now_stamps_wall_clock_and_refuses_unknown_kinds() -> None:
    import time

    before = time.time_ns()
    event = Event.now("lost", kind="node", subject="node1", status="lost", reason="no pings")
    assert before <= event.time_ns <= time.time_ns()
    assert (event.kind, event.subject, event.status, event.reason) == (
        "node",
        "node1",
        "lost",
        "no pings",
    )
    assert set(EVENT_KINDS) == {"deployment", "allocation", "node", "progress"}
    with pytest.raises(ValueError, match="unknown event kind"):
        Event.now("x", kind="weather")


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        # What the orchestrator wrote before events had kinds: {time, message} only.
        (
            {"time": 5, "message": "Running: every allocation started"},
            ("deployment", "", "Running", "every allocation started"),
        ),
        ({"time": 5, "message": "Committing"}, ("deployment", "", "Committing", "")),
        (
            {"time": 5, "message": "Failed: cannot be placed: node1: no bids"},
            ("deployment", "", "Failed", "cannot be placed: node1: no bids"),
        ),
        (
            {"time": 5, "message": "allocation hello1 started"},
            ("allocation", "hello1", "started", ""),
        ),
        (
            {"time": 5, "message": "allocation t ended: exit code 3, boom"},
            ("allocation", "t", "ended", "exit code 3, boom"),
        ),
        ({"time": 5, "message": "placement: n on 1234abcd"}, ("progress", "", "", "")),
        ({"time": 5, "message": "Runningish: not a status"}, ("progress", "", "", "")),
        # Lenient: Go-style key case, odd types, a kind a newer DMS may add.
        ({"Time": "7", "Message": "x", "Kind": "weather"}, ("weather", "", "", "")),
        ({"time": 1.5e9, "message": None, "kind": 3}, ("progress", "", "", "")),
    ],
)
def test_old_and_odd_records_decode(stored: dict[str, object], expected: tuple[str, ...]) -> None:
    event = Event.from_json(stored)
    assert (event.kind, event.subject, event.status, event.reason) == expected
    assert event.time_ns in (5, 7, 1_500_000_000)


def test_not_an_object_decodes_as_a_message() -> None:
    assert Event.from_json("just text") == Event(0, "just text", "progress")
    assert Event.from_json(None).message == ""


def test_log_event_writes_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    event = Event(42, "allocation a ended:\nexit code 1", "allocation", "a", "ended", "exit 1")
    with caplog.at_level(logging.INFO, logger="dms.events"):
        log_event("d" * 64, event)
    [record] = [r for r in caplog.records if r.name == "dms.events"]
    line = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s").format(record)
    assert "\n" not in line
    fields = json.loads(line.split("dms.events: ", 1)[1])
    assert fields == {"deployment_id": "d" * 64, **event.to_json()}
    assert next(iter(fields)) == "deployment_id"
    assert record.deployment_id == "d" * 64  # type: ignore[attr-defined]
    assert record.event == event.to_json()  # type: ignore[attr-defined]


# -- /dms/node/deployment/events -------------------------------------------------------------


async def _events(w: World, eid: str, after: int = 0) -> dict[str, Any]:
    return dict(await w.call(EVENTS, {"ID": eid, "After": after}))


def _statuses(events: list[dict[str, Any]]) -> list[str]:
    return [e["status"] for e in events if e["kind"] == "deployment"]


async def test_live_deployment_events_page_by_page(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    w = await world(nursery, tmp_path, stack, [1])
    eid = await w.deploy(one_per_node({"s": service()}))
    await w.reaches(eid, DeploymentStatus.RUNNING)
    first = await _events(w, eid[:10])
    events = first["Events"]
    assert isinstance(events, list)
    assert first["Error"] == "" and first["EnsembleID"] == eid
    assert (first["Status"], first["Ended"], first["Next"]) == ("Running", False, len(events))
    assert _statuses(events) == ["Committing", "Provisioning", "Running"]
    assert {(e["kind"], e.get("subject")) for e in events if e["kind"] == "allocation"} == {
        ("allocation", "s")
    }
    assert all(e["kind"] in EVENT_KINDS and e["time"] > 0 for e in events)
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    # As seen by the orchestrator itself, in the same order.
    assert [e["message"] for e in events] == [e.message for e in w.live(eid).events]
    # Nothing new: an empty page at the same place.
    again = await _events(w, eid, len(events))
    assert (again["Events"], again["Next"], again["Ended"]) == ([], len(events), False)
    assert (await w.call(SHUTDOWN, {"ID": eid}))["OK"] is True
    rest = await _events(w, eid, len(events))
    assert _statuses(rest["Events"]) == ["ShuttingDown", "Completed"]
    assert (rest["Status"], rest["Ended"]) == ("Completed", True)
    assert rest["Next"] == len(w.live(eid).events)
    # Beyond the end: nothing, and Next says where the end is.
    beyond = await _events(w, eid, 10_000)
    assert (beyond["Events"], beyond["Next"], beyond["Ended"]) == ([], rest["Next"], True)


async def test_stored_deployment_answers_as_it_did_live(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    w = await world(nursery, tmp_path, stack, [1])
    eid = await w.deploy(one_per_node({"bad": task(exit_code=3, stdout="boom\n")}))
    await w.ended(eid)
    live = await _events(w, eid)
    assert (live["Status"], live["Ended"]) == ("Failed", True)
    # The DMS forgets the orchestrator (as after a restart): the store answers.
    del w.orch.node.deployments.live[eid]
    stored = await _events(w, eid)
    assert stored == live
    assert str(stored["Reason"]).startswith("allocation bad failed with exit code 3")
    assert _statuses(stored["Events"])[-1] == "Failed"


async def test_old_records_and_long_histories_from_the_store(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    w = await world(nursery, tmp_path, stack, [])
    repo = w.orch.node.deployments.repo
    assert repo is not None
    messages = [f"asking 1 of 1 known providers for bids ({i})" for i in range(EVENTS_PAGE + 10)]
    messages += ["Committing: attempt 1", "allocation t started", "Completed"]
    old = [{"time": 1_000 + i, "message": m} for i, m in enumerate(messages)]
    eid = "e0" * 32
    snapshot = json.dumps({"error": "", "explanation": [], "events": old})
    record = DeploymentRecord("orch-old", eid, "{}", "{}", 7, snapshot)
    await trio.to_thread.run_sync(repo.save, record)
    first = await _events(w, "e0e0")
    assert (len(first["Events"]), first["Next"], first["Ended"]) == (
        EVENTS_PAGE,
        EVENTS_PAGE,
        False,
    )
    assert first["Status"] == "Completed"  # the deployment ended; the reader has not caught up
    rest = await _events(w, eid, EVENTS_PAGE)
    assert (rest["Next"], rest["Ended"]) == (len(messages), True)
    events = rest["Events"]
    assert isinstance(events, list)
    assert [(e["kind"], e.get("subject", ""), e.get("status", "")) for e in events[-3:]] == [
        ("deployment", "", "Committing"),
        ("allocation", "t", "started"),
        ("deployment", "", "Completed"),
    ]
    assert [e["time"] for e in events[-3:]] == [1_000 + len(messages) - k for k in (3, 2, 1)]


async def test_unknown_ids_and_bad_requests_are_one_line_errors(
    nursery: trio.Nursery, tmp_path: Path, stack: ExitStack
) -> None:
    w = await world(nursery, tmp_path, stack, [])
    unknown = await _events(w, "ffff0000")
    assert unknown == {
        "Events": [],
        "Next": 0,
        "Status": "",
        "Ended": False,
        "Error": "no deployment ffff0000",
    }
    assert (await _events(w, ""))["Error"] == "no deployment ID given"
    for after in (-1, "3", True, 1.5):
        reply = await w.call(EVENTS, {"ID": "ffff", "After": after})
        assert reply["Error"] == "After must be a non-negative integer", after
