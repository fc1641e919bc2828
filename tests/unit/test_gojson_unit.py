"""dms.gojson against byte strings derived by hand from Go's documented encoding/json rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dms import gojson
from dms.errors import InvalidInput


def test_struct_keeps_field_order_and_map_sorts_keys() -> None:
    value = gojson.Struct(to=1, be="x", frm={"b": 1, "a": 2, "B": 3})
    assert gojson.marshal(value) == b'{"to":1,"be":"x","frm":{"B":3,"a":2,"b":1}}'


def test_html_characters_are_escaped_like_go() -> None:
    # Go's encoding/json HTML-escapes <, > and & and escapes U+2028/U+2029 by default.
    assert gojson.marshal("<a href='x'>&</a>\u2028\u2029") == (
        b"\"\\u003ca href='x'\\u003e\\u0026\\u003c/a\\u003e\\u2028\\u2029\""
    )


def test_control_characters_use_go_escapes() -> None:
    assert gojson.marshal('\n\r\t\x00\x1f\x7f"\\') == b'"\\n\\r\\t\\u0000\\u001f\x7f\\"\\\\"'
    assert gojson.marshal("\b\f") == b'"\\u0008\\u000c"'
    assert gojson.marshal("\b\f", short_bf_escapes=True) == b'"\\b\\f"'


def test_bytes_are_padded_std_base64_and_nil_is_null() -> None:
    assert gojson.marshal(gojson.Struct(msg=b"{}", cap=b"\xff\xfe", nil=None)) == (
        b'{"msg":"e30=","cap":"//4=","nil":null}'
    )
    assert gojson.marshal(b"") == b'""'


def test_uint64_nanoseconds_stay_exact_integers() -> None:
    assert gojson.marshal(18446744073709551615) == b"18446744073709551615"
    assert gojson.marshal(1731000030000000000) == b"1731000030000000000"


def test_floats_use_go_formatting() -> None:
    assert gojson.marshal([1.0, 0.5, 1e21, 1e20, 1e-7, 0.000001, -0.0]) == (
        b"[1,0.5,1e+21,100000000000000000000,1e-7,0.000001,-0]"
    )
    assert gojson.marshal(gojson.Float32(0.1)) == b"0.1"
    with pytest.raises(InvalidInput):
        gojson.marshal(float("nan"))


def test_raw_message_is_compacted_with_html_escaping() -> None:
    raw = gojson.Raw(b'{ "a" : [1, 2],\n "b": "<x>" }')
    assert gojson.marshal(gojson.Struct(r=raw)) == b'{"r":{"a":[1,2],"b":"\\u003cx\\u003e"}}'


def test_gojson_hook_and_unsupported_types() -> None:
    class Handle:
        def __gojson__(self) -> object:
            return gojson.Struct(id=gojson.Struct(pub=""), did={}, addr={})

    assert gojson.marshal(Handle()) == b'{"id":{"pub":""},"did":{},"addr":{}}'
    with pytest.raises(InvalidInput, match="unsupported type"):
        gojson.marshal(object())


def test_b64decode_is_strict_but_ignores_newlines() -> None:
    assert gojson.b64decode("e3\n0=") == b"{}"
    assert gojson.b64decode(None) == b""
    with pytest.raises(InvalidInput):
        gojson.b64decode("e30")  # missing padding: Go's StdEncoding refuses it


@given(st.binary())
def test_bytes_round_trip(data: bytes) -> None:
    encoded = gojson.marshal(data)
    assert gojson.b64decode(encoded[1:-1].decode()) == data
