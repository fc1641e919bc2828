"""Subnet data path: throughput and added round-trip time between two allocations on two providers.

Two providers are two helper processes (this script with ``--provider``), each a real
``Libp2pNetwork`` on 127.0.0.1 with a packet transport (``udp``, what a DMS uses: a
:class:`~dms.subnet.UdpTransport` over a :class:`~dms.subnet.Libp2pStreamTransport` fallback;
or ``libp2p-stream`` alone) and a :class:`~dms.subnet.SubnetRouter` whose allocation is a TUN
device in a network namespace of its own. Between the two namespaces, in the same run:

* **UDP round trip**: 64-byte datagrams one at a time (median and p99 of N);
* **TCP bulk**: one connection sending as fast as it can for a few seconds (receiver's rate);

over the subnet on each transport with segmentation offload (the default) and without it
(MTU-sized packets only), and over a plain veth pair between two other namespaces (MTU 1420
too) as the baseline. Floors, between the two provider processes: a 64-byte echo on one
reused libp2p stream, and a plain (unsealed) UDP echo. Targets (issue 14, checked on ``udp``
with offload): >= 200 Mbit/s and <= 1 ms added round trip.

    .venv/bin/python bench/bench_subnet.py [--seconds 5] [--rounds 300] [--profile DIR] [--vm]

``--vm`` adds a micro-VM on the subnet (QEMU, KVM or TCG as the probe says; frames over
``-netdev dgram`` to the router): TCP from an allocation's namespace to the VM and back
(busybox ``wget`` of a file from ``httpd`` on the other side), and ``ping`` round trips from
the VM, against the same ``wget`` over the guest's own loopback (the ceiling the emulated CPU
allows) in the same boot. One router in this process, one boot.

Needs root (namespaces, TUN). Everything it makes (namespaces, helper processes) is removed
on exit, Ctrl-C included. ``--profile DIR`` runs py-spy on each provider during the offload
TCP run and writes flame graphs there.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

from tests.subnet.netns_support import namespaces, ns_path, probe_command  # noqa: E402

from bench_common import Helper, cpu_of, loadavg, quantile  # noqa: E402

SUBNET = "bench-subnet"
CIDR = "10.231.7.0/24"
IP_A, IP_B = "10.231.7.2", "10.231.7.3"
VETH_A, VETH_B = "192.168.231.1", "192.168.231.2"
ECHO_PROTOCOL = "/nunet-bench/echo/1.0.0"
PEERS: dict[int, str] = {}  # helper pid -> its peer ID
UECHO_PORTS: dict[int, int] = {}  # helper pid -> its plain UDP echo port


# -- provider helper ------------------------------------------------------------------------
def provider(netns: str, ip: str, offload: bool, transport_name: str) -> None:
    import ipaddress

    import trio

    from bench_common import read_stdin_line
    from dms.crypto import Ed25519PrivateKey
    from dms.network import RawStream
    from dms.network._libp2p import Libp2pNetwork
    from dms.subnet import Libp2pStreamTransport, PacketTransport, SubnetRouter, UdpTransport

    async def udp_echo(sock: trio.socket.SocketType) -> None:
        while True:
            data, source = await sock.recvfrom(2048)
            await sock.sendto(data, source)

    async def main() -> None:
        net = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            transport: PacketTransport = Libp2pStreamTransport(net)
            if transport_name == "udp":
                transport = UdpTransport(net, transport, host="127.0.0.1")
                await nursery.start(transport.run)
            echo_sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await echo_sock.bind(("127.0.0.1", 0))
            nursery.start_soon(udp_echo, echo_sock)
            router = SubnetRouter(
                SUBNET,
                ipaddress.IPv4Network(CIDR),
                transport,
                local_peer=net.host_id,
                offload=offload,
            )
            await nursery.start(router.run)

            async def echo(stream: RawStream) -> None:
                while data := await stream.read():
                    await stream.write(data)

            net.set_stream_handler(ECHO_PROTOCOL, echo)
            print(f"PEER {net.host_id}", flush=True)
            print(f"ADDR {net.listen_addresses()[0]}", flush=True)
            print(f"UECHO {echo_sock.getsockname()[1]}", flush=True)
            while True:
                line = (await read_stdin_line()).split()
                if not line or line[0] == "QUIT":
                    break
                if line[0] == "CONNECT":
                    await net.connect(line[1])
                elif line[0] == "ROUTES":
                    router.add_routes(dict(item.split("=") for item in line[1:]))
                elif line[0] == "ATTACH":
                    name = await router.attach(ip, netns=netns)
                    print(f"ATTACHED {name}", flush=True)
                elif line[0] == "ECHO":  # the libp2p floor: 64 B echo on one reused stream
                    stream = await net.open_stream(line[1], ECHO_PROTOCOL, timeout=10)
                    times = []
                    for _ in range(int(line[2])):
                        start = time.perf_counter()
                        await stream.write(bytes(64))
                        got = b""
                        while len(got) < 64:
                            got += await stream.read()
                        times.append(time.perf_counter() - start)
                    await stream.close()
                    print(f"ECHO {' '.join(f'{t:.6f}' for t in times)}", flush=True)
                elif line[0] == "UECHO":  # the UDP floor: 64 B datagrams, one at a time
                    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
                    await sock.connect(("127.0.0.1", int(line[1])))
                    times = []
                    for _ in range(int(line[2])):
                        start = time.perf_counter()
                        await sock.send(bytes(64))
                        await sock.recv(2048)
                        times.append(time.perf_counter() - start)
                    sock.close()
                    print(f"UECHO {' '.join(f'{t:.6f}' for t in times)}", flush=True)
                elif line[0] == "PATH":
                    peer = line[1]
                    path = (
                        transport.path_to(SUBNET, peer)
                        if isinstance(transport, UdpTransport)
                        else transport.name
                    )
                    print(f"PATH {path}", flush=True)
                elif line[0] == "STATS":
                    s = router.stats
                    print(
                        f"STATS sent={s.sent_packets}/{s.sent_batches} "
                        f"received={s.received_packets}/{s.received_batches} "
                        f"dropped={s.dropped} device_bytes={s.device_bytes}",
                        flush=True,
                    )
            await router.close()
            await transport.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)


# -- measurements ---------------------------------------------------------------------------
def run_probe(ns: str, *args: str, timeout: float = 120) -> str:
    return subprocess.run(
        probe_command(ns, *args), check=True, capture_output=True, text=True, timeout=timeout
    ).stdout


@contextlib.contextmanager
def background(ns: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        probe_command(ns, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError(
                f"probe {args} did not start: {proc.stderr.read() if proc.stderr else ''}"
            )
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def udp_rtt(ns_client: str, ns_server: str, ip: str, rounds: int) -> list[float]:
    with background(ns_server, "udp-echo", ip, "9000"):
        out = run_probe(ns_client, "udp-rtt", ip, "9000", str(rounds))
    values = [float(line.split()[1]) for line in out.splitlines() if line.startswith("RTT")]
    lost = out.count("LOST")
    if lost:
        print(f"  ({lost} of {rounds} datagrams lost)")
    return values


def tcp_rate(ns_client: str, ns_server: str, ip: str, seconds: float) -> float:
    """Megabits per second the receiver saw."""
    with background(ns_server, "tcp-recv", ip, "9001") as server:
        run_probe(ns_client, "tcp-blast", ip, "9001", str(seconds))
        out, _ = server.communicate(timeout=60)
    fields = out.split()
    nbytes, elapsed = int(fields[fields.index("BYTES") + 1]), float(fields[-1])
    return nbytes * 8 / elapsed / 1e6


def setup_veth(ns_a: str, ns_b: str) -> None:
    for cmd in (
        ["ip", "link", "add", "bva", "netns", ns_a, "type", "veth", "peer", "bvb", "netns", ns_b],
        ["ip", "-n", ns_a, "addr", "add", f"{VETH_A}/24", "dev", "bva"],
        ["ip", "-n", ns_b, "addr", "add", f"{VETH_B}/24", "dev", "bvb"],
        ["ip", "-n", ns_a, "link", "set", "bva", "mtu", "1420", "up"],
        ["ip", "-n", ns_b, "link", "set", "bvb", "mtu", "1420", "up"],
    ):
        subprocess.run(cmd, check=True, capture_output=True)


@contextlib.contextmanager
def providers(
    ns_a: str, ns_b: str, offload: bool, transport: str
) -> Iterator[tuple[Helper, Helper]]:
    flag = "1" if offload else "0"
    me = str(Path(__file__).resolve())
    with (
        Helper([me, "--provider", ns_path(ns_a), IP_A, flag, transport]) as a,
        Helper([me, "--provider", ns_path(ns_b), IP_B, flag, transport]) as b,
    ):
        peer_a, peer_b = a.expect("PEER"), b.expect("PEER")
        PEERS.update({a.pid: peer_a, b.pid: peer_b})
        addr_a = a.expect("ADDR")
        b.expect("ADDR")
        a.expect("UECHO")
        UECHO_PORTS[b.pid] = int(b.expect("UECHO"))
        b.tell(f"CONNECT {addr_a}")
        for h in (a, b):
            h.tell(f"ROUTES {IP_A}={peer_a} {IP_B}={peer_b}")
            h.tell("ATTACH")
            h.expect("ATTACHED")
        try:
            yield a, b
        finally:
            for h in (a, b):
                with contextlib.suppress(Exception):
                    h.tell("QUIT")
                    h.process.wait(10)


def measure(
    label: str,
    ns_a: str,
    ns_b: str,
    ip_b: str,
    *,
    args: argparse.Namespace,
    helpers: tuple[Helper, Helper] | None = None,
) -> dict[str, float]:
    run_probe(ns_a, "udp-rtt", ip_b, "9", "1")  # warm-up: opens the subnet streams (no echo)
    path = ""
    if helpers:  # the path in use, both ways, once the warm-up had time to confirm it
        a, b = helpers
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            a.tell(f"PATH {PEERS[b.pid]}")
            b.tell(f"PATH {PEERS[a.pid]}")
            path = f"{a.expect('PATH')}/{b.expect('PATH')}"
            if "libp2p-stream" not in path or "udp" not in label:
                break
            run_probe(ns_a, "udp-rtt", ip_b, "3", "1")
        print(f"  {label}: packets go by {path}")
    values = udp_rtt(ns_a, ns_b, ip_b, args.rounds)
    echo: list[float] = []
    uecho: list[float] = []
    if helpers:
        helpers[0].tell(f"ECHO {PEERS[helpers[1].pid]} {args.rounds}")
        echo = [float(v) for v in helpers[0].expect("ECHO").split()]
        helpers[0].tell(f"UECHO {UECHO_PORTS[helpers[1].pid]} {args.rounds}")
        uecho = [float(v) for v in helpers[0].expect("UECHO").split()]
    cpu_before = [cpu_of(h.pid) for h in helpers] if helpers else []
    spies = []
    if helpers and args.profile and label == "subnet udp (offload)":
        for h, name in zip(helpers, ("a", "b"), strict=True):
            out = Path(args.profile) / f"subnet-provider-{name}.svg"
            spies.append(
                subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "-p",
                        str(h.pid),
                        "-o",
                        str(out),
                        "-d",
                        str(int(args.seconds) + 2),
                        "-r",
                        "200",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    start = time.perf_counter()
    rate = tcp_rate(ns_a, ns_b, ip_b, args.seconds)
    wall = time.perf_counter() - start
    for spy in spies:
        spy.wait(60)
    cpu = [cpu_of(h.pid) - c for h, c in zip(helpers or (), cpu_before, strict=True)]
    result = {
        "rtt_p50": statistics.median(values) * 1e3,
        "rtt_p99": quantile(values, 0.99) * 1e3,
        "mbit": rate,
        "cpu_a": cpu[0] / wall * 100 if cpu else float("nan"),
        "cpu_b": cpu[1] / wall * 100 if cpu else float("nan"),
        "echo_p50": statistics.median(echo) * 1e3 if echo else float("nan"),
        "uecho_p50": statistics.median(uecho) * 1e3 if uecho else float("nan"),
    }
    if helpers:
        for h in helpers:
            h.tell("STATS")
            result.setdefault("stats", 0)
            print(f"  {label} provider {h.expect('STATS')}")
    return result


# -- a VM on the subnet (--vm) ----------------------------------------------------------------
VM_FILE_MIB = 24
#: In the guest: the loopback ceiling, namespace -> VM, ping; then it serves the file on eth0
#: until cancelled (VM -> namespace is the namespace fetching it: busybox httpd's sendfile,
#: not a pipe into nc, whose small copies under TCG measure the emulated CPU, not the path).
VM_SCRIPT = """
up() {{ cut -d' ' -f1 /proc/uptime; }}
mkdir -p /www && dd if=/dev/zero of=/www/f bs=1M count={mib} 2>/dev/null
httpd -p 127.0.0.1:8080 -h /www
a=$(up); wget -q -O /dev/null http://127.0.0.1:8080/f; b=$(up); echo "LOOP $a $b"
a=$(up); wget -q -O /dev/null http://peer.internal:8080/f; b=$(up); echo "IN $a $b"
ping -c {pings} -i 0.2 {ip} | tail -1
exec httpd -f -p {vm}:8080 -h /www
"""


def vm_variant(args: argparse.Namespace) -> dict[str, float]:
    """Figures of a VM on the subnet (see the module docstring)."""
    import ipaddress
    import tempfile

    import trio

    from dms.executor import ExecutionRequest, ExecutorSettings, SpecConfig
    from dms.executor._vm import VmExecutor
    from dms.network import MemoryFabric, MemoryNetwork
    from dms.resources import RAM, Resources
    from dms.subnet import Libp2pStreamTransport, SubnetCreate, SubnetManager

    cidr = ipaddress.IPv4Network(CIDR)
    gateway, ip_peer, ip_vm = (str(cidr.network_address + n) for n in (1, 2, 3))
    mib = VM_FILE_MIB
    script = VM_SCRIPT.format(mib=mib, ip=ip_peer, vm=ip_vm, pings=min(args.rounds, 50))
    out: dict[str, float] = {}

    async def fetch(ns: str) -> float | None:
        """Seconds the namespace takes to fetch the VM's file (None: not served yet)."""
        start = time.perf_counter()
        done = await trio.run_process(
            ["ip", "netns", "exec", ns, "busybox", "wget", "-q", "-O", "/dev/null",
             f"http://{ip_vm}:8080/f"],
            check=False, capture_stderr=True,
        )  # fmt: skip
        return time.perf_counter() - start if done.returncode == 0 else None

    async def run(ns: str, www: Path, work: Path) -> str:
        net = MemoryNetwork(MemoryFabric(), "bench")
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            manager = SubnetManager(Libp2pStreamTransport(net), local_peer=net.host_id)
            await nursery.start(manager.run)
            await manager.create(SubnetCreate(SUBNET, {ip_peer: net.host_id}, cidr=CIDR))
            manager.add_records(SUBNET, {"peer": ip_peer})
            await manager.attachment(SUBNET, ip_peer, "peer").attach(ns_path(ns))
            httpd = subprocess.Popen(
                ["ip", "netns", "exec", ns, "busybox", "httpd", "-f", "-p", "8080", "-h", str(www)]
            )
            try:
                executor = VmExecutor(ExecutorSettings("bench-vm", work))
                async with executor.open():
                    request = ExecutionRequest(
                        "bench",
                        "vm",
                        SpecConfig("vm", {"command": script, "timeout": 300}),
                        resources=Resources(ram=RAM(size=256 << 20)),
                        gateway_ip=gateway,
                        network=manager.attachment(SUBNET, ip_vm, "vm"),
                    )
                    await executor.start(request)
                    out["accel_kvm"] = float(executor.accel == "kvm")
                    with trio.fail_after(240):
                        while await fetch(ns) is None:  # the first fetch also warms up
                            await trio.sleep(0.5)
                    seconds = await fetch(ns)
                    out["out"] = mib * 8 * 1.048576 / (seconds or float("inf"))
                    await executor.cancel("vm")
                    result = await executor.wait("vm")
                    await executor.cleanup()
                stats = manager.get(SUBNET).router.stats
                print(
                    f"  vm router: arp={stats.arp_replies} segmented={stats.segmented_packets} "
                    f"dropped={stats.dropped} local={stats.local_packets}"
                )
            finally:
                httpd.kill()
                httpd.wait()
                await manager.destroy(SUBNET)
                nursery.cancel_scope.cancel()
        return result.stdout

    with namespaces(1, "bm") as (ns,), tempfile.TemporaryDirectory() as tmp:
        www = Path(tmp) / "www"
        www.mkdir()
        (www / "f").write_bytes(bytes(mib << 20))
        text = trio.run(run, ns, www, Path(tmp) / "work")
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in ("LOOP", "IN"):
            seconds = float(fields[2]) - float(fields[1])
            out[fields[0].lower()] = mib * 8 * 1.048576 / max(seconds, 0.01)
        elif line.startswith("round-trip"):
            rtt_min, rtt_avg, rtt_max = line.split("=")[1].split()[0].split("/")
            out.update(rtt_min=float(rtt_min), rtt_avg=float(rtt_avg), rtt_max=float(rtt_max))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--profile", help="directory for py-spy flame graphs")
    parser.add_argument("--vm", action="store_true", help="also a micro-VM on the subnet")
    parser.add_argument("--vm-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--provider", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.provider:
        provider(args.provider[0], args.provider[1], args.provider[2] == "1", args.provider[3])
        return
    if os.geteuid() != 0:
        raise SystemExit("bench_subnet.py needs root (network namespaces and TUN devices)")
    if args.profile:
        if shutil.which("py-spy") is None:
            raise SystemExit("--profile needs py-spy on PATH")
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    print(
        f"loadavg {loadavg()}, {os.cpu_count()} cores; "
        f"TCP {args.seconds:g} s, UDP {args.rounds} rounds"
    )
    if args.vm or args.vm_only:
        vm = vm_variant(args)
        print(
            f"VM on the subnet ({'kvm' if vm.get('accel_kvm') else 'tcg'}): "
            f"namespace -> VM {vm['in']:,.0f} Mbit/s (guest loopback {vm['loop']:,.0f}, "
            f"ratio {vm['in'] / vm['loop']:.2f}), VM -> namespace {vm['out']:,.0f} Mbit/s, "
            f"ping min/avg/max {vm['rtt_min']:.3f}/{vm['rtt_avg']:.3f}/{vm['rtt_max']:.3f} ms"
        )
        if args.vm_only:
            return
    results: dict[str, dict[str, float]] = {}
    with namespaces(2, "bv") as (va, vb):
        setup_veth(va, vb)
        results["veth"] = measure("veth", va, vb, VETH_B, args=args)
    variants = (
        ("subnet udp (offload)", True, "udp"),
        ("subnet libp2p-stream (offload)", True, "libp2p-stream"),
        ("subnet udp (no offload)", False, "udp"),
        ("subnet libp2p-stream (no offload)", False, "libp2p-stream"),
    )
    for label, offload, transport in variants:
        with namespaces(2, "bs") as (sa, sb), providers(sa, sb, offload, transport) as helpers:
            results[label] = measure(label, sa, sb, IP_B, args=args, helpers=helpers)

    base = results["veth"]
    print()
    print(
        "| path | TCP Mbit/s | vs veth | UDP RTT p50 | p99 | added p50 "
        "| libp2p echo p50 | plain UDP echo p50 | provider CPU in TCP (a / b) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in results.items():
        added = r["rtt_p50"] - base["rtt_p50"]
        cpu = "" if label == "veth" else f"{r['cpu_a']:.0f} % / {r['cpu_b']:.0f} %"
        print(
            f"| {label} | {r['mbit']:,.0f} | {r['mbit'] / base['mbit']:.3f} | "
            f"{r['rtt_p50']:.3f} ms | {r['rtt_p99']:.3f} ms | {added:+.3f} ms | "
            f"{'' if label == 'veth' else format(r['echo_p50'], '.3f') + ' ms'} | "
            f"{'' if label == 'veth' else format(r['uecho_p50'], '.3f') + ' ms'} | {cpu} |"
        )
    sub = results["subnet udp (offload)"]  # what a DMS uses
    print()
    print(
        f"targets: throughput {sub['mbit']:,.0f} Mbit/s (>= 200: "
        f"{'met' if sub['mbit'] >= 200 else 'NOT met'}), added RTT "
        f"{sub['rtt_p50'] - base['rtt_p50']:.3f} ms (<= 1 ms: "
        f"{'met' if sub['rtt_p50'] - base['rtt_p50'] <= 1 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
