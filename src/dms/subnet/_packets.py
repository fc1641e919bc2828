"""The packets the subnet data path moves: a ``virtio_net_hdr`` then an IPv4 packet.

Every TUN device of a subnet is opened with ``IFF_VNET_HDR`` and TCP segmentation offload
(:mod:`._tun`), so the kernel hands us, and accepts from us, packets of up to 64 KiB that it
segments itself (GSO): one read, one frame and one write move up to ~45 MTU-sized TCP
segments, which is what makes Python fast enough for the path. A packet is therefore, in the
router, on the wire and in every :class:`~dms.subnet.PacketTransport`, ``virtio_net_hdr``
(10 bytes, little-endian, as Linux defines it) followed by the IPv4 packet; a header of ten
zero bytes is a plain packet with a complete checksum.

The helpers only slice: an address is a 4-byte ``bytes`` slice used as a dict key, so the
per-packet work is a few slices and comparisons, never an object per field.

A header that comes from a peer is checked before the kernel sees it
(:func:`valid_offload`): only "no offload" or TCPv4 segmentation with a checksum to complete
at the TCP/UDP checksum field are accepted, which is all our own devices ever produce.

An endpoint that takes no offload (a VM's virtio-net frames, :mod:`._frames`) gets what
:func:`plain_packets` makes of a packet: the checksum completed, and a segmentation-offload
packet cut into MTU-sized TCP segments, each with its own IPv4 and TCP checksums, as the
kernel's GSO would.
"""

from __future__ import annotations

import ipaddress
import struct

#: Size of ``struct virtio_net_hdr`` (no ``num_buffers``), prepended by TUN with IFF_VNET_HDR.
VNET_HDR_LEN = 10
#: A plain packet's header: no checksum to complete, no segmentation.
PLAIN_HEADER = bytes(VNET_HDR_LEN)
#: Smallest packet we look at: the header and a 20-byte IPv4 header.
MIN_PACKET = VNET_HDR_LEN + 20

_SRC = VNET_HDR_LEN + 12
_DST = VNET_HDR_LEN + 16
_VNET = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset

VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_ECN = 0x80

_TCP = 6
_UDP = 17
_CSUM_FIELD = {_TCP: 16, _UDP: 6}
_TCP_FIN = 0x01
_TCP_PSH = 0x08
_TCP_CWR = 0x80


def is_ipv4(packet: bytes) -> bool:
    """True if ``packet`` is long enough for an IPv4 header and says version 4."""
    return len(packet) >= MIN_PACKET and packet[VNET_HDR_LEN] >> 4 == 4


def src_of(packet: bytes) -> bytes:
    """The source address, 4 bytes (a dict key; :func:`key` makes one from a string)."""
    return packet[_SRC : _SRC + 4]


def dst_of(packet: bytes) -> bytes:
    """The destination address, 4 bytes."""
    return packet[_DST : _DST + 4]


def key(ip: str | ipaddress.IPv4Address) -> bytes:
    """The 4-byte form of an address, as :func:`src_of` and :func:`dst_of` return it."""
    return ipaddress.IPv4Address(ip).packed


