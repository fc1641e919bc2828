"""Strict DER for ECDSA ``(r, s)`` signatures, the encoding libp2p and the Go DMS exchange.

We parse ourselves rather than through libsecp256k1 so that we can accept high-``s`` signatures
the way Go's decred verifier does (libsecp256k1 only verifies low-``s``), while still refusing
anything that is not canonical DER.
"""

from __future__ import annotations

from dms.errors import CryptoError

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _encode_int(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    if body[0] & 0x80:
        body = b"\x00" + body
    return b"\x02" + bytes([len(body)]) + body


def encode_der_signature(r: int, s: int) -> bytes:
    """DER ``SEQUENCE { INTEGER r, INTEGER s }``."""
    body = _encode_int(r) + _encode_int(s)
    return b"\x30" + bytes([len(body)]) + body


def _parse_int(data: bytes, pos: int) -> tuple[int, int]:
    if pos + 2 > len(data) or data[pos] != 0x02:
        raise CryptoError("bad DER signature: expected INTEGER")
    length = data[pos + 1]
    start = pos + 2
    end = start + length
    if length == 0 or length > 33 or end > len(data):
        raise CryptoError("bad DER signature: bad INTEGER length")
    body = data[start:end]
    if body[0] & 0x80:
        raise CryptoError("bad DER signature: negative INTEGER")
    if length > 1 and body[0] == 0 and not body[1] & 0x80:
        raise CryptoError("bad DER signature: INTEGER not minimally encoded")
    return int.from_bytes(body, "big"), end


def decode_der_signature(sig: bytes) -> tuple[int, int]:
    """Parse a canonical DER ECDSA signature into ``(r, s)``, each in ``[1, n-1]``."""
    if len(sig) < 8 or sig[0] != 0x30 or sig[1] != len(sig) - 2:
        raise CryptoError("bad DER signature: malformed SEQUENCE")
    r, pos = _parse_int(sig, 2)
    s, pos = _parse_int(sig, pos)
    if pos != len(sig):
        raise CryptoError("bad DER signature: trailing bytes")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise CryptoError("bad DER signature: r or s out of range")
    return r, s


def low_s_der(sig: bytes) -> bytes:
    """Re-encode ``sig`` with ``s`` in the lower half of the group, as libsecp256k1 requires."""
    r, s = decode_der_signature(sig)
    if s > SECP256K1_N // 2:
        s = SECP256K1_N - s
    return encode_der_signature(r, s)
