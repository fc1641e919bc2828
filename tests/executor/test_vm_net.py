"""A VM on its ensemble's subnet, on real QEMU: the VM executor gets a
:class:`~dms.executor.NetworkAttachment` from a real :class:`~dms.subnet.SubnetManager`, whose
router carries the VM's Ethernet frames (``-netdev dgram``) to an allocation's TUN device in a
namespace made here, where busybox ``httpd`` serves.

One boot checks: the guest's ``eth0`` has the allocation's address and the subnet's MTU, its
resolver is the gateway (``search internal``), ``web.internal`` resolves, a small page and a
large one (TCP segmentation offload on the TUN side, cut into segments for the VM) arrive
intact, and the namespace's kernel answers the VM's ping. The command lines without a subnet
stay as they were (no network card at all).

These FAIL, not skip, when ``qemu-system-x86_64`` is installed: the guest is (re)built by
``scripts/vm-guest.sh``, which the network modules need (guest format 3).
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from dms.executor import (
    ExecutionRequest,
    InvalidSpec,
    NetworkAttachment,
    PortBinding,
    SpecConfig,
    Termination,
)
from dms.executor._vm import VmExecutor
from dms.executor._vm_guest import default_guest_dir
from dms.executor._vm_qemu import VmConfig, VmFiles, VmNet, qemu_argv
from dms.network import MemoryFabric, MemoryNetwork
from dms.resources import RAM, Resources
from dms.subnet import Libp2pStreamTransport, SubnetCreate, SubnetManager
from dms.subnet._frames import HOST_SOCKET
from tests.executor.test_vm_run import opened, settings
from tests.subnet.netns_support import can_make_namespaces, namespaces, ns_path

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
SUBNET = "vm-net-test"

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None,
    reason="qemu-system-x86_64 is not installed (scripts/vm-guest.sh installs it)",
)


@pytest.fixture(scope="module")
def guest_dir() -> Path:
    """The default guest, built or rebuilt (format change) by scripts/vm-guest.sh."""
    directory = default_guest_dir()
    subprocess.run(
        [str(REPO / "scripts" / "vm-guest.sh"), str(directory)], check=True, capture_output=True
    )
    return directory


@asynccontextmanager
async def subnet_manager(cidr: ipaddress.IPv4Network) -> AsyncIterator[SubnetManager]:
    net = MemoryNetwork(MemoryFabric(), "provider")
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        transport = Libp2pStreamTransport(net, timeout=5)
        manager = SubnetManager(transport, local_peer=net.host_id, dns_upstream=[])
        await nursery.start(manager.run)
        await manager.create(SubnetCreate(SUBNET, {}, cidr=str(cidr)))
        try:
            yield manager
        finally:
            await manager.destroy(SUBNET)
            await transport.aclose()
            nursery.cancel_scope.cancel()


def web_root(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("hello from web over the subnet\n")
    big = random.Random(5).randbytes(3 * MiB)
    (root / "big.bin").write_bytes(big)
    return root, hashlib.sha256(big).hexdigest()


def test_qemu_gets_a_network_card_only_on_a_subnet(tmp_path: Path) -> None:
    files = VmFiles(tmp_path)
    base = VmConfig("tcg", 1, 128, tmp_path / "k", tmp_path / "i")
    plain = qemu_argv("qemu", base, files, None)
    assert not any("netdev" in arg or "virtio-net" in arg for arg in plain)
    net = VmNet("subnet-vm.sock", HOST_SOCKET, "02:00:0a:01:02:03", 1420)
    argv = qemu_argv(
        "qemu", VmConfig("tcg", 1, 128, tmp_path / "k", tmp_path / "i", net=net), files, None
    )
    netdev = argv[argv.index("-netdev") + 1]
    assert netdev == (
        "dgram,id=net0,local.type=unix,local.path=subnet-vm.sock,"
        "remote.type=unix,remote.path=subnet.sock"
    )
    assert "virtio-net-device,netdev=net0,mac=02:00:0a:01:02:03,host_mtu=1420" in argv


@needs_qemu
async def test_vm_ports_and_frameless_subnets_are_refused(tmp_path: Path, guest_dir: Path) -> None:
    async def never(_: str) -> None:
        raise AssertionError("not for a VM")

    async with opened(tmp_path, guest_dir) as ex:
        ports = ExecutionRequest(
            "j", "ports", SpecConfig("vm", {"command": "true"}), ports=[PortBinding(8080, 80)]
        )
        with pytest.raises(InvalidSpec, match="ports cannot be published"):
            await ex.start(ports)
        frameless = ExecutionRequest(
            "j",
            "frameless",
            SpecConfig("vm", {"command": "true"}),
            network=NetworkAttachment("nnx", "10.1.1.2/24", never),
        )
        with pytest.raises(InvalidSpec, match="cannot carry a VM's frames"):
            await ex.start(frameless)


@needs_qemu
@pytest.mark.slow
@pytest.mark.skipif(not can_make_namespaces(), reason="needs root, /dev/net/tun and ip")
async def test_a_vm_on_the_subnet_resolves_fetches_and_pings(
    tmp_path: Path, guest_dir: Path
) -> None:
    cidr = ipaddress.IPv4Network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
    gateway, ip_web, ip_vm = (str(cidr.network_address + n) for n in (1, 2, 3))
    root, digest = web_root(tmp_path)
    command = (
        "ip -o -4 addr show dev eth0; cat /sys/class/net/eth0/mtu; cat /etc/resolv.conf; "
        "wget -q -O - http://web.internal:8080/index.html; "
        "wget -q -O /tmp/big http://web:8080/big.bin && sha256sum /tmp/big; "
        f"ping -c 1 -W 5 {ip_web} >/dev/null && echo PING-OK"
    )
    with namespaces(1, "vm") as (ns,):
        httpd = subprocess.Popen(
            ["ip", "netns", "exec", ns, "busybox", "httpd", "-f", "-p", "8080",
             "-h", str(root)],
        )  # fmt: skip
        try:
            async with subnet_manager(cidr) as manager:
                manager.accept_peers(SUBNET, {ip_web: manager.local_peer})
                manager.add_records(SUBNET, {"web": ip_web, "vm": ip_vm})
                await manager.attachment(SUBNET, ip_web, "web").attach(ns_path(ns))
                network = manager.attachment(SUBNET, ip_vm, "vm")
                async with opened(tmp_path, guest_dir) as ex:
                    req = ExecutionRequest(
                        job_id="j1",
                        execution_id="netvm",
                        spec=SpecConfig("vm", {"command": command}),
                        resources=Resources(ram=RAM(size=160 * MiB)),
                        gateway_ip=gateway,
                        network=network,
                    )
                    with trio.fail_after(120):
                        result = await ex.run(req)
                    assert result.exit_code == 0, result
                    assert result.termination is Termination.EXITED
                    lines = result.stdout.splitlines()
                    assert f"inet {ip_vm}/24" in lines[0]
                    assert lines[1] == "1420"
                    assert lines[2:4] == [f"nameserver {gateway}", "search internal"]
                    assert lines[4] == "hello from web over the subnet"
                    assert lines[5].split()[0] == digest
                    assert lines[6] == "PING-OK"
                    stats = manager.get(SUBNET).router.stats
                    assert stats.arp_replies >= 1 and stats.dns_queries >= 2
                    assert stats.segmented_packets > 0  # the TUN's offload, cut for the VM
                    socket_file = tmp_path / "work" / "executions" / "netvm" / HOST_SOCKET
                    assert socket_file.exists()
                    await manager.release(SUBNET, ip_vm)
                    assert not socket_file.exists()
        finally:
            httpd.kill()
            httpd.wait()


async def test_a_vm_readopted_after_a_dms_restart_gets_its_network_back(
    tmp_path: Path, guest_dir: Path
) -> None:
    """The DMS goes (its router and the VM's frame socket with it) while the VM runs on; a new
    DMS re-adopts the VM and reattaches it (``reattach_network``): the VM reaches the subnet
    again, without a reboot."""
    cidr = ipaddress.IPv4Network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
    ip_ns, ip_vm = str(cidr.network_address + 2), str(cidr.network_address + 3)
    command = (
        f"while :; do ping -c 1 -W 1 {ip_ns} >/dev/null && echo up || echo down; sleep 0.3; done"
    )
    console = tmp_path / "work" / "executions" / "longvm" / "console.log"

    async def wait_for(text: str, after: int) -> int:
        with trio.fail_after(90):
            while True:
                seen = console.read_text(errors="replace") if console.exists() else ""
                found = seen.find(text, after)
                if found >= 0:
                    return found + len(text)
                await trio.sleep(0.1)

    with namespaces(1, "vmre") as (ns,):
        executor = VmExecutor(settings(tmp_path, guest_dir))
        try:
            async with subnet_manager(cidr) as manager:  # the first DMS
                await manager.attachment(SUBNET, ip_ns, "ns").attach(ns_path(ns))
                async with executor.open():
                    await executor.start(
                        ExecutionRequest(
                            job_id="j1",
                            execution_id="longvm",
                            spec=SpecConfig("vm", {"command": command}),
                            resources=Resources(ram=RAM(size=128 * MiB)),
                            gateway_ip=str(cidr.network_address + 1),
                            network=manager.attachment(SUBNET, ip_vm, "vm"),
                        )
                    )
                    mark = await wait_for("up\n", 0)
            # That DMS is gone (its subnet destroyed, the socket unbound); the VM runs on.
            mark = await wait_for("down\n", mark)
            async with subnet_manager(cidr) as manager:  # the restarted DMS
                await manager.attachment(SUBNET, ip_ns, "ns").attach(ns_path(ns))
                again = VmExecutor(settings(tmp_path, guest_dir))
                async with again.open():
                    adopted = await again.recover()
                    assert [info.execution_id for info in adopted] == ["longvm"]
                    network = manager.attachment(SUBNET, ip_vm, "vm")
                    assert await again.reattach_network("longvm", network)
                    await wait_for("up\n", mark)
                    await again.cancel("longvm")
        finally:  # a fresh executor, as a restarted DMS: it finds and removes any VM left
            cleaner = VmExecutor(settings(tmp_path, guest_dir))
            with trio.fail_after(60):
                async with cleaner.open():
                    await cleaner.cleanup()
