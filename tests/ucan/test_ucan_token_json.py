"""Token JSON: Go field order and omitempty, nil vs empty, lenient key case, junk rejection."""

from __future__ import annotations

import dataclasses

import pytest

import dms.ucan
from dms.did import DID
from dms.errors import CapabilityError, TokenError
from dms.ucan import (
    DMSToken,
    Token,
    TokenJSONError,
    TokenList,
    parse_token,
    parse_token_list,
    parse_tokens,
)
from tests.ucan.helpers import NOW, key

A, B = key("a"), key("b")


def unsigned(**kw: object) -> DMSToken:
    fields: dict[str, object] = {
        "action": "delegate",
        "issuer": DID("did:key:zA"),
        "subject": DID("did:key:zB"),
        "audience": DID(),
        "topic": ("/nunet",),
        "capability": ("/public", "/broadcast"),
        "nonce": b"\x00" * 12,
        "expire": 1767139200000000000,
    }
    fields.update(kw)
    return DMSToken(**fields)  # type: ignore[arg-type]


def test_field_order_and_omitempty() -> None:
    t = unsigned()
    assert t.json == (
        b'{"act":"delegate","iss":{"uri":"did:key:zA"},"sub":{"uri":"did:key:zB"},"aud":{},'
        b'"topic":["/nunet"],"cap":["/public","/broadcast"],"nonce":"AAAAAAAAAAAAAAAA",'
        b'"exp":1767139200000000000}'
    )
    full = unsigned(depth=3, chain=Token(unsigned(signature=b"\x01")), signature=b"\xff")
    assert full.json == (
        t.json[:-1] + b',"depth":3,"chain":{"dms":' + t.json[:-1] + b',"sig":"AQ=="}},"sig":"/w=="}'
    )
    assert full.unsigned_json == full.json[: -len(b',"sig":"/w=="}')] + b"}"
    assert full.signing_input == b"dms:token:" + full.unsigned_json


def test_nil_and_empty_are_kept_apart() -> None:
    nil = unsigned(capability=None, nonce=None, topic=())
    assert b'"cap":null,"nonce":null' in nil.json and b"topic" not in nil.json
    empty = unsigned(capability=(), nonce=b"")
    assert b'"cap":[],"nonce":""' in empty.json
    for token in (nil, empty):
        wire = b'{"tok":[{"dms":' + token.json + b"}]}"
        assert parse_token_list(wire).to_json() == wire


def test_missing_keys_decode_as_go_zero_values() -> None:
    parsed = parse_token(b'{"dms":{"act":"invoke","sig":null}}').dms
    assert parsed.capability is None and parsed.nonce is None and parsed.expire == 0
    assert (
        parsed.json
        == b'{"act":"invoke","iss":{},"sub":{},"aud":{},"cap":null,"nonce":null,"exp":0}'
    )


def test_html_characters_are_escaped() -> None:
    assert b'"cap":["/a\\u003cb\\u003e\\u0026"]' in unsigned(capability=("/a<b>&",)).json


def test_empty_token_list_is_an_empty_object() -> None:
    assert TokenList().to_json() == b"{}"
    for wire in (b"{}", b"null", b'{"tok":null}', b'{"tok":[]}'):
        assert parse_token_list(wire).tokens == ()


