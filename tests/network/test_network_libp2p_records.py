"""The signed-peer-record shortcuts (dms.network._libp2p_records) keep the library's verdicts.

Real py-libp2p hosts (not started: records need only keys and peerstores) and real records made
by the library itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.envelope import seal_record
from libp2p.peer.peer_record import PeerRecord
from libp2p.peer.peerstore import env_to_send_in_RPC
from libp2p.pubsub.pb import rpc_pb2
from multiaddr import Multiaddr

from dms.network import _libp2p_records as records


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    records.clear_record_caches()
    yield
    records.clear_record_caches()


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls that reach the library's full verify-and-store path."""
    calls: list[int] = []
    original = records._original_consume

    def counting(msg: Any, host: Any, peer_id: Any) -> bool:
        calls.append(1)
        return bool(original(msg, host, peer_id))

    monkeypatch.setattr(records, "_original_consume", counting)
    return calls


def _host() -> Any:
    return new_host(key_pair=create_new_key_pair())


def _record(host: Any, seq: int = 1) -> bytes:
    """The host's signed peer record with one address, sealed by the library."""
    record = PeerRecord(host.get_id(), [Multiaddr("/ip4/127.0.0.1/tcp/4001")], seq)
    return bytes(seal_record(record, host.get_private_key()).marshal_envelope())


def _rpc(record: bytes) -> rpc_pb2.RPC:
    rpc = rpc_pb2.RPC()
    rpc.senderRecord = record
    return rpc


def test_a_verified_record_is_checked_once_per_receiver(full_checks: list[int]) -> None:
    sender, receiver, other = _host(), _host(), _host()
    record = _record(sender)
    for _ in range(5):
        assert records.consume_signed_record(_rpc(record), receiver, sender.get_id())
    assert len(full_checks) == 1
    assert receiver.get_peerstore().peer_record_map.get(sender.get_id()) is not None
    # Another host in the same process has its own peerstore: it checks for itself.
    assert records.consume_signed_record(_rpc(record), other, sender.get_id())
    assert len(full_checks) == 2


def test_a_bad_record_is_refused_every_time(full_checks: list[int]) -> None:
    sender, receiver, impostor = _host(), _host(), _host()
    record = _record(sender)
    forged = record[:-1] + bytes([record[-1] ^ 1])  # last signature byte flipped
    for _ in range(3):
        assert not records.consume_signed_record(_rpc(forged), receiver, sender.get_id())
    # A good record presented for another peer is refused too (peer ID mismatch).
    for _ in range(3):
        assert not records.consume_signed_record(_rpc(record), receiver, impostor.get_id())
    assert len(full_checks) == 6


def test_the_full_path_runs_again_when_the_peerstore_changed(full_checks: list[int]) -> None:
    sender, receiver = _host(), _host()
    record = _record(sender)
    assert records.consume_signed_record(_rpc(record), receiver, sender.get_id())
    receiver.get_peerstore().peer_record_map.pop(sender.get_id())
    assert records.consume_signed_record(_rpc(record), receiver, sender.get_id())
    assert len(full_checks) == 2
    assert receiver.get_peerstore().peer_record_map.get(sender.get_id()) is not None


def test_an_addressless_record_is_never_shortcut(full_checks: list[int]) -> None:
    # The peerstore drops a record with no addresses, so there is nothing to compare with.
    sender, receiver = _host(), _host()
    record, _ = env_to_send_in_RPC(sender)  # not listening: no addresses
    for _ in range(3):
        assert records.consume_signed_record(_rpc(record), receiver, sender.get_id())
    assert len(full_checks) == 3


def test_an_rpc_without_a_record_passes_untouched(full_checks: list[int]) -> None:
    sender, receiver = _host(), _host()
    assert records.consume_signed_record(rpc_pb2.RPC(), receiver, sender.get_id())
    assert full_checks == []


def test_the_outgoing_record_is_the_librarys_and_is_reused() -> None:
    host = _host()
    first, _ = records.record_to_send(host)
    again, created = records.record_to_send(host)
    assert again == first and not created
    assert first == env_to_send_in_RPC(host)[0]


def test_patching_is_idempotent_and_installs_both() -> None:
    from libp2p.pubsub import gossipsub, pubsub

    records.patch_signed_records()
    records.patch_signed_records()
    for module in (gossipsub, pubsub):
        assert module.maybe_consume_signed_record is records.consume_signed_record
        assert module.env_to_send_in_RPC is records.record_to_send


def test_yamux_frame_writer_is_replaced_once_and_logs_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The quiet frame writer is installed idempotently and defers to the original on DEBUG."""
    import logging

    from libp2p.stream_muxer.yamux import yamux

    from dms.network import _libp2p_yamux

    _libp2p_yamux.patch_yamux_frame_writes()
    _libp2p_yamux.patch_yamux_frame_writes()
    assert yamux.Yamux._write_frame is _libp2p_yamux._write_frame

    class _Conn:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        async def write(self, data: bytes) -> None:
            self.written.append(data)

    class _Muxer:  # only what _write_frame touches
        is_initiator_value = True

        def __init__(self) -> None:
            self._write_lock = trio.Lock()
            self.secured_conn = _Conn()

    frame = bytes(12) + b"payload"
    muxer = _Muxer()
    trio.run(_libp2p_yamux._write_frame, muxer, frame)
    assert muxer.secured_conn.written == [frame]
    with caplog.at_level(logging.DEBUG, logger=yamux.logger.name):
        trio.run(_libp2p_yamux._write_frame, muxer, frame)
    assert muxer.secured_conn.written == [frame, frame]
    assert any("YAMUX TX" in r.getMessage() for r in caplog.records)
