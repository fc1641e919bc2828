"""Go JSON shape of handles and envelopes, against byte strings derived by hand from spec §2.1."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dms import gojson
from dms.actor import Address, Envelope, EnvelopeOptions, Handle
from dms.crypto import ID
from dms.did import DID
from dms.errors import InvalidInput

ZERO_KEY_ID = ID(b"\x08\x01\x12\x20" + bytes(32))
ZERO_KEY_B32 = "BAAREIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA======"
EMPTY_HANDLE = b'{"id":{"pub":""},"did":{},"addr":{}}'


def test_empty_handle_marshals_like_go() -> None:
    assert Handle().to_json() == EMPTY_HANDLE
    assert Handle().empty()
    assert Handle.from_json(EMPTY_HANDLE) == Handle()


def test_full_handle_marshals_in_go_field_order() -> None:
    handle = Handle(ZERO_KEY_ID, DID("did:key:z6Mk"), Address("12D3KooW", "root"))
    expected = (
        '{"id":{"pub":"' + ZERO_KEY_B32 + '"},"did":{"uri":"did:key:z6Mk"},'
        '"addr":{"host":"12D3KooW","inbox":"root"}}'
    ).encode()
    assert handle.to_json() == expected
    assert not handle.empty()
    assert Handle.from_json(expected) == handle


def test_address_omits_empty_fields() -> None:
    assert Handle(address=Address(inbox="root")).to_json() == (
        b'{"id":{"pub":""},"did":{},"addr":{"inbox":"root"}}'
    )
    assert Handle(address=Address(host="h")).to_json() == (
        b'{"id":{"pub":""},"did":{},"addr":{"host":"h"}}'
    )


def test_broadcast_envelope_bytes() -> None:
    env = Envelope(
        behavior="/dms/node/hello",
        from_=Handle(ZERO_KEY_ID, DID("did:key:z6Mk"), Address("12D3KooW", "root")),
        nonce=1731000000000000001,
        options=EnvelopeOptions(1731000030000000000, topic="/nunet/hello"),
    ).with_payload({"a": 1})
    expected = (
        '{"to":{"id":{"pub":""},"did":{},"addr":{}},"be":"/dms/node/hello",'
        '"from":{"id":{"pub":"' + ZERO_KEY_B32 + '"},"did":{"uri":"did:key:z6Mk"},'
        '"addr":{"host":"12D3KooW","inbox":"root"}},"nonce":1731000000000000001,'
        '"opt":{"exp":1731000030000000000,"topic":"/nunet/hello"},"msg":"eyJhIjoxfQ=="}'
    ).encode()
    assert env.to_json() == expected
    assert env.is_broadcast()
    assert env.decode_payload() == {"a": 1}
    assert Envelope.from_json(expected) == env


def test_omitempty_of_cap_sig_cont_topic() -> None:
    env = Envelope(behavior="/b", options=EnvelopeOptions(7))
    head = b'{"to":' + EMPTY_HANDLE + b',"be":"/b","from":' + EMPTY_HANDLE + b',"nonce":0'
    assert env.to_json() == head + b',"opt":{"exp":7},"msg":""}'
    full = Envelope(
        behavior="/b",
        options=EnvelopeOptions(7, reply_to="/r<1>", topic="t&"),
        message=None,
        capability=b"\x00\x01",
        signature=b"\xff",
    )
    assert full.to_json() == head + (
        b',"opt":{"exp":7,"cont":"/r\\u003c1\\u003e","topic":"t\\u0026"},'
        b'"msg":null,"cap":"AAE=","sig":"/w=="}'
    )
    assert full.is_broadcast()
    addressed = Envelope(
        to=Handle(address=Address(inbox="root")), options=EnvelopeOptions(7, topic="t")
    )
    assert not addressed.is_broadcast()  # a topic alone is not enough: `to` must be empty
    assert Envelope(options=EnvelopeOptions(7, topic="t")).is_broadcast()
    assert not Envelope(options=EnvelopeOptions(7)).is_broadcast()


def test_signing_bytes_drop_sig_and_keep_cap() -> None:
    env = Envelope(options=EnvelopeOptions(1), capability=b"c", signature=b"s")
    data = env.signing_bytes()
    assert data.startswith(b"dms:msg:{")
    assert b'"cap":"Yw=="' in data
    assert b'"sig"' not in data


def test_parse_is_lenient_on_key_case_and_ignores_unknown_keys() -> None:
    text = (
        '{"TO":{"Id":{"PUB":""},"DiD":{},"ADDR":{"Inbox":"x"}},"Be":"/b","unknown":[1,{"a":2}],'
        '"From":{},"NONCE":3,"Opt":{"EXP":9,"Cont":"c","TOPIC":"t"},"Msg":"","CAP":"",'
        '"ſig":"","\u212aey":1}'
    )
    env = Envelope.from_json(text)
    assert env == Envelope(
        to=Handle(address=Address(inbox="x")),
        behavior="/b",
        nonce=3,
        options=EnvelopeOptions(9, "c", "t"),
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"be":"a","be":"b"}',
        '{"be":"a","Be":"b"}',
        '{"sig":"","\u017fig":""}',  # LONG S fills sig too
        '{"nonce":5,"nonce":null}',
        '{"msg":"AA==","MSG":null}',
        '{"to":{"addr":{"host":"h"}},"to":{"addr":{"inbox":"i"}}}',
        '{"to":{"addr":{"host":"h","Host":"g"}}}',
        '{"from":{"id":{"pub":"","PUB":""}}}',
        '{"opt":{"exp":1,"Exp":2}}',
    ],
)
def test_repeated_keys_are_refused_in_a_signed_envelope(text: str) -> None:
    """Go would merge them; a signed message must read the same to every reader, so we refuse."""
    with pytest.raises(InvalidInput, match="duplicate key"):
        Envelope.from_json(text)


def test_missing_msg_is_go_nil() -> None:
    assert Envelope.from_json("{}").message is None
    assert Envelope.from_json('{"msg":""}').message == b""


@pytest.mark.parametrize(
    "text",
    [
        "null",
        "[]",
        "1",
        '"x"',
        "",
        "{",
        '{"nonce":1.0}',
        '{"nonce":1e3}',
        '{"nonce":-1}',
        '{"nonce":-0}',
        '{"nonce":18446744073709551616}',
        '{"nonce":"1"}',
        '{"opt":{"exp":NaN}}',
        '{"opt":[]}',
        '{"opt":{"exp":true}}',
        '{"be":1}',
        '{"to":"x"}',
        '{"to":{"id":"x"}}',
        '{"to":{"id":{"pub":"cafe"}}}',
        '{"to":{"did":{"uri":5}}}',
        '{"to":{"addr":{"host":[]}}}',
        '{"msg":"not base64!"}',
        '{"msg":"AAE"}',
        '{"cap":[1,2]}',
        '{"sig":{}}',
        '{"a":1} x',
        '\ufeff{"a":1}',
    ],
)
def test_junk_is_refused_with_a_one_line_error(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Envelope.from_json(text)
    assert "\n" not in str(info.value)


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(InvalidInput, match="UTF-8"):
        Envelope.from_json(b'{"be":"\xff"}')


def test_nonce_at_uint64_edge() -> None:
    top = (1 << 64) - 1
    env = Envelope.from_json(f'{{"nonce":{top}}}')
    assert env.nonce == top
    with pytest.raises(InvalidInput):
        Envelope(nonce=1 << 64)
    with pytest.raises(InvalidInput):
        EnvelopeOptions(-1)


def test_from_value_accepts_plain_json_loads_output() -> None:
    env = Envelope(behavior="/x", nonce=4, options=EnvelopeOptions(9, "c")).with_payload([1])
    assert Envelope.from_value(json.loads(env.to_json())) == env
    with pytest.raises(InvalidInput):
        Envelope.from_value({"nonce": 1.5})
    with pytest.raises(InvalidInput):
        Envelope.from_value(None)
    with pytest.raises(InvalidInput):
        Handle.from_value(None)


def test_payload_helpers() -> None:
    env = Envelope(options=EnvelopeOptions(1), signature=b"sig")
    assert env.decode_payload() is None
    with_payload = env.with_payload({"b": "<", "a": [1, None]})
    assert with_payload.message == b'{"a":[1,null],"b":"\\u003c"}'
    assert with_payload.signature == b""  # the old signature no longer covers msg
    assert with_payload.decode_payload() == {"a": [1, None], "b": "<"}
    assert env.with_payload(None).message == b""
    with pytest.raises(InvalidInput):
        Envelope(message=b"{").decode_payload()


# -- round trips -------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_uint64 = st.integers(0, (1 << 64) - 1)
_handles = st.builds(
    Handle,
    st.builds(ID, st.binary(max_size=40)),
    st.builds(DID, _text),
    st.builds(Address, _text, _text),
)
_envelopes = st.builds(
    Envelope,
    _handles,
    _text,
    _handles,
    _uint64,
    st.builds(EnvelopeOptions, _uint64, _text, _text),
    st.one_of(st.none(), st.binary(max_size=30)),
    st.binary(max_size=30),
    st.binary(max_size=30),
)


@given(_envelopes)
@settings(max_examples=300)
def test_envelope_marshal_parse_round_trip(env: Envelope) -> None:
    data = env.to_json()
    parsed = Envelope.from_json(data)
    assert parsed == env
    assert parsed.to_json() == data


@given(_handles)
def test_handle_marshal_parse_round_trip(handle: Handle) -> None:
    assert Handle.from_json(handle.to_json()) == handle


def _shuffle_case(key: str, mask: int) -> str:
    return "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(key))


@given(_envelopes, st.integers(0, 255), st.dictionaries(st.sampled_from("xyzqw"), st.integers()))
def test_non_canonical_json_parses_to_the_same_envelope(
    env: Envelope, mask: int, extra: dict[str, int]
) -> None:
    """Key case, spacing, key order and unknown keys do not change what Go (or we) parse."""
    obj = json.loads(env.to_json())
    noisy = {_shuffle_case(k, mask): v for k, v in reversed(list(obj.items()))}
    noisy.update(extra)
    parsed = Envelope.from_json(json.dumps(noisy, indent=1, ensure_ascii=True))
    assert parsed.to_json() == env.to_json()


@given(_envelopes)
@settings(max_examples=300)
def test_direct_encoder_matches_the_generic_go_encoder(env: Envelope) -> None:
    """The hand-built envelope/handle JSON equals gojson's (itself checked against Go)."""
    assert env.to_json() == gojson.marshal(env)
    assert env.unsigned_json == gojson.marshal(dataclasses.replace(env, signature=b""))
    assert env.to.to_json() == gojson.marshal(env.to)
