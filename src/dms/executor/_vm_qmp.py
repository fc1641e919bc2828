"""A QMP client (QEMU's JSON machine protocol) on trio, written by hand: the few commands the
``vm`` executor needs (``qmp_capabilities``, ``cont``, ``query-status``, ``system_powerdown``,
``quit``) do not justify an asyncio-based library in a trio process.

QMP is one JSON object per line each way. The server greets (``{"QMP": ...}``), the client sends
``qmp_capabilities``, then commands carry an ``id`` that their ``return``/``error`` echoes;
asynchronous events (``SHUTDOWN`` with its ``reason``...) arrive in between. One reader task per
connection routes replies to their callers and records events, so the VM's watcher learns how the
guest stopped (``guest-shutdown``, ``guest-reset``, ``host-qmp-quit``) from QEMU itself.

Unix socket paths are limited to 108 bytes and execution directories can be deeper: sockets are
reached through ``/proc/self/fd/<directory fd>/<name>``, which has no such limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from dms.executor._errors import ExecutorError

MAX_LINE = 1024 * 1024


class QmpError(ExecutorError):
    """QEMU refused a command or the monitor connection failed."""


@contextlib.contextmanager
def short_path(path: Path) -> Any:
    """A path to ``path`` short enough for a unix socket (through its directory's fd)."""
    if len(os.fsencode(path)) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def listen_socket(path: Path) -> socket.socket:
    """A listening unix socket bound at ``path``, to hand to QEMU (``-chardev socket,fd=N``):
    it exists before QEMU runs, so connecting never races QEMU's start."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with short_path(path) as where:
            sock.bind(where)
        sock.listen(1)
    except BaseException:
        sock.close()
        raise
    return sock


class Qmp:
    """One QMP connection; use :func:`connect`."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = b""
        self._next_id = 0
        self._waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._send_lock = trio.Lock()
        self.events: list[dict[str, Any]] = []
        self.closed = trio.Event()

    async def _line(self) -> dict[str, Any] | None:
        while b"\n" not in self._buffer:
            data = await self._stream.receive_some(65536)
            if not data:
                return None
            self._buffer += data
            if len(self._buffer) > MAX_LINE:
                raise QmpError("QMP: a message longer than 1 MiB")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            raise QmpError(f"QMP: not JSON: {line[:80]!r}") from None
        if not isinstance(message, dict):
            raise QmpError("QMP: a message that is not an object")
        return message

    async def _handshake(self) -> None:
        greeting = await self._line()
        if greeting is None or "QMP" not in greeting:
            raise QmpError("QMP: no greeting from QEMU")
        await self._send({"execute": "qmp_capabilities", "id": -1})
        while True:
            reply = await self._line()
            if reply is None:
                raise QmpError("QMP: QEMU closed the monitor during the handshake")
            if reply.get("id") == -1:
                if "error" in reply:
                    raise QmpError(f"QMP: qmp_capabilities refused: {reply['error']}")
                return
            if "event" in reply:
                self.events.append(reply)

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._stream.send_all(json.dumps(message).encode() + b"\n")

    async def read_loop(self) -> None:
        """Route replies and record events until QEMU closes the connection."""
        try:
            while True:
                try:
                    message = await self._line()
                except (trio.BrokenResourceError, trio.ClosedResourceError, QmpError):
                    message = None
                if message is None:
                    return
                if "event" in message:
                    self.events.append(message)
                    continue
                channel = self._waiting.pop(message.get("id", -2), None)
                if channel is not None:
                    channel.send_nowait(message)
        finally:
            self.closed.set()
            for channel in self._waiting.values():
                channel.close()
            self._waiting.clear()

    async def execute(self, command: str, **arguments: Any) -> Any:
        """Run ``command`` and return its ``return`` value (needs :meth:`read_loop` running).

        Raises :class:`QmpError` when QEMU refuses it or closes the monitor first.
        """
        if self.closed.is_set():
            raise QmpError(f"QMP: {command}: the monitor is closed (QEMU has exited)")
        self._next_id += 1
        ident = self._next_id
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[ident] = send
        message: dict[str, Any] = {"execute": command, "id": ident}
        if arguments:
            message["arguments"] = arguments
        try:
            await self._send(message)
            reply = await receive.receive()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.EndOfChannel):
            raise QmpError(f"QMP: {command}: the monitor closed (QEMU has exited)") from None
        finally:
            self._waiting.pop(ident, None)
        if "error" in reply:
            error = reply["error"]
            raise QmpError(f"QMP: {command} refused: {error.get('desc', error)}")
        return reply.get("return")

    def shutdown_reason(self) -> str | None:
        """The ``reason`` of the last ``SHUTDOWN`` event (``guest-shutdown``, ``guest-reset``,
        ``host-qmp-quit``, ``host-signal``...), if QEMU sent one."""
        for event in reversed(self.events):
            if event.get("event") == "SHUTDOWN":
                data = event.get("data") or {}
                return str(data.get("reason", "")) or None
        return None

    async def aclose(self) -> None:
        await self._stream.aclose()


@asynccontextmanager
async def connect(path: Path, *, timeout: float = 10.0) -> AsyncIterator[Qmp]:
    """Connect to the monitor at ``path`` and negotiate capabilities within ``timeout``."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with trio.fail_after(timeout), short_path(path) as where:
            await sock.connect(where)
            qmp = Qmp(trio.SocketStream(sock))
            await qmp._handshake()
    except trio.TooSlowError:
        sock.close()
        raise QmpError(f"QMP: no answer from QEMU at {path} in {timeout:g} s") from None
    except OSError as exc:
        sock.close()
        raise QmpError(f"QMP: cannot connect to {path}: {exc.strerror or exc}") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        sock.close()
        raise QmpError("QMP: QEMU closed the monitor during the handshake") from None
    except BaseException:
        sock.close()
        raise
    try:
        yield qmp
    finally:
        with trio.CancelScope(shield=True):
            await qmp.aclose()
