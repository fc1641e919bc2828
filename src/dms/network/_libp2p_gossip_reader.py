"""The pubsub read loop, with each received message handled in the task that read it.

py-libp2p 0.8.1's ``Pubsub.continuously_read_stream`` spawns a service task per received
message (``manager.run_task(self.push_msg, ...)``). Its service manager looks up the parent of
every new task by walking the whole task tree (``_find_parent_task``), so each message pays a
task spawn plus a scan that grows with the node's task count, and every RPC also builds a
metrics event whose peer ID is base58-encoded even when nobody collects metrics. On gossip
that is most messages a node receives, since a mesh delivers each message several times.

:class:`InlinePubsub` reads the same bytes with the same checks and differs only in that:

* a message whose topics have only synchronous validators (ours: :func:`.libp2p_validator`)
  is pushed inline (``await self.push_msg``); a message with an asynchronous validator still
  gets its own task, so a slow validator never stalls the peer's stream;
* an RPC's subscriptions are applied before its messages, then its control part is handled,
  the order go-libp2p-pubsub uses (``handleIncomingRPC``);
* the metrics event is built only when the stream has a metrics channel;
* RPCs are cut from a buffer filled by reads of whatever has arrived (:class:`VarintFramer`):
  the library reads each length prefix one byte at a time, and each such read crosses the
  stream's and Yamux's locks, so an RPC cost three or four stream reads instead of about one.

The signed-record check (:mod:`._libp2p_records`, patched into the pubsub module) and the
inbound size limit are the library's own. Pinned to libp2p 0.8.1: re-check
``continuously_read_stream`` when upgrading.
"""

from __future__ import annotations

import logging
from typing import Any

from libp2p.exceptions import ParseError
from libp2p.io.exceptions import IOException, MessageTooLarge
from libp2p.network.connection.exceptions import RawConnError
from libp2p.network.stream.exceptions import StreamEOF, StreamError
from libp2p.pubsub import pubsub as pubsub_module
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub

from dms.network._frame import uvarint_prefix
from dms.network._libp2p_streams import reset_quietly

log = logging.getLogger(__name__)


#: Bytes asked of the stream per read: what has arrived, up to this much.
READ_CHUNK = 64 * 1024


class VarintFramer:
    """Unsigned-varint length-prefixed frames (protobuf delimited, as pubsub sends them) cut
    from a stream read in chunks.

    The announced length is checked against ``limit`` as soon as the prefix is complete, before
    any of the body is awaited, so a peer cannot make us buffer more than ``limit`` plus one
    chunk. Raises ``ParseError`` for a prefix longer than 10 bytes or above 2**64 - 1,
    ``MessageTooLarge`` above ``limit``, and ``StreamEOF`` when the stream ends (mid-frame
    included), as the library's reader does.
    """

    def __init__(self, stream: Any, limit: int) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self._stream = stream
        self._limit = limit
        self._buffer = bytearray()

    async def next_frame(self) -> bytes:
        while True:
            frame = self._take()
            if frame is not None:
                return frame
            chunk = await self._stream.read(READ_CHUNK)
            if not chunk:
                raise StreamEOF("stream ended")
            self._buffer += chunk

    def _take(self) -> bytes | None:
        """One whole frame from the buffer, or None if more bytes are needed."""
        buffer = self._buffer
        try:
            prefix = uvarint_prefix(buffer)
        except ValueError as error:
            raise ParseError(str(error)) from None
        if prefix is None:
            return None
        length, header = prefix
        if length > self._limit:
            raise MessageTooLarge(f"frame of {length} bytes exceeds the limit of {self._limit}")
        end = header + length
        if len(buffer) < end:
            return None
        frame = bytes(buffer[header:end])
        del buffer[:end]
        return frame


class InlinePubsub(Pubsub):
    """``Pubsub`` whose read loop handles a message in the reading task (module docstring)."""

    async def continuously_read_stream(self, stream: Any) -> None:
        peer_id = stream.muxed_conn.peer_id
        framer = VarintFramer(stream, self.max_inbound_rpc_size)
        try:
            while self.manager.is_running:
                incoming = await framer.next_frame()
                rpc = rpc_pb2.RPC()
                rpc.ParseFromString(incoming)
                # Looked up at call time: _libp2p_records patches the module global.
                consume = pubsub_module.maybe_consume_signed_record  # type: ignore[attr-defined]
                if not consume(rpc, self.host, peer_id):
                    log.warning("pubsub RPC from %s has an invalid signed record: ignored", peer_id)
                    continue
                if rpc.subscriptions:
                    self._apply_subscriptions(peer_id, rpc)
                for msg in rpc.publish:
                    if self._is_subscribed_to_msg(msg):
                        await self._push(peer_id, msg)
                if rpc.HasField("control"):
                    await self.router.handle_rpc(rpc, peer_id)
                if stream.metric_send_channel is not None:
                    await stream.metric_send_channel.send(_metrics_event(peer_id, rpc, incoming))
        except MessageTooLarge as error:
            log.warning("pubsub RPC from %s exceeds the size limit: %s", peer_id, error)
            await reset_quietly(stream)
            self._handle_dead_peer(peer_id)
        except (StreamEOF, StreamError, IOException, RawConnError) as error:
            log.debug("pubsub stream from %s ended: %s", peer_id, error)

    def _apply_subscriptions(self, peer_id: Any, rpc: Any) -> None:
        if len(rpc.subscriptions) > self.max_subscriptions_per_rpc:
            log.warning(
                "peer %s sent %d subscriptions in one RPC (limit %d): ignored",
                peer_id,
                len(rpc.subscriptions),
                self.max_subscriptions_per_rpc,
            )
            return
        for subscription in rpc.subscriptions:
            self.handle_subscription(peer_id, subscription)

    async def _push(self, peer_id: Any, msg: Any) -> None:
        """Push ``msg`` inline when its validators are all synchronous, else in a task."""
        if any(validator.is_async for validator in self.get_msg_validators(msg)):
            if self.manager.is_running:
                self.manager.run_task(self.push_msg, peer_id, msg)
            return
        try:
            await self.push_msg(peer_id, msg)
        except Exception:
            # As a spawned task it could not end the read loop either: log and read on.
            log.exception("pubsub message from %s could not be processed", peer_id)


def _metrics_event(peer_id: Any, rpc: Any, incoming: bytes) -> Any:
    event = pubsub_module.GossipsubEvent()
    event.peer_id = peer_id.pretty()
    event.message_size = len(incoming)
    event.publish = bool(rpc.publish)
    event.subopts = bool(rpc.subscriptions)
    event.control = rpc.HasField("control")
    return event


__all__ = ["InlinePubsub"]
