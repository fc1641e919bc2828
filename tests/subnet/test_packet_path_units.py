"""The pure parts of the subnet data path: framing, offload headers, names, routing table."""

from __future__ import annotations

import ipaddress
import struct

import pytest
import trio

from dms.errors import InvalidInput
from dms.network import MemoryFabric, MemoryNetwork
from dms.subnet import Libp2pStreamTransport, SubnetRouter, device_name, ipv4_packet
from dms.subnet._packets import dst_of, is_ipv4, key, src_of, valid_offload
from dms.subnet._stream_transport import (
    MAX_PACKET_BYTES,
    SEND_BATCH_BYTES,
    decode_records,
    encode_batches,
    encode_hello,
)

CIDR = ipaddress.IPv4Network("10.5.6.0/24")


def test_batches_round_trip_and_split_at_the_size_limit() -> None:
    packets = [ipv4_packet("10.5.6.2", "10.5.6.3", bytes([i]) * (1000 + i)) for i in range(10)]
    (frame,) = encode_batches(packets)
    (size,) = struct.unpack_from("<I", frame)
    assert size == len(frame) - 4
    assert decode_records(memoryview(frame)[4:]) == packets

    big = [ipv4_packet("10.5.6.2", "10.5.6.3", bytes(60_000))] * 40
    frames = encode_batches(big)
    assert len(frames) > 1
    assert all(len(f) - 4 <= SEND_BATCH_BYTES for f in frames)
    assert [p for f in frames for p in decode_records(memoryview(f)[4:])] == big


def test_malformed_batches_and_packets_are_refused() -> None:
    good = ipv4_packet("10.5.6.2", "10.5.6.3", b"x")
    with pytest.raises(InvalidInput):
        encode_batches([b"short"])
    with pytest.raises(InvalidInput):
        encode_batches([good + bytes(MAX_PACKET_BYTES)])
    body = struct.pack("<I", len(good) + 5) + good  # record overruns its batch
    with pytest.raises(InvalidInput):
        decode_records(memoryview(body))
    with pytest.raises(InvalidInput):
        decode_records(memoryview(b"\x01\x00"))
    with pytest.raises(InvalidInput):
        encode_hello("")
    assert encode_hello("s1") == b"\x01\x02s1"


def test_addresses_are_sliced_from_the_ipv4_header() -> None:
    packet = ipv4_packet("10.5.6.2", "10.5.6.3", b"payload")
    assert is_ipv4(packet)
    assert src_of(packet) == key("10.5.6.2")
    assert dst_of(packet) == key("10.5.6.3")
    assert not is_ipv4(packet[:20])
    assert not is_ipv4(packet[:10] + b"\x60" + packet[11:])  # IPv6 version nibble


def vnet(*fields: int) -> bytes:
    """flags, gso_type, hdr_len, gso_size, csum_start, csum_offset."""
    return struct.pack("<BBHHHH", *fields)


def test_only_offload_headers_our_devices_produce_are_accepted() -> None:
    tcp = ipv4_packet("10.5.6.2", "10.5.6.3", bytes(2000), protocol=6)[10:]
    udp = ipv4_packet("10.5.6.2", "10.5.6.3", bytes(100), protocol=17)[10:]
    assert valid_offload(bytes(10) + tcp)
    assert valid_offload(vnet(1, 0, 0, 0, 20, 16) + tcp)  # checksum to complete
    assert valid_offload(vnet(1, 0, 0, 0, 20, 6) + udp)
    assert valid_offload(vnet(1, 1, 52, 1368, 20, 16) + tcp)  # TCPv4 segmentation
    assert valid_offload(vnet(1, 0x81, 52, 1368, 20, 16) + tcp)  # ... with ECN
    assert not valid_offload(vnet(0, 1, 52, 1368, 20, 16) + tcp)  # GSO without checksum
    assert not valid_offload(vnet(1, 1, 52, 1368, 20, 16) + udp)  # UDP is not TCP
    assert not valid_offload(vnet(1, 3, 52, 1368, 20, 16) + tcp)  # UDP GSO: never ours
    assert not valid_offload(vnet(1, 0, 0, 0, 40, 16) + tcp)  # checksum elsewhere
    assert not valid_offload(vnet(2, 0, 0, 0, 20, 16) + tcp)  # unknown flag
    assert not valid_offload(vnet(1, 1, 60_000, 1368, 20, 16) + tcp)  # header beyond packet


def test_device_names_fit_linux_and_differ_per_subnet_and_address() -> None:
    names = {
        device_name(subnet, ipaddress.IPv4Address(ip))
        for subnet in ("ens-1", "ens-2")
        for ip in ("10.0.0.2", "10.0.0.3", "10.255.255.254")
    }
    assert len(names) == 6
    assert all(len(n) <= 15 and n.startswith("nn") for n in names)


async def test_routing_table_and_membership() -> None:
    net = MemoryNetwork(MemoryFabric(), "peerA")
    router = SubnetRouter("s", CIDR, Libp2pStreamTransport(net), local_peer="peerA")
    router.add_routes({"10.5.6.2": "peerA", "10.5.6.3": "peerB", "10.5.6.4": "peerB"})
    assert router.members == {"peerA", "peerB"}
    router.remove_routes(["10.5.6.3"])
    assert router.members == {"peerA", "peerB"}
    router.remove_routes(["10.5.6.4", "10.5.6.99"])
    assert router.members == {"peerA"}
    assert router.routes == {"10.5.6.2": "peerA"}
    for bad in ("10.5.7.2", "10.5.6.0", "10.5.6.255", "nonsense"):
        with pytest.raises(InvalidInput):
            router.add_routes({bad: "peerB"})
    with pytest.raises(InvalidInput):
        await router.attach("10.9.9.9")
    # packets from a peer that is not in the table are dropped before anything else
    router._receive("peerC", [ipv4_packet("10.5.6.3", "10.5.6.2", b"x")])
    assert router.stats.dropped_not_member == 1
    await router.close()
    await trio.lowlevel.checkpoint()
