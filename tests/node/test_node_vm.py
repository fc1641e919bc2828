"""``/dms/node/vm/{start/custom,list,stop}`` between real nodes, on real QEMU (one boot).

The provider is equipped as the daemon equips one (store, resource manager, allocation manager
on the node's executors), so the VM runs on its ``firecracker``/``vm`` executor. Payloads are
Go's ``CustomVMStartRequest``, ``VMStopRequest`` and ``ListVMResponse``.
"""

from __future__ import annotations

import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import trio
from tests.actor.actor_sim import User, wait_for
from tests.executor.test_vm_run import qemu_pids
from tests.node.node_sim import SimNode, make_deploy_nodes, make_sim_nodes

from dms.actor import DropReason, InvokeTimeout
from dms.executor._vm_guest import Guest, default_guest_dir
from dms.network import MemoryFabric
from dms.node._hello import root_handle
from dms.node._vm import NO_MANAGER, custom_vm_start_payload

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None,
    reason="qemu-system-x86_64 is not installed (scripts/vm-guest.sh installs it)",
)


@pytest.fixture(scope="module")
def guest() -> Path:
    """The default guest the node's vm executor boots (built when missing; a failure fails)."""
    directory = default_guest_dir()
    if Guest.default(directory).missing() is not None:
        subprocess.run([str(REPO / "scripts" / "vm-guest.sh"), str(directory)], check=True)
    return directory


async def call(a: SimNode, b: SimNode, behavior: str, payload: Any = None) -> Any:
    reply = await a.actor.invoke(root_handle(b.peer_id), behavior, payload, timeout=30)
    return reply.decode_payload()


async def pair(nursery: trio.Nursery, tmp_path: Path, stack: ExitStack) -> tuple[SimNode, SimNode]:
    """A user's node ``a`` and an equipped provider ``b`` (not onboarded: VMs need no offer)."""
    a, b = await make_deploy_nodes(
        nursery, MemoryFabric(), User(), tmp_path, stack, cores=[None, None]
    )
    return a, b


def start_request(params: dict[str, Any], *, cores: float = 1, ram_mib: int = 128) -> Any:
    return {
        "Execution": {
            "JobID": "",
            "ExecutionID": "",
            "EngineSpec": {"type": "firecracker", "params": params},
            "Resources": {"cpu": {"cores": cores}, "ram": {"size": ram_mib * MiB}},
        }
    }


@pytest.mark.slow
@needs_qemu
async def test_start_list_stop_a_vm(nursery: trio.Nursery, tmp_path: Path, guest: Path) -> None:
    with ExitStack() as stack:
        a, b = await pair(nursery, tmp_path, stack)
        assert await call(a, b, "/dms/node/vm/list") == {
            "Error": "",
            "VMS": [],
            "ExecutionType": "firecracker",
        }
        payload = custom_vm_start_payload(command="echo vm-is-up; sleep 600", cpu=2, memory_mib=160)
        reply = await call(a, b, "/dms/node/vm/start/custom", payload)
        vm_id = payload["Execution"]["ExecutionID"]
        assert reply == {"Error": "", "ExecutionID": vm_id}

        # It boots and runs its command: the console (the execution's log) says so.
        console = b.work_dir / "executions" / vm_id / "console.log"
        await wait_for(lambda: b"vm-is-up" in console.read_bytes(), timeout=60)
        # The VMM got the request's resources.
        (pid,) = qemu_pids(b.work_dir)
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"-smp") + 1] == b"2"
        assert argv[argv.index(b"-m") + 1] == b"160M"

        listed = await call(a, b, "/dms/node/vm/list")
        assert listed["Error"] == ""
        (item,) = listed["VMS"]
        assert item["ExecutionID"] == vm_id and item["Running"] is True
        assert item["Status"] == "running" and item["Executor"] == "firecracker"
        assert item["CPU"] == 2 and item["Memory"] == 160 * MiB
        assert item["Started"].endswith("Z") and item["Error"] == ""

        # The same ID twice is refused; the first VM is untouched.
        again = await call(a, b, "/dms/node/vm/start/custom", payload)
        assert "already exists" in again["Error"]

        stop = {"ExecutionID": vm_id, "ExecutionType": "firecracker"}
        assert await call(a, b, "/dms/node/vm/stop", stop) == {"Error": ""}
        assert qemu_pids(b.work_dir) == []
        assert not console.parent.exists()
        assert (await call(a, b, "/dms/node/vm/list"))["VMS"] == []
        gone = await call(a, b, "/dms/node/vm/stop", stop)
        assert gone["Error"].startswith(f"no VM '{vm_id}' on this node")


@needs_qemu
async def test_bad_requests_are_answered_without_a_boot(
    nursery: trio.Nursery, tmp_path: Path, guest: Path
) -> None:
    with ExitStack() as stack:
        a, b = await pair(nursery, tmp_path, stack)
        start = "/dms/node/vm/start/custom"
        docker = start_request({"image": "alpine"})
        docker["Execution"]["EngineSpec"]["type"] = "docker"
        assert "is not a VM" in (await call(a, b, start, docker))["Error"]
        # A node serving others does not let a message name files on its host.
        host_path = start_request({"kernel_image": "/etc/passwd", "command": "true"})
        assert "is a path on this host" in (await call(a, b, start, host_path))["Error"]
        tiny = start_request({"command": "true"}, ram_mib=16)
        assert "below the 80 MiB" in (await call(a, b, start, tiny))["Error"]
        huge = start_request({"command": "true"}, cores=100_000)
        assert "cores asked, the machine has" in (await call(a, b, start, huge))["Error"]
        ports = start_request({"command": "true"})
        ports["Execution"]["PortsToBind"] = [{"IP": "", "HostPort": 8080, "ExecutorPort": 80}]
        assert "no network" in (await call(a, b, start, ports))["Error"]
        nothing = start_request({})
        assert "nothing to run" in (await call(a, b, start, nothing))["Error"]
        wrong_type = {"Execution": "x"}
        assert await call(a, b, start, wrong_type) == {
            "Error": "failed to unmarshal",
            "ExecutionID": "",
        }
        docker_stop = {"ExecutionID": "x", "ExecutionType": "docker"}
        assert "not a VM executor" in (await call(a, b, "/dms/node/vm/stop", docker_stop))["Error"]
        assert (await call(a, b, "/dms/node/vm/list"))["VMS"] == []
        assert qemu_pids(b.work_dir) == []


async def test_a_node_without_executors_says_so(nursery: trio.Nursery, tmp_path: Path) -> None:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    reply = await call(a, b, "/dms/node/vm/start/custom", start_request({"command": "true"}))
    assert reply["Error"] == NO_MANAGER
    assert await call(a, b, "/dms/node/vm/list") == {
        "Error": NO_MANAGER,
        "VMS": [],
        "ExecutionType": "firecracker",
    }


async def test_vm_behaviours_need_the_node_capability(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    user, fabric = User(), MemoryFabric()
    (b,) = await make_sim_nodes(nursery, fabric, user, tmp_path, 1)
    (outsider,) = await make_sim_nodes(
        nursery, fabric, user, tmp_path, 1, caps=["/public", "/dms/deployment"]
    )
    for behavior in ("/dms/node/vm/list", "/dms/node/vm/start/custom", "/dms/node/vm/stop"):
        with pytest.raises(InvokeTimeout):
            await outsider.actor.invoke(root_handle(b.peer_id), behavior, {}, timeout=0.5)
    assert b.actor.stats.get(DropReason.UNAUTHORIZED, 0) == 3
