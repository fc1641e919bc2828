"""TCP through a port mapping (``dms.subnet`` ``PortMapper``) against the same transfer direct.

Run: ``python bench/bench_portmap.py`` (about 1 min). Three processes on loopback, so that the
proxy pays only for itself: a server helper (blocking sockets, threads), a proxy helper (one
``PortMapper`` in trio, as in the DMS, mapping 127.0.0.1:<dynamic> -> the server) and this
process as the client (blocking sockets). Every variant runs direct to the server and through
the mapping, alternated, ``--rounds`` times; the table shows medians and the ratio.

* upload: the client sends ``--mib`` MiB and half-closes; the server counts to EOF and answers
  with the count (so the time includes the half-close crossing the proxy);
* download: the server sends ``--mib`` MiB and closes;
* 4 parallel uploads: aggregate rate of four connections at once;
* round trip: 64-byte ping-pong on one connection (p50/p99 of 2,000), i.e. the added latency;
* connect: a new connection + one 1-byte round trip (the proxy dials the destination per
  connection).

CPU = CPU seconds of the proxy process per GiB moved (the figure that scales with traffic).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import Helper, cpu_of, loadavg, quantile

HOST = "127.0.0.1"
CHUNK = 1 << 20


# -- server helper (blocking sockets, one thread per connection) ---------------------------------


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("EOF")
        buf += chunk
    return bytes(buf)


def _serve_one(conn: socket.socket) -> None:
    with conn:
        mode = _recv_exactly(conn, 1)
        if mode == b"U":  # sink until EOF, answer with the count
            buf = bytearray(CHUNK)
            total = 0
            while n := conn.recv_into(buf):
                total += n
            conn.sendall(struct.pack("<Q", total))
        elif mode == b"D":  # send N bytes and close
            (total,) = struct.unpack("<Q", _recv_exactly(conn, 8))
            view = memoryview(bytes(CHUNK))
            while total > 0:
                total -= conn.send(view[: min(total, CHUNK)])
        elif mode == b"E":  # echo until EOF
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(65536):
                conn.sendall(data)


def serve() -> None:
    listener = socket.create_server((HOST, 0), backlog=256)
    print("PORT", listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()


# -- proxy helper -------------------------------------------------------------------------------


def proxy(dest_port: int, buffer_size: int, zero_copy: bool) -> None:
    import trio

    from bench_common import read_stdin_line
    from dms.subnet._portmap import PortMapper

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            mapper = PortMapper(nursery, buffer_size=buffer_size, zero_copy=zero_copy)
            port = await mapper.map("TCP", HOST, 0, HOST, dest_port)
            print("PORT", port, flush=True)
            await read_stdin_line()  # any line (or EOF) ends it
            await mapper.close()

    trio.run(main)


# -- client (this process) ----------------------------------------------------------------------


def _connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port))


def upload(port: int, size: int) -> float:
    """Seconds to send ``size`` bytes and get the server's count back."""
    view = memoryview(bytes(CHUNK))
    start = time.perf_counter()
    with _connect(port) as s:
        s.sendall(b"U")
        left = size
        while left > 0:
            left -= s.send(view[: min(left, CHUNK)])
        s.shutdown(socket.SHUT_WR)
        (got,) = struct.unpack("<Q", _recv_exactly(s, 8))
    elapsed = time.perf_counter() - start
    assert got == size, (got, size)
    return elapsed


def download(port: int, size: int) -> float:
    buf = bytearray(CHUNK)
    start = time.perf_counter()
    with _connect(port) as s:
        s.sendall(b"D" + struct.pack("<Q", size))
        got = 0
        while n := s.recv_into(buf):
            got += n
    elapsed = time.perf_counter() - start
    assert got == size, (got, size)
    return elapsed


