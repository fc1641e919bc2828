"""The bytes of the ``udp`` subnet transport: sealing, replays, records and the key offer."""

from __future__ import annotations

import pytest

from dms.errors import InvalidInput
from dms.subnet._datagram_wire import (
    DATA,
    HEADER,
    OVERHEAD,
    PROBE,
    REPLAY_WINDOW,
    Offer,
    Opener,
    ReplayWindow,
    Sealer,
    decode_offer,
    hinted_session,
    offer_size,
    pack_records,
    session_of,
    unknown_session_hint,
    unpack_records,
)


def pair() -> tuple[Sealer, Opener]:
    opener = Opener()
    return Sealer(opener.session, opener.key), opener


def test_a_sealed_datagram_opens_once_under_its_session_only() -> None:
    sealer, opener = pair()
    datagram = sealer.seal(DATA, b"payload")
    assert session_of(datagram) == opener.session
    assert len(datagram) == OVERHEAD + len(b"payload")
    assert b"payload" not in datagram  # encrypted, not only signed
    assert opener.open(datagram) == (DATA, b"payload")
    assert opener.open(datagram) is None  # a replay
    assert Opener().open(sealer.seal(DATA, b"x")) is None  # another key


@pytest.mark.parametrize("position", [0, 5, HEADER.size + 1, -1])
def test_any_flipped_bit_makes_a_datagram_unopenable(position: int) -> None:
    sealer, opener = pair()
    datagram = bytearray(sealer.seal(PROBE, b"c" * 16))
    datagram[position] ^= 0x01
    assert opener.open(bytes(datagram)) is None
    # the genuine one still opens: a forgery does not advance the replay window
    assert opener.open(sealer.seal(PROBE, b"c" * 16)) == (PROBE, b"c" * 16)


def test_reordered_datagrams_open_and_old_or_repeated_ones_do_not() -> None:
    sealer, opener = pair()
    datagrams = [sealer.seal(DATA, bytes([i])) for i in range(10)]
    for i in (3, 1, 0, 9, 2, 8, 4, 7, 5, 6):  # any order within the window
        assert opener.open(datagrams[i]) == (DATA, bytes([i]))
    assert all(opener.open(d) is None for d in datagrams)


def test_the_replay_window_forgets_nothing_inside_and_refuses_outside() -> None:
    window = ReplayWindow()
    window.accept(1)
    window.accept(REPLAY_WINDOW + 10)
    assert not window.fresh(1)  # fell out of the window: refused, not forgotten
    assert window.fresh(REPLAY_WINDOW + 9) and window.fresh(11)
    assert not window.fresh(REPLAY_WINDOW + 10)
    window.accept(2**63)  # a far jump does not build a 2**63-bit bitmap
    assert not window.fresh(2**63) and window.fresh(2**63 + 1) and not window.fresh(5)


def test_records_fill_datagrams_in_order_and_oversize_packets_are_set_apart() -> None:
    packets = [bytes([i]) * 400 for i in range(7)] + [b"B" * 2000, b"small" * 10]
    payloads, oversize = pack_records(packets, 1400)
    assert oversize == [b"B" * 2000]
    assert all(len(p) <= 1400 for p in payloads) and len(payloads) == 3
    unpacked = [pkt for p in payloads for pkt in unpack_records(p) or []]
    assert unpacked == [*packets[:7], b"small" * 10]
    assert unpack_records(b"\x05\x00abc") is None  # overruns
    assert unpack_records(b"\x00\x00") is None  # an empty record


def test_the_unknown_session_hint_names_the_session_and_is_not_a_datagram() -> None:
    sealer, _ = pair()
    datagram = sealer.seal(DATA, b"x")
    hint = unknown_session_hint(datagram)
    assert hinted_session(hint) == sealer.session
    assert session_of(hint) is None  # too short to be taken for a sealed datagram
    assert hinted_session(datagram) is None


def test_an_offer_round_trips_and_malformed_ones_are_refused() -> None:
    offer = Offer("ens-1/subnet", b"s" * 8, b"k" * 32, (("10.1.2.3", 4000), ("127.0.0.1", 9)))
    data = offer.encode()
    assert offer_size(data[:3]) is None and offer_size(data) == len(data)
    assert decode_offer(data) == offer
    with pytest.raises(InvalidInput):
        decode_offer(data + b"x")
    with pytest.raises(InvalidInput):
        decode_offer(b"\x02" + data[1:])  # another version
    unusable = Offer("s", b"s" * 8, b"k" * 32, (("0.0.0.0", 4000),)).encode()
    with pytest.raises(InvalidInput, match="cannot be used"):
        decode_offer(unusable)
    with pytest.raises(InvalidInput):
        Offer("", b"s" * 8, b"k" * 32, ()).encode()


def test_the_daemon_binds_subnet_udp_where_the_listen_addresses_say() -> None:
    from dms.daemon import subnet_udp_address

    # Go's QUIC listener port is the UDP port; else the TCP port's number; else any port
    both = ["/ip4/0.0.0.0/tcp/9000", "/ip4/0.0.0.0/udp/9001/quic-v1"]
    assert subnet_udp_address(both) == ("0.0.0.0", 9001)
    assert subnet_udp_address(["/ip6/::/tcp/9000", "/ip4/127.0.0.1/tcp/9100"]) == (
        "127.0.0.1",
        9100,
    )
    assert subnet_udp_address(["/ip6/::/tcp/9000"]) == ("0.0.0.0", 0)
