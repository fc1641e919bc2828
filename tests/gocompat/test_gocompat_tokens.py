"""Tokens against Go itself: encoding/json bytes and crypto/ed25519 signatures, both directions.

``tests/gocompat/go/tokens`` declares the token structs with the Go DMS's json tags. Python-made
token lists must re-marshal in Go to the same bytes, with every signature valid in Go; Go-made
tokens must parse, verify and re-marshal byte-identically in Python.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from dms.crypto import Ed25519PrivateKey
from dms.did import DID, KeyProvider
from dms.ucan import CapabilityContext, Token, TokenList, parse_token_list, verify_token
from tests.gocompat.goprog import run_lines
from tests.ucan.helpers import HOUR, NOW, key, make

pytestmark = pytest.mark.go

SEED1, SEED2 = bytes(range(32)), bytes(range(32, 64))


@pytest.fixture(scope="session")
def tokens_program(go_program: Callable[[str], Path]) -> Path:
    return go_program("tokens")


def links(token: Token) -> list[bytes]:
    """Signed bytes of a token and its chain, depth first (the Go program's order)."""
    return [link.unsigned_json for link in token.dms.links()]


def python_lists() -> list[TokenList]:
    a, b, c = key("go-a"), key("go-b"), key("go-c")
    clock = lambda: NOW  # noqa: E731
    ctx_a = CapabilityContext(a, clock=clock)
    ctx_b = CapabilityContext(b, clock=clock)
    grant = ctx_a.grant(
        "delegate",
        b.did,
        caps=["/dms/<x>&y", "/public"],
        topics=["/nunet"],
        expire_ns=NOW + 2 * HOUR,
        depth=3,
    )
    ctx_b.add_provide(grant.tokens)
    blob = ctx_b.provide(
        a.did,
        c.did,
        a.did,
        expire_ns=NOW + HOUR,
        invoke=["/dms/<x>&y/z"],
        delegate=["/dms/actor/replyto/1"],
    )
    odd = [
        make(a, "revoke", b.did, caps=None),  # older revoke form: "cap":null
        make(a, "invoke", b.did, caps=[], nonce=b""),  # "cap":[] and "nonce":""
        make(a, "invoke", b.did, caps=[], nonce=None),  # "nonce":null
        make(
            a,
            "broadcast",
            b.did,
            topics=["/t\u2028\u00e9\U0001f600"],
            caps=['/"q"\\'],
            expire=(1 << 64) - 1,
            depth=(1 << 64) - 1,
        ),
        make(a, "invoke", DID(), audience=DID(), caps=["/\x01\x7f"]),
    ]
    return [grant, parse_token_list(blob), TokenList(tuple(odd)), TokenList()]


def test_python_tokens_verify_byte_for_byte_in_go(tokens_program: Path) -> None:
    lists = python_lists()
    wires = [tl.to_json().decode() for tl in lists]
    out = run_lines(tokens_program, "verify", wires)
    for tl, wire, line in zip(lists, wires, out, strict=True):
        assert not line.startswith("ERR"), line
        report = json.loads(line)
        assert base64.b64decode(report["list"]).decode() == wire
        expected = [data for t in tl.tokens for data in links(t)]
        got = [base64.b64decode(link["data"]) for link in report["links"]]
        assert got == expected
        assert all(link["ok"] for link in report["links"]), report["links"]


def test_go_rejects_what_python_rejects(tokens_program: Path) -> None:
    token = make(key("go-a"), "invoke", key("go-b").did, caps=["/dms"])
    tampered = TokenList((token,)).to_json().replace(b'"/dms"', b'"/dmz"').decode()
    (line,) = run_lines(tokens_program, "verify", [tampered])
    assert [link["ok"] for link in json.loads(line)["links"]] == [False]
    with pytest.raises(Exception, match="invalid signature"):
        verify_token(parse_token_list(tampered).tokens[0], NOW)


def test_go_tokens_verify_and_remarshal_in_python(tokens_program: Path) -> None:
    exp = NOW + HOUR
    result = subprocess.run(
        [str(tokens_program), "sign", SEED1.hex(), SEED2.hex(), str(exp)],
        capture_output=True,
        check=True,
    )
    wire = result.stdout.rstrip(b"\n")
    assert not wire.startswith(b"ERR"), wire
    tokens = parse_token_list(wire)
    assert tokens.to_json() == wire
    delegate, invoke, revoke = tokens.tokens
    d1 = KeyProvider(Ed25519PrivateKey(SEED1)).did
    d2 = KeyProvider(Ed25519PrivateKey(SEED2)).did
    assert (delegate.dms.issuer, delegate.dms.subject) == (d1, d2)
    assert invoke.dms.chain == delegate and invoke.dms.nonce == b""
    assert revoke.dms.capability is None
    for token in tokens.tokens:
        verify_token(token, NOW)
    # and the Go-made delegate token works as a provide anchor for SEED2's context
    ctx = CapabilityContext(KeyProvider(Ed25519PrivateKey(SEED2)), clock=lambda: NOW)
    ctx.add_provide([delegate])
    chained = ctx.delegate("invoke", d1, caps=["/public/x"])
    verify_token(chained.tokens[0], NOW)
    assert invoke.dms.capability == ("/dms/<a&b>/x", "/public/\u00e9\u2028")
