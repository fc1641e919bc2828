"""The frame shim between a VM's Ethernet and the subnet's packets: ARP answers, header strip
and add, and the offload a VM cannot take (checksums completed, TCP segmentation), checked
byte by byte against a word-by-word reference checksum."""

from __future__ import annotations

import ipaddress
import os
import random
import struct

import pytest

from dms.subnet._frames import (
    ROUTER_MAC,
    arp_answer,
    frame_packet,
    guest_mac,
    mac_text,
    packet_frame,
)
from dms.subnet._packets import (
    PLAIN_HEADER,
    checksum,
    ipv4_packet,
    key,
    plain_packets,
    segment_tcp,
)

NET = ipaddress.IPv4Network("10.7.3.0/24")
VM_IP = "10.7.3.5"
VM_MAC = guest_mac(VM_IP)


def reference_sum(data: bytes) -> int:
    """Ones'-complement sum of 16-bit words, one word at a time (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


def verifies(data: bytes) -> bool:
    """A block whose checksum field is filled in sums to 0xFFFF."""
    return reference_sum(data) == 0xFFFF


def arp_request(sender_ip: str, target_ip: str, sender_mac: bytes = VM_MAC) -> bytes:
    arp = bytes.fromhex("0001080006040001") + sender_mac + key(sender_ip) + bytes(6)
    return b"\xff" * 6 + sender_mac + b"\x08\x06" + arp + key(target_ip)


def tcp_packet(src: str, dst: str, payload: bytes, *, flags: int, seq: int) -> bytes:
    """A TCP/IPv4 packet (no vnet header), checksums left for the test to fill in."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 8080, seq, 7, 5 << 4, flags, 65535, 0, 0)
    return ipv4_packet(src, dst, tcp + payload, protocol=6)[10:]


def pseudo(ip: bytes, length: int, protocol: int) -> bytes:
    return ip[12:20] + bytes((0, protocol)) + length.to_bytes(2, "big")


# -- checksums -------------------------------------------------------------------------------


def test_checksum_matches_rfc1071_and_a_word_by_word_sum() -> None:
    # RFC 1071's example: the words 0001 f203 f4f5 f6f7 sum to 0xddf2.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == ~0xDDF2 & 0xFFFF
    rng = random.Random(7)
    for length in (0, 1, 2, 3, 20, 1379, 1380, 65000):
        data = rng.randbytes(length)
        assert checksum(data) == (~reference_sum(data) & 0xFFFF or 0xFFFF)
    assert checksum(bytes(40)) == 0xFFFF  # never 0: also a valid UDP checksum
    assert checksum(b"\xff\xff" * 3) == 0xFFFF


# -- ARP -------------------------------------------------------------------------------------


def test_arp_request_for_another_subnet_address_gets_the_router_mac() -> None:
    reply = arp_answer(arp_request(VM_IP, "10.7.3.1"), [key(VM_IP)], NET)
    assert reply == (
        VM_MAC + ROUTER_MAC + b"\x08\x06"
        + bytes.fromhex("0001080006040002")
        + ROUTER_MAC + key("10.7.3.1")  # the gateway is at the router's MAC
        + VM_MAC + key(VM_IP)
    )  # fmt: skip
    assert arp_answer(arp_request(VM_IP, "10.7.3.200"), [key(VM_IP)], NET) is not None


@pytest.mark.parametrize(
    ("sender", "target"),
    [
        (VM_IP, VM_IP),  # a probe for its own address must find nobody
        ("0.0.0.0", VM_IP),  # duplicate-address detection
        ("10.7.3.9", "10.7.3.1"),  # the VM asking as someone else
        (VM_IP, "10.7.4.1"),  # outside the subnet
        (VM_IP, "10.7.3.0"),
        (VM_IP, "10.7.3.255"),
    ],
)
def test_arp_requests_that_are_not_answered(sender: str, target: str) -> None:
    assert arp_answer(arp_request(sender, target), [key(VM_IP)], NET) is None


def test_arp_replies_and_other_frames_are_not_answered() -> None:
    reply = arp_answer(arp_request(VM_IP, "10.7.3.1"), [key(VM_IP)], NET)
    assert reply is not None
    assert arp_answer(reply, [key(VM_IP)], NET) is None  # a reply is not a request
    assert arp_answer(arp_request(VM_IP, "10.7.3.1")[:30], [key(VM_IP)], NET) is None
    ipv4 = packet_frame(ipv4_packet(VM_IP, "10.7.3.1", b"x")[10:], ROUTER_MAC)
    assert arp_answer(ipv4, [key(VM_IP)], NET) is None


# -- Ethernet header -------------------------------------------------------------------------


def test_ipv4_frames_lose_their_header_and_padding_and_gain_a_plain_vnet_header() -> None:
    ip = ipv4_packet(VM_IP, "10.7.3.2", b"hi")[10:]  # 30 bytes: a short frame is padded
    frame = ROUTER_MAC + VM_MAC + b"\x08\x00" + ip + bytes(60 - 14 - len(ip))
    assert frame_packet(frame) == PLAIN_HEADER + ip


