"""The public behaviours between real nodes: hello, status, broadcast hello, capability refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from tests.actor.actor_sim import User, wait_for
from tests.node.node_sim import SimNode, make_sim_nodes

from dms.actor import DropReason, Envelope, InvokeTimeout
from dms.config import Config
from dms.executor import ExecutorRegistry
from dms.executor._null import NullExecutor
from dms.network import MemoryFabric
from dms.node import location_from_config
from dms.node._hello import root_handle
from dms.resources import Location


async def test_public_hello_returns_the_did(nursery: trio.Nursery, tmp_path: Path) -> None:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    reply = await a.actor.invoke(root_handle(b.peer_id), "/public/hello", timeout=5)
    assert reply.message == b'{"DID":{"uri":"' + b.ctx.did.uri.encode() + b'"}}'
    assert reply.decode_payload() == {"DID": {"uri": b.ctx.did.uri}}
    assert reply.from_.address.host == b.peer_id


async def test_public_status_reports_machine_resources(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    reply = await a.actor.invoke(root_handle(b.peer_id), "/public/status", timeout=10)
    assert reply.message.startswith(b'{"Status":"OK","Resources":{"cpu":{"clock_speed":')
    payload = reply.decode_payload()
    assert list(payload) == ["Status", "Resources", "Location", "Executors", "Subnets"]
    assert payload["Location"] == {}  # no general.host_* set
    # These nodes run no subnet manager, and say so (a daemon gives its node one).
    assert payload["Subnets"] == {"available": False, "reason": "this node runs no subnets"}
    resources = payload["Resources"]
    assert [k for k in resources if k != "gpus"] == ["cpu", "ram", "disk"]
    assert resources["cpu"]["cores"] >= 1
    assert resources["cpu"]["threads"] >= resources["cpu"]["cores"]
    assert resources["cpu"]["architecture"]
    assert resources["ram"]["size"] > 1 << 20
    assert resources["disk"]["size"] > 1 << 20


async def test_public_status_reports_the_configured_location(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    general = {
        "work_dir": str(tmp_path),
        "host_continent": "Africa",
        "host_country": "ET",
        "host_city": " Addis Ababa ",
        "host_asn": 24757,
        "host_isp": "Ethio Telecom",
    }
    b.node.config = Config.model_validate({"general": general})
    reply = await a.actor.invoke(root_handle(b.peer_id), "/public/status", timeout=10)
    assert (
        b'"Location":{"continent":"Africa","country":"ET","city":"Addis Ababa","asn":24757,'
        b'"isp":"Ethio Telecom"},"Executors":['
    ) in reply.message
    located = Location.from_json(reply.decode_payload()["Location"])
    assert located == b.node.location == location_from_config(b.node.config.general)
    assert Location("Africa", "ET").matches(located)
    assert not Location("Africa", "KE").matches(located)


class _NoEngine(NullExecutor):
    name = "docker"

    @classmethod
    def probe(cls) -> str | None:
        return "docker: no engine at unix:///var/run/docker.sock"


async def test_public_status_reports_executors_and_why_not(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    registry = ExecutorRegistry({})
    registry.register(NullExecutor)
    registry.register(_NoEngine)
    b.node.executors = registry
    reply = await a.actor.invoke(root_handle(b.peer_id), "/public/status", timeout=10)
    assert reply.decode_payload()["Executors"] == [
        {"name": "docker", "available": False, "reason": "docker: no engine at unix:///var/run/docker.sock"},
        {"name": "null", "available": True, "reason": ""},
    ]  # fmt: skip
    assert await b.node.executor_refusal("null") is None
    assert await b.node.executor_refusal("docker") == (
        "docker: no engine at unix:///var/run/docker.sock"
    )
    assert await b.node.executor_refusal("vm") == (
        "unknown executor 'vm' (this node has: docker, null)"
    )


def test_location_from_config_reads_every_host_key() -> None:
    config = Config.model_validate(
        {"general": {"host_continent": "Europe", "host_city": "Berlin", "host_isp": "DT"}}
    )
    assert location_from_config(config.general) == Location("Europe", "", "Berlin", 0, "DT")
    assert location_from_config(Config().general).is_empty


async def test_broadcast_hello_is_answered_by_every_other_node(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    a, b, c = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 3)
    replies: list[Envelope] = []

    async def collect(env: Envelope) -> None:
        replies.append(env)

    a.actor.add_behavior("/public/user/7", collect)
    await a.actor.publish("/nunet/hello", "/broadcast/hello", timeout=5, reply_to="/public/user/7")
    await wait_for(lambda: len(replies) == 2)
    assert {r.from_.address.host for r in replies} == {b.peer_id, c.peer_id}
    assert {r.decode_payload()["DID"]["uri"] for r in replies} == {b.ctx.did.uri, c.ctx.did.uri}


async def test_hello_without_capability_gets_no_reply(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    user, fabric = User(), MemoryFabric()
    (b,) = await make_sim_nodes(nursery, fabric, user, tmp_path, 1)
    (outsider,) = await make_sim_nodes(nursery, fabric, user, tmp_path, 1, caps=["/dms"])
    with pytest.raises(InvokeTimeout):
        await outsider.actor.invoke(root_handle(b.peer_id), "/public/hello", timeout=0.5)
    assert b.actor.stats.get(DropReason.UNAUTHORIZED, 0) >= 1
    state = b.node.hello.peers.get(outsider.peer_id)
    assert state is None or not state.hello_in


async def test_status_of_a_node_that_does_not_trust_us_times_out(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fabric = MemoryFabric()
    (a,) = await make_sim_nodes(nursery, fabric, User(), tmp_path, 1)
    (b,) = await make_sim_nodes(nursery, fabric, User(), tmp_path, 1)  # another user's node
    with pytest.raises(InvokeTimeout):
        await a.actor.invoke(root_handle(b.peer_id), "/public/status", timeout=0.5)


def test_sim_node_is_not_started_by_construction(tmp_path: Path) -> None:
    sim = SimNode(MemoryFabric(), tmp_path)
    assert not sim.actor.running
    assert "/nunet/hello" in sim.node.topics
