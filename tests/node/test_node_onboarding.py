"""Onboarding, resources and hardware behaviours between real nodes (Go payload shapes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from tests.actor.actor_sim import User
from tests.node.node_sim import SimNode, make_sim_nodes

from dms.db import Database
from dms.network import MemoryFabric
from dms.node._hello import root_handle
from dms.resources import ResourceManager, Resources, detect_machine

GIB = 1024**3


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "dms.sqlite3") as db:
        yield db


async def call(a: SimNode, b: SimNode, behavior: str, payload: Any = None) -> Any:
    reply = await a.actor.invoke(root_handle(b.peer_id), behavior, payload, timeout=10)
    return reply.decode_payload()


async def pair(
    nursery: trio.Nursery, tmp_path: Path, store: Database
) -> tuple[SimNode, SimNode, Resources]:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    machine = await trio.to_thread.run_sync(lambda: detect_machine(tmp_path, gpus=False))
    b.node.resources = ResourceManager(store, machine)
    return a, b, machine


def ram_share(machine: Resources, share: float) -> int:
    return int(machine.ram.size * share)


async def test_onboard_status_and_books(
    nursery: trio.Nursery, tmp_path: Path, store: Database
) -> None:
    a, b, machine = await pair(nursery, tmp_path, store)
    assert await call(a, b, "/dms/node/onboarding/status") == {"onboarded": False, "error": ""}
    ram = ram_share(machine, 0.15)
    request = {
        "NoGPU": True,
        "GPUs": "",
        "Config": {
            "is_onboarded": True,
            "onboarded_resources": {
                "cpu": {"cores": 1},
                "ram": {"size": ram},
                "disk": {"size": GIB},
            },
        },
    }
    reply = await call(a, b, "/dms/node/onboarding/onboard", request)
    assert list(reply) == ["success", "error", "config"]
    assert reply["success"] is True and reply["error"] == ""
    offered = reply["config"]["onboarded_resources"]
    assert reply["config"]["is_onboarded"] is True
    assert offered["cpu"]["cores"] == 1 and offered["ram"]["size"] == ram
    assert offered["cpu"]["clock_speed"] == machine.cpu.clock_speed
    assert await call(a, b, "/dms/node/onboarding/status") == {"onboarded": True, "error": ""}
    onboarded = await call(a, b, "/dms/node/resources/onboarded")
    assert onboarded == {"Resources": offered, "Error": ""}
    assert (await call(a, b, "/dms/node/resources/free"))["Resources"] == offered
    allocated = await call(a, b, "/dms/node/resources/allocated")
    assert allocated["Error"] == "" and allocated["Resources"]["cpu"]["cores"] == 0
    spec = await call(a, b, "/dms/node/hardware/spec")
    assert spec["Resources"]["ram"]["size"] == machine.ram.size
    usage = await call(a, b, "/dms/node/hardware/usage")
    assert usage["Error"] == "" and usage["Resources"]["ram"]["size"] > 0
    assert await call(a, b, "/dms/node/onboarding/offboard") == {"success": True, "error": ""}
    assert await call(a, b, "/dms/node/onboarding/offboard") == {
        "success": False,
        "error": "the node is not onboarded",
    }
    not_onboarded = await call(a, b, "/dms/node/resources/onboarded")
    assert not_onboarded["Error"] == "the node is not onboarded"


async def test_invalid_onboard_keeps_the_previous_one(
    nursery: trio.Nursery, tmp_path: Path, store: Database
) -> None:
    a, b, machine = await pair(nursery, tmp_path, store)
    simple = {"cpu": 1, "ram": f"{ram_share(machine, 0.12)}B", "disk": "1GiB", "no_gpu": True}
    first = await call(a, b, "/dms/node/onboarding/onboard", simple)
    assert first["success"], first
    for bad, reason in [
        ({**simple, "cpu": 0}, "minimum is 1"),
        ({**simple, "ram": f"{ram_share(machine, 0.95)}B"}, "above the maximum"),
        ({**simple, "disk": 0}, "disk must be more than 0"),
        ({**simple, "no_gpu": False, "gpus": "7:4"}, "no such GPU"),
        ({**simple, "gpus": "nonsense", "no_gpu": False}, "invalid GPU"),
        ({"NoGPU": "yes"}, "NoGPU must be a boolean"),
    ]:
        reply = await call(a, b, "/dms/node/onboarding/onboard", bad)
        assert reply["success"] is False and reason in reply["error"], (bad, reply)
        assert reply["config"] == first["config"]  # the previous onboarding is intact
    assert (await call(a, b, "/dms/node/resources/onboarded"))["Resources"] == first["config"][
        "onboarded_resources"
    ]
    broken = await a.actor.invoke(
        root_handle(b.peer_id), "/dms/node/onboarding/onboard", "not an object", timeout=10
    )
    assert broken.decode_payload()["error"] == "failed to unmarshal"


async def test_without_a_manager_the_behaviours_answer_an_error(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    reply = await call(a, b, "/dms/node/onboarding/onboard", {"cpu": 1})
    assert reply["success"] is False and "not available" in reply["error"]
    assert "not available" in (await call(a, b, "/dms/node/resources/free"))["Error"]


async def test_public_status_reports_the_managers_machine_without_redetecting(
    nursery: trio.Nursery, tmp_path: Path, store: Database
) -> None:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    known = Resources.from_json(
        {
            "cpu": {"cores": 7, "clock_speed": 1e9, "architecture": "amd64"},
            "ram": {"size": GIB},
            "disk": {"size": 2 * GIB},
        }
    )
    b.node.resources = ResourceManager(store, known)
    status = await call(a, b, "/public/status")
    assert status["Status"] == "OK"
    assert status["Resources"]["cpu"]["cores"] == 7 and status["Resources"]["ram"]["size"] == GIB
