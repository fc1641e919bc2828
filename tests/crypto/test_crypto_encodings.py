"""Varints and DER: the low-level encodings every key format relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dms.crypto._der import (
    SECP256K1_N,
    decode_der_signature,
    encode_der_signature,
    low_s_der,
)
from dms.crypto._varint import decode_uvarint, encode_uvarint
from dms.errors import CryptoError


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (1, "01"), (0x7F, "7f"), (0x80, "8001"), (0xED, "ed01"), (0xEF01, "81de03")],
)
def test_uvarint_known_encodings(value: int, encoded: str) -> None:
    assert encode_uvarint(value).hex() == encoded
    assert decode_uvarint(bytes.fromhex(encoded)) == (value, len(encoded) // 2)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_uvarint_round_trip(value: int) -> None:
    data = encode_uvarint(value)
    assert decode_uvarint(data + b"\xff") == (value, len(data))


@pytest.mark.parametrize("bad", ["", "80", "8000", "ffffffffffffffffff01"])
def test_uvarint_refuses_truncated_non_minimal_and_long(bad: str) -> None:
    with pytest.raises(CryptoError):
        decode_uvarint(bytes.fromhex(bad))


@given(
    st.integers(min_value=1, max_value=SECP256K1_N - 1),
    st.integers(min_value=1, max_value=SECP256K1_N - 1),
)
def test_der_round_trip(r: int, s: int) -> None:
    assert decode_der_signature(encode_der_signature(r, s)) == (r, s)


def test_der_refuses_non_canonical() -> None:
    good = encode_der_signature(5, 7)
    assert good.hex() == "3006020105020107"
    for bad in [
        "3007020105020107",  # wrong sequence length
        "300702020005020107",  # r padded with a needless zero
        "3006020185020107",  # negative r
        "3006020100020107",  # r == 0
        "300602010502010700",  # trailing byte
        "3006030105020107",  # not an INTEGER
    ]:
        with pytest.raises(CryptoError):
            decode_der_signature(bytes.fromhex(bad))


def test_low_s_flips_only_high_s() -> None:
    high = SECP256K1_N - 3
    assert decode_der_signature(low_s_der(encode_der_signature(9, high))) == (9, 3)
    assert decode_der_signature(low_s_der(encode_der_signature(9, 3))) == (9, 3)