def test_frames_that_are_not_sane_ipv4_are_refused() -> None:
    ip = ipv4_packet(VM_IP, "10.7.3.2", b"payload")[10:]
    good = VM_MAC + ROUTER_MAC + b"\x08\x00" + ip
    assert frame_packet(good) is not None
    assert frame_packet(good[:12] + b"\x86\xdd" + good[14:]) is None  # IPv6
    assert frame_packet(good[:12] + b"\x08\x06" + good[14:]) is None  # ARP
    assert frame_packet(good[:14] + b"\x65" + good[15:]) is None  # version 6 inside
    assert frame_packet(good[:-1]) is None  # shorter than its IPv4 length
    too_short = bytearray(good)
    too_short[16:18] = (19).to_bytes(2, "big")
    assert frame_packet(bytes(too_short)) is None
    assert frame_packet(good[:30]) is None


def test_packet_frame_adds_the_header_towards_the_vm() -> None:
    ip = ipv4_packet("10.7.3.2", VM_IP, b"x")[10:]
    assert packet_frame(ip, VM_MAC) == VM_MAC + ROUTER_MAC + b"\x08\x00" + ip
    assert mac_text(VM_MAC) == "02:00:0a:07:03:05"
    assert VM_MAC != ROUTER_MAC and VM_MAC[0] & 0x02  # locally administered


# -- offload resolved for a VM ---------------------------------------------------------------


def test_plain_packets_pass_through_unchanged() -> None:
    packet = ipv4_packet("10.7.3.2", VM_IP, b"abc")
    assert plain_packets(packet) == [packet[10:]]


def test_a_checksum_to_complete_is_completed() -> None:
    # What the kernel hands a TUN with TUN_F_CSUM: the UDP checksum field holds the
    # pseudo-header's sum, the rest is for the device to do.
    payload = os.urandom(301)
    udp_len = 8 + len(payload)
    ip = ipv4_packet("10.7.3.2", VM_IP, struct.pack("!HHHH", 5353, 53, udp_len, 0) + payload)
    ip = ip[10:]
    partial = reference_sum(pseudo(ip, udp_len, 17))
    ip = ip[:26] + partial.to_bytes(2, "big") + ip[28:]
    header = struct.pack("<BBHHHH", 1, 0, 0, 0, 20, 6)
    (out,) = plain_packets(header + ip)
    assert out[:26] == ip[:26] and out[28:] == ip[28:]
    assert verifies(pseudo(out, udp_len, 17) + out[20:])


def test_tcp_segmentation_offload_is_cut_into_checksummed_segments() -> None:
    rng = random.Random(3)
    payload = rng.randbytes(5000)
    mss = 1380
    seq = 0xFFFFF000  # wraps around during the packet
    ip = tcp_packet("10.7.3.2", VM_IP, payload, flags=0x80 | 0x10 | 0x08 | 0x01, seq=seq)
    ident = int.from_bytes(ip[4:6], "big")
    header = struct.pack("<BBHHHH", 1, 1 | 0x80, 40, mss, 20, 16)  # TCPv4 + ECN
    segments = plain_packets(header + ip)
    assert [len(s) - 40 for s in segments] == [1380, 1380, 1380, 860]
    assert b"".join(s[40:] for s in segments) == payload
    for index, segment in enumerate(segments):
        assert int.from_bytes(segment[2:4], "big") == len(segment)
        assert int.from_bytes(segment[4:6], "big") == (ident + index) & 0xFFFF
        assert verifies(segment[:20])  # IPv4 header checksum
        assert verifies(pseudo(segment, len(segment) - 20, 6) + segment[20:])  # TCP
        assert int.from_bytes(segment[24:28], "big") == (seq + index * mss) & 0xFFFFFFFF
        flags = segment[33]
        last = index == len(segments) - 1
        assert bool(flags & 0x01) == last and bool(flags & 0x08) == last  # FIN, PSH
        assert bool(flags & 0x80) == (index == 0)  # CWR
        assert flags & 0x10  # ACK everywhere


def test_offload_headers_a_device_never_produces_are_dropped() -> None:
    ip = tcp_packet("10.7.3.2", VM_IP, b"x" * 100, flags=0x10, seq=1)
    assert plain_packets(struct.pack("<BBHHHH", 1, 3, 40, 1380, 20, 16) + ip) == []  # UDP GSO
    assert plain_packets(struct.pack("<BBHHHH", 1, 0, 0, 0, 20, 4) + ip) == []  # bad offset
    assert plain_packets(struct.pack("<BBHHHH", 2, 0, 0, 0, 0, 0) + ip) == []  # data valid
    assert segment_tcp(ip, 0) == []