def parallel_upload(port: int, size: int, streams: int = 4) -> float:
    """Wall seconds for ``streams`` concurrent uploads of ``size / streams`` bytes each."""
    each = size // streams
    start = time.perf_counter()
    threads = [threading.Thread(target=upload, args=(port, each)) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def round_trips(port: int, count: int = 2000) -> list[float]:
    payload = b"x" * 64
    times = []
    with _connect(port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"E")
        for _ in range(count):
            start = time.perf_counter()
            s.sendall(payload)
            _recv_exactly(s, len(payload))
            times.append(time.perf_counter() - start)
    return times


def connects(port: int, count: int = 300) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        with _connect(port) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"Ex")
            _recv_exactly(s, 1)
        times.append(time.perf_counter() - start)
    return times


def _gbit(size: int, seconds: float) -> float:
    return size * 8 / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--proxy", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--copy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--buffer", type=int, default=1 << 20, help="splice pipe bytes")
    parser.add_argument("--mib", type=int, default=512, help="MiB per transfer")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    if args.proxy is not None:
        proxy(args.proxy, args.buffer, zero_copy=not args.copy)
        return

    size = args.mib << 20
    script = str(Path(__file__).resolve())
    print(
        f"loadavg before: {loadavg()}; {args.mib} MiB per transfer, splice pipe "
        f"{args.buffer // 1024} KiB, {args.rounds} rounds"
    )
    transfers: list[tuple[str, Callable[[int, int], float]]] = [
        ("upload", upload),
        ("download", download),
        ("4 parallel uploads", parallel_upload),
    ]
    ways = ("direct", "mapped", "mapped, copy loop")
    rates: dict[tuple[str, str], list[float]] = {}
    cpu_seconds = {way: 0.0 for way in ways[1:]}
    moved = 0
    with Helper([script, "--serve"]) as server:
        server_port = int(server.expect("PORT"))
        base = [script, "--proxy", str(server_port), "--buffer", str(args.buffer)]
        with Helper(base) as splice_px, Helper([*base, "--copy"]) as copy_px:
            proxies = {"mapped": splice_px, "mapped, copy loop": copy_px}
            ports = {"direct": server_port}
            ports.update({way: int(px.expect("PORT")) for way, px in proxies.items()})
            for port in ports.values():
                upload(port, 1 << 20)  # warm-up
            for r in range(args.rounds):
                order = ways[r % 3 :] + ways[: r % 3]  # rotate who goes first
                for name, fn in transfers:
                    for way in order:
                        px = proxies.get(way)
                        before = cpu_of(px.pid) if px else 0.0
                        seconds = fn(ports[way], size)
                        if px:
                            cpu_seconds[way] += cpu_of(px.pid) - before
                        rates.setdefault((name, way), []).append(_gbit(size, seconds))
                moved += size * len(transfers)
            latency = {way: round_trips(port) for way, port in ports.items()}
            connect = {way: connects(port) for way, port in ports.items()}
            for px in proxies.values():
                px.tell("quit")
    print(f"loadavg after: {loadavg()}\n")
    print("| variant | direct | mapped (splice) | ratio | mapped (copy loop) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _ in transfers:
        d, m, c = (statistics.median(rates[(name, way)]) for way in ways)
        print(f"| {name}, Gbit/s | {d:.2f} | {m:.2f} | {m / d:.2f}x | {c:.2f} | {c / d:.2f}x |")
    for name, data in (("64 B round trip", latency), ("connect + 1 B round trip", connect)):
        p50 = [quantile(data[way], 0.5) * 1e6 for way in ways]
        p99 = [quantile(data[way], 0.99) * 1e6 for way in ways]
        cells = [f"{a:.0f} / {b:.0f}" for a, b in zip(p50, p99, strict=True)]
        print(
            f"| {name}, p50 / p99 us | {cells[0]} | {cells[1]} | +{p50[1] - p50[0]:.0f} us "
            f"| {cells[2]} | +{p50[2] - p50[0]:.0f} us |"
        )
    gib = moved / (1 << 30)
    per_gib = ", ".join(f"{way} {sec / gib:.2f} s" for way, sec in cpu_seconds.items())
    print(f"\nproxy CPU per GiB moved: {per_gib} ({gib:.1f} GiB through each)")


if __name__ == "__main__":
    main()
