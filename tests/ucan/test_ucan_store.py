"""`.cap` files: exact format, round trip, old key spelling, expiry on load, tampering, backups."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from dms.did import DID
from dms.errors import CapabilityError, NotFound, TokenError
from dms.ucan import cap_path, load_context, new_context, reload_context, save_context
from tests.ucan.helpers import HOUR, NOW, key, make

ME, ORG, PEER = key("me"), key("org"), key("peer")


def clock() -> int:
    return NOW


def test_new_context_file_format_and_modes(tmp_path: Path) -> None:
    new_context(tmp_path, "user", ME, clock=clock)
    path = cap_path(tmp_path, "user")
    assert path == tmp_path / "cap" / "user.cap"
    assert path.read_bytes() == (
        b'{"did":{"uri":"'
        + ME.did.uri.encode()
        + b'"},"roots":[],"require":{},"provide":{},"revoke":{}}\n'
    )
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(CapabilityError, match="already exists"):
        new_context(tmp_path, "user", ME, clock=clock)


def test_round_trip_keeps_every_anchor_and_backs_up(tmp_path: Path) -> None:
    ctx = new_context(tmp_path, "dms", ME, clock=clock)
    ctx.add_roots([ORG.did])
    ctx.add_require(ctx.grant("delegate", PEER.did, caps=["/public"], expire_ns=NOW + HOUR).tokens)
    provided = make(ORG, "delegate", ME.did, caps=["/dms"], topics=["/nunet"])
    ctx.add_provide([provided])
    ctx.add_revoke([make(ORG, "revoke", PEER.did, caps=None)])
    path = save_context(tmp_path, ctx)
    first = path.read_bytes()
    assert first.endswith(b"}\n") and first.count(b"\n") == 1
    assert [p.name for p in path.parent.iterdir() if p.name.startswith("dms.cap.")]  # backup

    loaded = load_context(tmp_path, "dms", ME, clock=clock)
    assert loaded.list() == ctx.list()
    save_context(tmp_path, loaded)
    assert path.read_bytes() == first


def test_older_go_key_spelling_loads(tmp_path: Path) -> None:
    provided = make(ORG, "delegate", ME.did, caps=["/dms"])
    old = (
        b'{"DID":{"uri":"'
        + ME.did.uri.encode()
        + b'"},"Roots":[{"uri":"'
        + ORG.did.uri.encode()
        + b'"}],"Require":{},"Provide":{"tok":['
        + provided.to_json()
        + b"]}}\n"
    )
    path = cap_path(tmp_path, "user")
    path.parent.mkdir()
    path.write_bytes(old)
    view = load_context(tmp_path, "user", ME, clock=clock).list()
    assert view.roots == (ORG.did,)
    assert view.provide.tokens == (provided,)
    assert view.revoke.tokens == ()


def test_expired_tokens_are_dropped_on_load(tmp_path: Path) -> None:
    ctx = new_context(tmp_path, "user", ME, clock=clock)
    live = make(ORG, "delegate", ME.did, caps=["/a"], expire=NOW + 2 * HOUR)
    short = make(ORG, "delegate", ME.did, caps=["/b"], expire=NOW + HOUR)
    ctx.add_provide([live, short])
    save_context(tmp_path, ctx)
    later = load_context(tmp_path, "user", ME, clock=lambda: NOW + HOUR + 1)
    assert later.list().provide.tokens == (live,)


def test_a_tampered_token_fails_the_load_naming_the_file(tmp_path: Path) -> None:
    ctx = new_context(tmp_path, "user", ME, clock=clock)
    ctx.add_provide([make(ORG, "delegate", ME.did, caps=["/dms"])])
    path = save_context(tmp_path, ctx)
    path.write_bytes(path.read_bytes().replace(b'"/dms"', b'"/"'))
    with pytest.raises(TokenError, match=r"user\.cap: provide token: invalid signature"):
        load_context(tmp_path, "user", ME, clock=clock)
    path.write_bytes(b"{not json\n")
    with pytest.raises(TokenError, match=r"user\.cap"):
        load_context(tmp_path, "user", ME, clock=clock)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_context(tmp_path, "nope", ME)
    new_context(tmp_path, "user", ME, clock=clock)
    with pytest.raises(CapabilityError, match="belongs to"):
        load_context(tmp_path, "user", ORG, clock=clock)
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(CapabilityError):
            cap_path(tmp_path, bad)


def test_revoked_anchor_does_not_brick_the_context(tmp_path: Path) -> None:
    ctx = new_context(tmp_path, "user", ME, clock=clock)
    provided = make(ORG, "delegate", ME.did, caps=["/dms"])
    ctx.add_provide([provided])
    ctx.add_revoke([make(ORG, "revoke", ME.did, caps=["/dms"])])
    save_context(tmp_path, ctx)
    loaded = load_context(tmp_path, "user", ME, clock=clock)
    with pytest.raises(CapabilityError, match="no provide anchor"):
        loaded.delegate("invoke", DID(PEER.did.uri), caps=["/dms"])


def test_reload_applies_file_changes_and_keeps_anchors_on_a_bad_file(tmp_path: Path) -> None:
    running = new_context(tmp_path, "dms", ME, clock=clock)
    editor = load_context(tmp_path, "dms", ME, clock=clock)  # what `nunet cap anchor` does
    editor.add_roots([ORG.did])
    save_context(tmp_path, editor)
    assert running.list().roots == ()
    reload_context(tmp_path, running)
    assert running.list() == editor.list()

    path = cap_path(tmp_path, "dms")
    path.write_bytes(b'{"did":')  # e.g. a file truncated by hand
    with pytest.raises(TokenError, match=str(path)):
        reload_context(tmp_path, running)
    assert running.list().roots == (ORG.did,)  # unchanged

    foreign = new_context(tmp_path, "other", PEER, clock=clock)
    with pytest.raises(CapabilityError, match="cannot replace"):
        running.replace_anchors(foreign.list())
