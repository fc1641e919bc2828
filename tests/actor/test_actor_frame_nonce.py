"""Stream frames (8-byte LE length + JSON, ≤ 1 MiB) and the nonce counter."""

from __future__ import annotations

import struct
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dms.actor import NonceSource
from dms.errors import InvalidInput
from dms.network import (
    FRAME_HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    decode_frame,
    encode_frame,
    frame_length,
)


def test_limits_match_go() -> None:
    assert MAX_MESSAGE_SIZE == 1 << 20
    assert FRAME_HEADER_SIZE == 8


def test_frame_layout() -> None:
    assert encode_frame(b"{}") == b"\x02\x00\x00\x00\x00\x00\x00\x00{}"
    assert decode_frame(b"\x02\x00\x00\x00\x00\x00\x00\x00{}") == b"{}"
    assert encode_frame(b"") == bytes(8)


@given(st.binary(max_size=2000))
def test_frame_round_trip(body: bytes) -> None:
    frame = encode_frame(body)
    assert frame_length(frame[:8]) == len(body)
    assert decode_frame(frame) == body


def test_sender_limit_counts_the_prefix() -> None:
    assert len(encode_frame(b"x" * (MAX_MESSAGE_SIZE - 8))) == MAX_MESSAGE_SIZE
    with pytest.raises(InvalidInput, match="too large"):
        encode_frame(b"x" * (MAX_MESSAGE_SIZE - 7))


def test_two_mebibytes_refused_both_ways() -> None:
    big = b"x" * (2 << 20)
    with pytest.raises(InvalidInput, match="too large"):
        encode_frame(big)
    with pytest.raises(InvalidInput, match="too large"):
        decode_frame(struct.pack("<Q", len(big)) + big)


def test_receiver_checks_declared_length_before_the_body() -> None:
    frame_length(struct.pack("<Q", MAX_MESSAGE_SIZE))  # exactly 1 MiB declared is accepted
    for length in (MAX_MESSAGE_SIZE + 1, (1 << 64) - 1):
        with pytest.raises(InvalidInput, match="too large") as info:
            frame_length(struct.pack("<Q", length))
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x01", bytes(7), b"\x05\x00\x00\x00\x00\x00\x00\x00abc", b"\x01" + bytes(7)],
)
def test_short_frames_refused(frame: bytes) -> None:
    with pytest.raises(InvalidInput, match="short frame"):
        decode_frame(frame)


def test_trailing_bytes_refused() -> None:
    with pytest.raises(InvalidInput, match="trailing"):
        decode_frame(encode_frame(b"{}") + b"x")


def test_nonce_counts_up_from_the_seed() -> None:
    source = NonceSource(10)
    assert source.current == 10
    assert [source.next() for _ in range(3)] == [11, 12, 13]
    assert NonceSource((1 << 64) - 1).next() == 0  # uint64 wraps, as in Go


def test_nonce_seeded_with_the_clock() -> None:
    import time

    before = time.time_ns()
    first = NonceSource().next()
    assert before < first <= time.time_ns() + 1


def test_nonce_is_thread_safe() -> None:
    source = NonceSource(0)
    seen: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        got = [source.next() for _ in range(2000)]
        with lock:
            seen.extend(got)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 16001))
