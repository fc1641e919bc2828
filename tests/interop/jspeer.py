"""Drive ``js_peer.mjs`` (a js-libp2p 2.x peer) from trio tests: JSON commands in, JSON lines out.

Node and the pinned packages (``package.json`` / ``package-lock.json`` here) are installed by
``scripts/setup.sh`` (``npm ci`` into ``tests/interop/node_modules``). Without the ``node``
binary the interop tests are skipped; with it, a missing install is a failure, as is anything the
js peer reports: another stack's view of our host is the point of these tests.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

HERE = Path(__file__).parent
SCRIPT = HERE / "js_peer.mjs"
NODE_MODULES = HERE / "node_modules"
DEFAULT_TIMEOUT = 30.0


def node_binary() -> str:
    """The ``node`` executable; skip without one, fail if the packages are not installed."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/setup.sh installs the interop packages)")
    if not (NODE_MODULES / "libp2p" / "package.json").exists():
        pytest.fail("tests/interop/node_modules is missing: run scripts/setup.sh (npm ci)")
    return node


class JsPeer:
    """One running js-libp2p peer; see js_peer.mjs for the commands and events."""

    def __init__(self, process: trio.Process, log_path: Path) -> None:
        self._process = process
        self._log_path = log_path
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._changed = trio.Event()
        self.peer_id = ""
        self.addrs: list[str] = []

    def stderr(self) -> str:
        """What the js peer logged (for failure messages)."""
        return self._log_path.read_text(errors="replace")[-4000:]

    async def _read(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        assert self._process.stdout is not None
        buffer = b""
        started = False
        async for chunk in self._process.stdout:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                msg = json.loads(line)
                if "event" not in msg:
                    self._replies[int(msg.get("id", 0))] = msg
                else:
                    self.events.append(msg)
                    if msg.get("event") == "ready" and not started:
                        self.peer_id, self.addrs = msg["id"], msg["addrs"]
                        started = True
                        task_status.started()
                self._changed.set()
                self._changed = trio.Event()
        if not started:
            raise AssertionError(f"js peer exited before it was ready:\n{self.stderr()}")

    async def _wait(self, cond: Callable[[], Any], timeout: float, what: str) -> Any:
        with trio.move_on_after(timeout):
            while True:
                result = cond()
                if result:
                    return result
                if self._process.poll() is not None:
                    raise AssertionError(
                        f"js peer exited while waiting for {what}:\n{self.stderr()}"
                    )
                await self._changed.wait()
        raise AssertionError(f"js peer: no {what} within {timeout:g}s\n{self.stderr()}")

    async def call(
        self, op: str, *, timeout: float = DEFAULT_TIMEOUT, **args: Any
    ) -> dict[str, Any]:
        """Run one command; raise AssertionError with the js error if it failed."""
        n = next(self._ids)
        assert self._process.stdin is not None
        await self._process.stdin.send_all(json.dumps({"id": n, "op": op, **args}).encode() + b"\n")
        reply: dict[str, Any] = await self._wait(
            lambda: self._replies.pop(n, None), timeout, f"reply to {op}"
        )
        if not reply["ok"]:
            raise AssertionError(f"js {op} failed: {reply['error']}")
        return reply

    async def event(
        self,
        kind: str,
        match: Callable[[dict[str, Any]], bool] = lambda _: True,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """The first event of ``kind`` satisfying ``match`` (waits for it, bounded)."""

        def find() -> dict[str, Any] | None:
            return next((e for e in self.events if e.get("event") == kind and match(e)), None)

        found: dict[str, Any] = await self._wait(find, timeout, f"{kind} event")
        return found

    def seen(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]


@asynccontextmanager
async def js_peer(
    tmp_path: Path,
    *,
    seed: bytes,
    security: tuple[str, ...] = ("noise",),
    inboxes: tuple[str, ...] = (),
) -> AsyncIterator[JsPeer]:
    """Start a js peer with the Ed25519 ``seed`` as its identity; stopped on exit."""
    node = node_binary()
    config = {"seed": seed.hex(), "security": list(security), "inboxes": list(inboxes)}
    log_path = tmp_path / f"js-peer-{seed[:4].hex()}.log"
    with log_path.open("wb") as log:
        process = await trio.lowlevel.open_process(
            [node, str(SCRIPT), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=HERE,
        )
    peer = JsPeer(process, log_path)
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(DEFAULT_TIMEOUT):
                await nursery.start(peer._read)
            try:
                yield peer
            finally:
                with trio.move_on_after(5) as scope:
                    scope.shield = True
                    assert process.stdin is not None
                    await process.stdin.aclose()
                    await process.wait()
                nursery.cancel_scope.cancel()
    finally:
        if process.poll() is None:
            process.kill()
            with trio.move_on_after(5) as scope:
                scope.shield = True
                await process.wait()
