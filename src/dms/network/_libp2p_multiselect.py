"""Inbound protocol negotiation that answers a lazy dialer in one write.

A Go peer (and our own Go-protocol sender, :func:`._libp2p_streams.send_lazily`) opens a stream
the lazy way: the multistream header, the protocol and the first data arrive together.
py-libp2p 0.8.1's listener answers with its header first, then reads, then echoes the protocol:
two Yamux frames, two Noise messages and two socket writes where one would do.

:class:`CorkedMultiselect` holds the listener's replies while the dialer's next message is
already buffered (so reading it cannot wait on our reply) and sends them together; before a read
that would wait, it flushes, so a dialer that waits for our header (py-libp2p's own client) sees
exactly the old exchange. A refusal (``na``) is sent at once. Only the order of writes changes,
never their content. It reads py-libp2p's Yamux buffer to know what is buffered; on another
muxer it simply never holds a reply.
"""

from __future__ import annotations

from typing import Any

from libp2p.io.exceptions import IOException
from libp2p.protocol_muxer.exceptions import MultiselectCommunicatorError
from libp2p.protocol_muxer.multiselect import PROTOCOL_NOT_FOUND_MSG, Multiselect
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.utils import encode_delim


class _CorkedCommunicator(MultiselectCommunicator):
    def __init__(self, read_writer: Any) -> None:
        super().__init__(read_writer)
        self._pending = b""

    def _buffered(self) -> bool:
        """True if the dialer's bytes are already waiting in our Yamux buffer."""
        muxed = getattr(self.read_writer, "muxed_stream", None)
        buffers = getattr(getattr(muxed, "conn", None), "stream_buffers", None)
        if not isinstance(buffers, dict):
            return False
        return bool(buffers.get(getattr(muxed, "stream_id", None)))

    async def write(self, msg_str: str) -> None:
        self._pending += encode_delim((msg_str or "").encode())
        if msg_str == PROTOCOL_NOT_FOUND_MSG:
            await self.flush()

    async def read(self) -> str:
        if self._pending and not self._buffered():
            await self.flush()
        return str(await super().read())

    async def flush(self) -> None:
        data, self._pending = self._pending, b""
        if not data:
            return
        try:
            await self.read_writer.write(data)
        except (IOException, AssertionError, ValueError) as error:
            raise MultiselectCommunicatorError(
                "fail to write to multiselect communicator"
            ) from error


class CorkedMultiselect(Multiselect):
    """The host's listener-side negotiation, replies batched (see the module docstring)."""

    async def negotiate(self, communicator: Any, negotiate_timeout: int = 10) -> Any:
        corked = _CorkedCommunicator(communicator.read_writer)
        result = await super().negotiate(corked, negotiate_timeout)
        await corked.flush()
        return result


def cork_negotiation(host: Any) -> None:
    """Make ``host``'s listener use :class:`CorkedMultiselect` (same handlers, same object)."""
    multiselect = host.get_mux()
    if type(multiselect) is not Multiselect and not isinstance(multiselect, CorkedMultiselect):
        raise RuntimeError(f"unexpected libp2p multiselect {type(multiselect).__name__}")
    multiselect.__class__ = CorkedMultiselect


__all__ = ["CorkedMultiselect", "cork_negotiation"]
