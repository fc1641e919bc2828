"""Shared pieces of the multi-process benchmarks (not a benchmark itself).

* :func:`cluster_contexts` builds, in memory, the capability set-up ``dms.devnet`` writes to disk:
  one ``user`` whose DID is a root on every node, and a ``delegate`` grant of ``/public``,
  ``/broadcast`` and ``/dms/deployment`` on ``/nunet`` from the user to every node (kept as a
  provide anchor), so nodes trust the user and each other exactly as on a devnet.
* :class:`Helper` runs a benchmark's helper process (the script itself with a flag), reads its
  ``KEY value`` lines, and always kills it: on normal exit, exceptions and Ctrl-C.
* :func:`quantile`, :func:`cpu_of` and :func:`loadavg` for the reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from dms.crypto import Ed25519PrivateKey
from dms.devnet import GRANT_LIFETIME_NS, GRANT_TOPICS, GRANTED_CAPS
from dms.did import KeyProvider
from dms.ucan import CapabilityContext

PYTHON = sys.executable


def user_key(seed: str) -> Ed25519PrivateKey:
    """A deterministic user key, so separate processes share one user without files."""
    return Ed25519PrivateKey(hashlib.sha256(f"bench-user-{seed}".encode()).digest())


def user_context(seed: str) -> CapabilityContext:
    return CapabilityContext(KeyProvider(user_key(seed)), name="user")


def node_context(user: CapabilityContext, key: Ed25519PrivateKey) -> CapabilityContext:
    """A node's ``dms`` context as ``dms.devnet.create`` makes it (user = root + grant)."""
    provider = KeyProvider(key)
    ctx = CapabilityContext(provider, name="dms")
    ctx.add_roots([user.did])
    grant = user.grant(
        "delegate",
        provider.did,
        topics=GRANT_TOPICS,
        expire_ns=time.time_ns() + GRANT_LIFETIME_NS,
        caps=GRANTED_CAPS,
    )
    ctx.add_provide(grant.tokens)
    return ctx


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def cpu_of(pid: int) -> float:
    """User+system CPU seconds used so far by ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[0]


class Helper:
    """A helper subprocess speaking ``KEY value`` lines on stdout; killed on exit."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            [PYTHON, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def expect(self, key: str, timeout: float = 120.0) -> str:
        """The value of the next line starting with ``key`` (other lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"helper did not print {key!r} within {timeout:g}s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"helper exited (rc={self.process.wait()}) before {key!r}")
            if line.startswith(key + " ") or line.strip() == key:
                return line[len(key) :].strip()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def read_stdin_line() -> str:
    """A line from stdin without blocking trio (helpers wait for orders this way)."""
    import trio

    return await trio.to_thread.run_sync(sys.stdin.readline)