def valid_offload(packet: bytes) -> bool:
    """True if the ``virtio_net_hdr`` of a packet from a peer is one our devices produce.

    Accepted: all zeros (the common case, checked first), a checksum to complete at the TCP or
    UDP checksum field of this very packet, and TCPv4 segmentation (with or without ECN) of a
    TCP packet whose checksum is to be completed. Anything else is refused: the header is an
    instruction to the kernel, and a peer must not be able to give it one we never would.
    """
    if packet[:2] == b"\0\0":
        return True
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = _VNET.unpack_from(packet)
    if flags != VIRTIO_NET_HDR_F_NEEDS_CSUM:
        return False
    ihl = (packet[VNET_HDR_LEN] & 0x0F) * 4
    protocol = packet[VNET_HDR_LEN + 9]
    if csum_start != ihl or _CSUM_FIELD.get(protocol) != csum_offset:
        return False
    if csum_start + csum_offset + 2 > len(packet) - VNET_HDR_LEN:
        return False
    base = gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if base == VIRTIO_NET_HDR_GSO_NONE:
        return bool(gso_type == VIRTIO_NET_HDR_GSO_NONE)
    return bool(
        base == VIRTIO_NET_HDR_GSO_TCPV4
        and protocol == _TCP
        and 0 < gso_size <= 0xFFFF
        and hdr_len <= len(packet) - VNET_HDR_LEN
    )


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``: never 0, so also right for UDP.

    The ones'-complement sum of 16-bit words is the number the bytes spell, modulo 65535
    (65536 = 1 mod 65535): one big-integer conversion and one division in C, not a loop of
    words in Python.
    """
    if len(data) & 1:
        data += b"\0"
    return ~(int.from_bytes(data, "big") % 0xFFFF) & 0xFFFF


def _ip_header_checksum(header: bytearray) -> None:
    header[10:12] = b"\0\0"
    header[10:12] = checksum(bytes(header)).to_bytes(2, "big")


def plain_packets(packet: bytes) -> list[bytes]:
    """The IPv4 packets (no ``virtio_net_hdr``) that ``packet`` stands for, for an endpoint that
    takes no offload: itself, its checksum completed, or its TCP segments (``gso_size`` bytes
    of data each). A header :func:`valid_offload` refuses gives ``[]`` (dropped)."""
    ip = packet[VNET_HDR_LEN:]
    if packet[:2] == b"\0\0":
        return [ip]
    if not valid_offload(packet):
        return []
    _, gso_type, _, gso_size, csum_start, csum_offset = _VNET.unpack_from(packet)
    if gso_type == VIRTIO_NET_HDR_GSO_NONE:
        total = min(int.from_bytes(ip[2:4], "big"), len(ip))
        data = bytearray(ip[:total])
        field = csum_start + csum_offset
        data[field : field + 2] = checksum(ip[csum_start:total]).to_bytes(2, "big")
        return [bytes(data)]
    return segment_tcp(ip, gso_size)


def segment_tcp(ip: bytes, mss: int) -> list[bytes]:
    """Cut the TCPv4 packet ``ip`` into segments of at most ``mss`` data bytes (what the
    kernel's GSO does): sequence numbers advanced, IP IDs counted up, FIN and PSH on the last
    segment only, CWR on the first only, every IPv4 and TCP checksum computed afresh."""
    ihl = (ip[0] & 0x0F) * 4
    total = min(int.from_bytes(ip[2:4], "big"), len(ip))
    thl = (ip[ihl + 12] >> 4) * 4
    headers = ihl + thl
    if thl < 20 or headers > total or mss <= 0:
        return []
    data = ip[headers:total]
    ident = int.from_bytes(ip[4:6], "big")
    seq = int.from_bytes(ip[ihl + 4 : ihl + 8], "big")
    flags = ip[ihl + 13]
    pseudo_addrs = ip[12:20]
    segments = []
    count = max(1, (len(data) + mss - 1) // mss)
    for index in range(count):
        chunk = data[index * mss : (index + 1) * mss]
        iph = bytearray(ip[:ihl])
        iph[2:4] = (headers + len(chunk)).to_bytes(2, "big")
        iph[4:6] = ((ident + index) & 0xFFFF).to_bytes(2, "big")
        _ip_header_checksum(iph)
        tcp = bytearray(ip[ihl:headers])
        tcp[4:8] = ((seq + index * mss) & 0xFFFFFFFF).to_bytes(4, "big")
        segment_flags = flags
        if index < count - 1:
            segment_flags &= ~(_TCP_FIN | _TCP_PSH)
        if index > 0:
            segment_flags &= ~_TCP_CWR
        tcp[13] = segment_flags
        tcp[16:18] = b"\0\0"
        length = thl + len(chunk)
        pseudo = pseudo_addrs + bytes((0, _TCP)) + length.to_bytes(2, "big")
        tcp[16:18] = checksum(pseudo + tcp + chunk).to_bytes(2, "big")
        segments.append(bytes(iph) + bytes(tcp) + chunk)
    return segments


def udp_payload(packet: bytes) -> tuple[int, int, bytes] | None:
    """``(source port, destination port, payload)`` of a plain UDP packet, or None if the
    packet is not UDP, is a fragment, or its lengths do not add up."""
    ip = VNET_HDR_LEN
    if packet[ip + 9] != _UDP or struct.unpack_from("!H", packet, ip + 6)[0] & 0x3FFF:
        return None
    ihl = (packet[ip] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, ip + 2)[0]
    udp = ip + ihl
    if total > len(packet) - ip or udp + 8 > ip + total:
        return None
    sport, dport, length = struct.unpack_from("!HHH", packet, udp)
    if length < 8 or udp + length > ip + total:
        return None
    return sport, dport, packet[udp + 8 : udp + length]


def udp_packet(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """A plain UDP packet from ``src`` to ``dst`` (4-byte addresses); UDP checksum 0 (none,
    which IPv4 allows)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ipv4_packet(
        str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)), udp, protocol=_UDP
    )


def ipv4_packet(src: str, dst: str, payload: bytes, *, protocol: int = _UDP) -> bytes:
    """A plain packet (zero ``virtio_net_hdr`` + IPv4 header + ``payload``), for tests and
    probes: checksummed header, no options, TTL 64."""
    total = 20 + len(payload)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, protocol, 0, key(src), key(dst)
    )
    csum = sum(struct.unpack("!10H", header))
    csum = (csum & 0xFFFF) + (csum >> 16)
    csum = (csum & 0xFFFF) + (csum >> 16)
    header = header[:10] + struct.pack("!H", ~csum & 0xFFFF) + header[12:]
    return PLAIN_HEADER + header + payload


__all__ = [
    "MIN_PACKET",
    "PLAIN_HEADER",
    "VNET_HDR_LEN",
    "checksum",
    "dst_of",
    "ipv4_packet",
    "is_ipv4",
    "key",
    "plain_packets",
    "segment_tcp",
    "src_of",
    "udp_packet",
    "udp_payload",
    "valid_offload",
]
