"""Network namespaces for subnet tests and benchmarks: made here, always removed.

Namespaces are created with ``ip netns add`` (fixture code only, the library itself never
shells out) under unique names, and removed on exit whatever happened. Probes run inside them
through ``ip netns exec`` with :mod:`tests.subnet.nsprog`.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

NSPROG = str(Path(__file__).with_name("nsprog.py"))
_counter = itertools.count()


def can_make_namespaces() -> bool:
    """Root, a TUN device node and the ``ip`` tool: what these tests need."""
    return os.geteuid() == 0 and os.path.exists("/dev/net/tun") and _has_ip()


def _has_ip() -> bool:
    try:
        subprocess.run(["ip", "-V"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


@contextmanager
def namespaces(count: int, tag: str = "t") -> Iterator[list[str]]:
    """``count`` fresh namespaces; yields their names (paths are ``/run/netns/<name>``)."""
    names = [f"nns{tag}{os.getpid() % 100000}x{next(_counter)}" for _ in range(count)]
    made: list[str] = []
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
            made.append(name)
            subprocess.run(
                ["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True
            )
        yield names
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def ns_path(name: str) -> str:
    return f"/run/netns/{name}"


def links(netns: str | None) -> list[str]:
    """Link names in a namespace (None: the host's)."""
    cmd = ["ip", "-o", "link", "show"] if netns is None else ["ip", "-n", netns, "-o", "link"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line]


def probe_command(netns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, NSPROG, *args]


async def probe(netns: str, *args: str, timeout: float = 60.0) -> str:
    """Run a probe to completion in ``netns``; its stdout (raises if it fails)."""
    with trio.fail_after(timeout):
        result = await trio.run_process(
            probe_command(netns, *args), capture_stdout=True, capture_stderr=True, check=False
        )
    if result.returncode != 0:
        raise AssertionError(
            f"probe {args} in {netns} failed ({result.returncode}): {result.stderr.decode()}"
        )
    return result.stdout.decode()


def rtts(output: str) -> list[float]:
    return [float(line.split()[1]) for line in output.splitlines() if line.startswith("RTT ")]
