"""A frozen peer (SIGSTOP, TCP still open) must not hang sends, other peers or shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from dms.crypto import Ed25519PrivateKey
from dms.errors import NetworkError, NetworkTimeout
from dms.network._libp2p import Libp2pNetwork

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
PEER_SCRIPT = Path(__file__).with_name("libp2p_peer_proc.py")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGSTOP")


async def start_peer() -> tuple[trio.Process, str]:
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(PEER_SCRIPT)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    assert proc.stdout is not None
    buf = b""
    with trio.fail_after(20):
        while b"\n" not in buf:
            chunk = await proc.stdout.receive_some(4096)
            assert chunk, "peer process exited before listening"
            buf += chunk
    line = buf.split(b"\n")[0].decode()
    assert line.startswith("LISTEN "), line
    return proc, line.split()[1]


async def test_frozen_peer_is_cut_off() -> None:
    proc, address = await start_peer()
    try:
        us = Libp2pNetwork(
            Ed25519PrivateKey.generate(), LOOPBACK, ping_interval=0.5, ping_timeout=0.5
        )
        live = Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK)
        got: list[bytes] = []

        async def handler(data: bytes, remote: str) -> None:
            got.append(data)

        live.register_inbox("echo", handler)
        async with trio.open_nursery() as outer:
            await outer.start(live.run)
            cancelled_at: float | None = None
            finished_at: float | None = None

            async def run_us(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
                nonlocal finished_at
                with trio.CancelScope() as scope:
                    async with trio.open_nursery() as inner:
                        await inner.start(us.run)
                        task_status.started(scope)
                        await trio.sleep_forever()
                finished_at = time.monotonic()

            our_scope = await outer.start(run_us)
            frozen_id = await us.connect(address, timeout=5)
            await us.connect(live.listen_addresses()[0], timeout=5)
            await us.ping(frozen_id, timeout=2)

            os.kill(proc.pid, signal.SIGSTOP)
            start = time.monotonic()
            with pytest.raises(NetworkTimeout):
                await us.send(frozen_id, "echo", b"to the frozen peer", timeout=1.0)
            assert time.monotonic() - start < 1.5
            with pytest.raises(NetworkTimeout):
                await us.ping(frozen_id, timeout=0.5)

            # the liveness loop drops it after two failed pings
            with trio.fail_after(5):
                while frozen_id in {p.peer_id for p in us.peers()}:
                    await trio.sleep(0.05)
            # sends to it still fail fast, sends to a live peer still work
            start = time.monotonic()
            with pytest.raises(NetworkError):
                await us.send(frozen_id, "echo", b"again", timeout=1.0)
            assert time.monotonic() - start < 1.5
            await us.send(live.host_id, "echo", b"still fine", timeout=2)
            with trio.fail_after(5):
                while got != [b"still fine"]:
                    await trio.sleep(0.02)

            # shutdown of our host completes promptly despite the frozen peer
            cancelled_at = time.monotonic()
            our_scope.cancel()
            with trio.fail_after(5):
                while finished_at is None:
                    await trio.sleep(0.01)
            assert finished_at - cancelled_at < 2.0
            outer.cancel_scope.cancel()
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        with trio.move_on_after(5):
            await proc.wait()