def test_keys_match_case_insensitively_like_go() -> None:
    t = Token(unsigned(signature=b"\x01\x02"))
    shouty = (
        t.to_json()
        .replace(b'"dms"', b'"DMS"')
        .replace(b'"act"', b'"Act"')
        .replace(b'"uri"', b'"URI"')
        .replace(b'"exp"', b'"EXP"')
    )
    assert parse_token(shouty).to_json() == t.to_json()
    # unknown keys are ignored, as Go does
    assert parse_token(t.to_json()[:-2] + b',"extra":[1,{"x":2}]}}').to_json() == t.to_json()


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"[]",
        b'{"tok":{}}',
        b'{"tok":[1]}',
        b'{"tok":[{}]}',
        b'{"tok":[{"dms":null}]}',
        b'{"tok":[{"ucan":{}}]}',
        b'{"tok":[{"dms":{"act":"fly"}}]}',
        b'{"tok":[{"dms":{"act":"invoke","exp":-1}}]}',
        b'{"tok":[{"dms":{"act":"invoke","exp":1.5}}]}',
        b'{"tok":[{"dms":{"act":"invoke","exp":18446744073709551616}}]}',
        b'{"tok":[{"dms":{"act":"invoke","exp":true}}]}',
        b'{"tok":[{"dms":{"act":"invoke","exp":NaN}}]}',
        b'{"tok":[{"dms":{"act":"invoke","cap":"/x"}}]}',
        b'{"tok":[{"dms":{"act":"invoke","cap":{}}}]}',
        b'{"tok":[{"dms":{"act":"invoke","cap":[null]}}]}',
        b'{"tok":[{"dms":{"act":"invoke","nonce":"!!"}}]}',
        b'{"tok":[{"dms":{"act":"invoke","iss":"did:key:z"}}]}',
        b'{"tok":[{"dms":{"act":"invoke","iss":{"uri":5}}}]}',
        b'{"tok":[{"dms":{"act":"invoke","act":"invoke"}}]}',
        b'{"tok":[{"dms":{"act":"invoke","ACT":"invoke"}}]}',
        b'{"tok":[{"dms":{"act":"invoke","chain":{}}}]}',
        b'{"tok":[]} trailing',
        b"\xff",
    ],
)
def test_junk_is_rejected_with_one_line_token_error(junk: bytes) -> None:
    with pytest.raises(TokenError) as info:
        parse_token_list(junk)
    assert "\n" not in str(info.value)


def test_deep_nesting_is_rejected() -> None:
    token = b'{"dms":{"act":"invoke"}}'
    for _ in range(100):
        token = b'{"dms":{"act":"delegate","chain":' + token + b"}}"
    with pytest.raises(TokenError):
        parse_token(token)


def test_sign_and_verify_signature() -> None:
    t = unsigned(issuer=A.did, subject=B.did, expire=NOW)
    signed = t.sign(A)
    assert signed.verify_signature()
    assert len(signed.signature) == 64
    assert not dataclasses.replace(signed, expire=NOW + 1).verify_signature()
    assert not dataclasses.replace(signed, signature=signed.signature[:-1]).verify_signature()
    with pytest.raises(CapabilityError):
        t.sign(B)


def test_public_api_is_curated() -> None:
    assert sorted(dms.ucan.__all__) == sorted(
        [
            "MAX_CAPABILITY_SIZE",
            "ROOT",
            "SIGNATURE_PREFIX",
            "Action",
            "Capability",
            "CapabilityContext",
            "ContextView",
            "DMSToken",
            "RevocationSet",
            "SelfSign",
            "Token",
            "TokenJSONError",
            "TokenList",
            "allow_action",
            "allow_broadcast",
            "allow_delegation",
            "allow_invocation",
            "cap_path",
            "capabilities",
            "capability",
            "implies",
            "load_context",
            "new_context",
            "new_token",
            "parse_token",
            "parse_token_list",
            "parse_tokens",
            "reload_context",
            "save_context",
            "subsumes",
            "verify_depth",
            "verify_token",
        ]
    )
    for name in dms.ucan.__all__:
        assert hasattr(dms.ucan, name)


def test_parse_tokens_reads_a_list_or_a_single_token() -> None:
    one = Token(unsigned(issuer=A.did, subject=B.did, expire=NOW).sign(A))
    two = Token(unsigned(issuer=B.did, subject=A.did, expire=NOW).sign(B))
    listed = TokenList((one, two))
    assert parse_tokens(listed.to_json()) == listed
    assert parse_tokens(one.to_json()) == TokenList((one,))
    assert parse_tokens(one.to_json().replace(b'"dms"', b'"DMS"')) == TokenList((one,))
    assert parse_tokens(b"{}") == TokenList()
    assert parse_tokens(b"null") == TokenList()
    with pytest.raises(TokenError, match="invalid token list: expected a JSON object"):
        parse_tokens(b"[]")
    with pytest.raises(TokenError, match="duplicate key"):
        parse_tokens(b'{"dms":{},"Dms":{}}')


def test_parse_tokens_tells_undecodable_json_apart() -> None:
    with pytest.raises(TokenJSONError) as info:
        parse_tokens(b"{not json")
    assert info.value.reason.startswith("Expecting property name")
    assert str(info.value) == f"invalid token JSON: {info.value.reason}"
    # NaN decodes (so it is not a JSON-syntax error) but is still refused as a token
    with pytest.raises(TokenError) as nan:
        parse_tokens(b'{"tok":[{"dms":{"exp":NaN}}]}')
    assert not isinstance(nan.value, TokenJSONError)
    assert str(nan.value) == "invalid token JSON: invalid JSON value NaN"
