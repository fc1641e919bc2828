"""Small network probes run inside a namespace (``ip netns exec NS python nsprog.py ...``).

Stdlib only, so any Python runs it. Used by the subnet tests and ``bench/bench_subnet.py``:

* ``ping DST COUNT`` — ICMP echo over a raw socket; prints ``RTT <seconds>`` per reply, exits 1
  if any request got no reply within 2 s.
* ``tcp-recv IP PORT`` — accepts one connection, reads to EOF, prints
  ``READY`` then ``BYTES n SHA256 h SECONDS s``.
* ``tcp-send IP PORT NBYTES`` — connects (retrying for 10 s), sends NBYTES of a deterministic
  stream, prints ``SHA256 h``.
* ``tcp-blast IP PORT SECONDS`` — connects and sends for SECONDS as fast as it can.
* ``udp-echo IP PORT`` — echoes datagrams forever.
* ``udp-rtt IP PORT COUNT`` — sends COUNT 64-byte datagrams one at a time; prints ``RTT s``.
* ``udp-spoof SRC DST`` — sends one UDP datagram with a forged source address (IP_HDRINCL).
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import sys
import time

CHUNK = 1 << 16


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def ping(dst: str, count: int) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.settimeout(2.0)
    ident = os.getpid() & 0xFFFF
    lost = 0
    for seq in range(count):
        payload = b"nunet-subnet-ping" + bytes(39)
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
        start = time.perf_counter()
        sock.sendto(packet, (dst, 0))
        while True:
            try:
                data, _ = sock.recvfrom(2048)
            except TimeoutError:
                lost += 1
                break
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
            if kind == 0 and rid == ident and rseq == seq:
                print(f"RTT {time.perf_counter() - start:.6f}", flush=True)
                break
    return 1 if lost else 0


def _stream(nbytes: int):  # type: ignore[no-untyped-def]
    block = hashlib.sha512(b"nunet").digest() * (CHUNK // 64)
    sent = 0
    counter = 0
    while sent < nbytes:
        chunk = block[: min(CHUNK, nbytes - sent)]
        chunk = struct.pack("!Q", counter) + chunk[8:] if len(chunk) >= 8 else chunk
        counter += 1
        sent += len(chunk)
        yield chunk


def _connect(ip: str, port: int) -> socket.socket:
    deadline = time.monotonic() + 10
    while True:
        try:
            return socket.create_connection((ip, port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def tcp_recv(ip: str, port: int) -> int:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ip, port))
    server.listen(1)
    print("READY", flush=True)
    conn, _ = server.accept()
    digest = hashlib.sha256()
    total = 0
    start = None
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        if start is None:
            start = time.perf_counter()
        digest.update(data)
        total += len(data)
    elapsed = time.perf_counter() - (start or time.perf_counter())
    print(f"BYTES {total} SHA256 {digest.hexdigest()} SECONDS {elapsed:.6f}", flush=True)
    return 0


def tcp_send(ip: str, port: int, nbytes: int) -> int:
    conn = _connect(ip, port)
    digest = hashlib.sha256()
    for chunk in _stream(nbytes):
        digest.update(chunk)
        conn.sendall(chunk)
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)  # the receiver closes once it has read everything
    print(f"SHA256 {digest.hexdigest()}", flush=True)
    return 0


def tcp_blast(ip: str, port: int, seconds: float) -> int:
    conn = _connect(ip, port)
    block = bytes(1 << 20)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        conn.sendall(block)
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)
    return 0


def udp_echo(ip: str, port: int) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, port))
    print("READY", flush=True)
    while True:
        data, peer = sock.recvfrom(2048)
        sock.sendto(data, peer)


def udp_rtt(ip: str, port: int, count: int) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2.0)
    payload = bytes(64)
    for _ in range(count):
        start = time.perf_counter()
        sock.sendto(payload, (ip, port))
        try:
            sock.recvfrom(2048)
        except TimeoutError:
            print("LOST", flush=True)
            continue
        print(f"RTT {time.perf_counter() - start:.6f}", flush=True)
    return 0


def udp_spoof(src: str, dst: str) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    payload = struct.pack("!HHHH", 40000, 40001, 8 + 6, 0) + b"forged"
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        0,
        0,
        64,
        socket.IPPROTO_UDP,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    sock.sendto(header + payload, (dst, 0))
    return 0


def main(argv: list[str]) -> int:
    cmd, *args = argv
    if cmd == "ping":
        return ping(args[0], int(args[1]))
    if cmd == "tcp-recv":
        return tcp_recv(args[0], int(args[1]))
    if cmd == "tcp-send":
        return tcp_send(args[0], int(args[1]), int(args[2]))
    if cmd == "tcp-blast":
        return tcp_blast(args[0], int(args[1]), float(args[2]))
    if cmd == "udp-echo":
        return udp_echo(args[0], int(args[1]))
    if cmd == "udp-spoof":
        return udp_spoof(args[0], args[1])
    if cmd == "udp-rtt":
        return udp_rtt(args[0], int(args[1]), int(args[2]))
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
