"""``nunet key`` and ``nunet cap`` driven as a user would: the real console script in a subprocess.

Each test gets its own user dir; keys use the real keystore parameters, so every command pays
the real scrypt cost, as a user's does.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import coincurve
import pytest
from tests.gocompat.goprog import run_lines
from tests.support.fake_ledger import write_fake_ledger_cli

from dms.crypto import Ed25519PrivateKey, EthPublicKey, peer_id_from_public_key
from dms.did import DID, did_from_public_key, public_key_from_did
from dms.ucan import parse_token, parse_token_list, verify_token

NUNET = str(Path(sys.executable).parent / "nunet")
PASSPHRASE = "correct horse battery staple"


@dataclass
class Nunet:
    """Runs ``nunet`` with its own HOME, user dir and passphrase."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def user_dir(self) -> Path:
        return self.root / "nunet"

    def run(self, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [NUNET, *args],
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        if ok:
            assert result.returncode == 0, f"nunet {' '.join(args)}: {result.stderr}"
        return result

    def out(self, *args: str, **env: str) -> str:
        return self.run(*args, **env).stdout.strip()

    def fails(self, *args: str, match: str, **env: str) -> str:
        """Run a command that must fail with one ``error:`` line on stderr matching ``match``."""
        result = self.run(*args, ok=False, **env)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert match in lines[0], lines[0]
        return lines[0]

    def cap_file(self, name: str) -> Path:
        return self.user_dir / "cap" / f"{name}.cap"

    def cap_dir_snapshot(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((self.user_dir / "cap").iterdir())}


@pytest.fixture
def nunet(tmp_path: Path) -> Nunet:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "DMS_GENERAL_USER_DIR": str(tmp_path / "nunet"),
        "DMS_PASSPHRASE": PASSPHRASE,
    }
    return Nunet(tmp_path, env)


@dataclass
class Walkthrough:
    user: str
    dms: str
    orchestrator: str
    grant: str
    delegated: str


def walkthrough(n: Nunet) -> Walkthrough:
    """The README walkthrough, command for command."""
    n.run("cap", "new", "user")
    n.run("cap", "new", "dms")
    user, dms = n.out("key", "did", "user"), n.out("key", "did", "dms")
    n.run("cap", "anchor", "--context", "dms", "--root", user)
    grant = n.out(
        "cap",
        "grant",
        "--context",
        "user",
        "--cap",
        "/public",
        "--cap",
        "/broadcast",
        "--cap",
        "/dms/deployment",
        "--topic",
        "/nunet",
        "--duration",
        "720h",
        dms,
    )
    n.run("cap", "anchor", "--context", "dms", "--provide", grant)
    orchestrator = n.out("key", "new", "orchestrator")
    delegated = n.out(
        "cap",
        "delegate",
        "--context",
        "dms",
        "--cap",
        "/public",
        "--cap",
        "/dms/deployment",
        "--topic",
        "/nunet",
        "--duration",
        "24h",
        "--depth",
        "1",
        orchestrator,
    )
    return Walkthrough(user, dms, orchestrator, grant, delegated)


def test_readme_walkthrough_builds_a_verifiable_chain(nunet: Nunet) -> None:
    w = walkthrough(nunet)
    assert w.user.startswith("did:key:z6Mk") and w.dms.startswith("did:key:z6Mk")
    assert w.user != w.dms != w.orchestrator

    (token,) = parse_token_list(w.delegated.encode()).tokens
    verify_token(token, now_ns=time.time_ns())
    links = list(token.dms.links())
    assert [(t.issuer.uri, t.subject.uri) for t in links] == [
        (w.dms, w.orchestrator),
        (w.user, w.dms),
    ]
    assert list(token.dms.capability or []) == ["/public", "/dms/deployment"]
    assert token.dms.depth == 1

    listing = json.loads(nunet.out("cap", "list", "--context", "dms", "--json"))
    assert listing["did"] == w.dms
    assert listing["roots"] == [w.user]
    assert listing["provide"] == json.loads(w.grant)
    assert listing["require"] == {} and listing["revoke"] == {}

    saved = json.loads(nunet.cap_file("dms").read_text())
    assert list(saved) == ["did", "roots", "require", "provide", "revoke"]
    assert saved["roots"] == [{"uri": w.user}]
    assert oct(nunet.cap_file("dms").stat().st_mode & 0o777) == "0o600"
    assert oct((nunet.user_dir / "key").stat().st_mode & 0o777) == "0o700"

    human = nunet.out("cap", "list", "--context", "dms")
    assert w.user in human and "/dms/deployment" in human and "provide #1" in human


def test_walkthrough_tokens_verify_in_go(nunet: Nunet, go_program: Callable[[str], Path]) -> None:
    w = walkthrough(nunet)
    lines = run_lines(go_program("tokens"), "verify", [w.grant, w.delegated])
    for wire, line in zip([w.grant, w.delegated], lines, strict=True):
        report = json.loads(line)
        assert report["links"] and all(link["ok"] for link in report["links"]), report
        assert json.loads(base64.b64decode(report["list"])) == json.loads(wire)


def test_wrong_passphrase_is_one_line_and_changes_nothing(nunet: Nunet) -> None:
    w = walkthrough(nunet)
    before = nunet.cap_dir_snapshot()
    nunet.fails(
        "cap",
        "anchor",
        "-c",
        "dms",
        "--root",
        w.orchestrator,
        match="wrong passphrase for key 'dms'",
        DMS_PASSPHRASE="wrong",
    )
    assert nunet.cap_dir_snapshot() == before


def test_forged_or_foreign_tokens_are_refused_as_anchors(nunet: Nunet) -> None:
    w = walkthrough(nunet)
    before = nunet.cap_dir_snapshot()
    forged = w.grant.replace("/dms/deployment", "/dms/node")  # widen the grant, keep the sig
    nunet.fails("cap", "anchor", "-c", "dms", "--provide", forged, match="signature")
    # a valid token granted to someone else is not ours to provide
    nunet.fails("cap", "anchor", "-c", "user", "--provide", w.grant, match="granted to")
    nunet.fails("cap", "anchor", "-c", "dms", "--provide", "{not json", match="JSON")
    assert nunet.cap_dir_snapshot() == before


def test_bad_flags_give_clear_errors(nunet: Nunet) -> None:
    nunet.run("cap", "new", "user")
    other = did_from_public_key(Ed25519PrivateKey.generate().public_key).uri
    nunet.fails("cap", "grant", "--duration", "1h", other, match="--cap")
    nunet.fails("cap", "grant", "--cap", "/public", other, match="must expire")
    nunet.fails("cap", "grant", "--cap", "/public", "--expiry", "2020-01-01", other, match="past")
    nunet.fails("cap", "grant", "--cap", "public", "--duration", "1h", other, match="/")
    nunet.fails("cap", "grant", "--cap", "/public", "--duration", "1h", "bob", match="DID")
    nunet.fails("cap", "anchor", "--root", other, "--provide", "{}", match="exactly one")
    nunet.fails("cap", "list", "-c", "nobody", match="nunet key new nobody")


def test_delegation_never_exceeds_what_was_provided(nunet: Nunet) -> None:
    w = walkthrough(nunet)
    nunet.fails(
        "cap",
        "delegate",
        "-c",
        "dms",
        "--cap",
        "/dms/node",
        "--duration",
        "1h",
        w.orchestrator,
        match="no provide anchor",
    )
    nunet.fails(
        "cap",
        "delegate",
        "-c",
        "dms",
        "--cap",
        "/public",
        "--topic",
        "/other",
        "--duration",
        "1h",
        w.orchestrator,
        match="no provide anchor",
    )
    nunet.fails(
        "cap",
        "delegate",
        "-c",
        "user",
        "--cap",
        "/public",
        "--duration",
        "1h",
        w.dms,
        match="no provide anchor",
    )


def test_revocation_kills_the_provided_chain_until_removed(nunet: Nunet) -> None:
    w = walkthrough(nunet)
    revocations = nunet.out("cap", "revoke", "-c", "user", w.grant).splitlines()
    assert len(revocations) == 1
    revoke = parse_token(revocations[0].encode())
    assert revoke.dms.action == "revoke"
    verify_token(revoke, now_ns=time.time_ns())
    # only the issuer may revoke
    nunet.fails("cap", "revoke", "-c", "dms", w.grant, match="only the issuer")

    anchor = json.dumps({"tok": [json.loads(revocations[0])]})
    nunet.run("cap", "anchor", "-c", "dms", "--revoke", anchor)
    assert json.loads(nunet.out("cap", "list", "-c", "dms", "--json"))["revoke"] == json.loads(
        anchor
    )
    delegate = ("cap", "delegate", "-c", "dms", "--cap", "/public", "--duration", "1h")
    nunet.fails(*delegate, w.orchestrator, match="no provide anchor")

    nunet.run("cap", "remove", "-c", "dms", "--revoke", revocations[0])
    assert nunet.out(*delegate, w.orchestrator).startswith('{"tok":[')


def test_remove_anchors(nunet: Nunet) -> None:
    w = walkthrough(nunet)
    nunet.run("cap", "remove", "-c", "dms", "--root", w.user)
    nunet.run("cap", "remove", "-c", "dms", "--provide", w.grant)
    listing = json.loads(nunet.out("cap", "list", "-c", "dms", "--json"))
    assert listing["roots"] == [] and listing["provide"] == {}
    nunet.fails("cap", "remove", "-c", "dms", "--root", w.user, match="no such root")


def test_cap_new_refuses_to_overwrite_without_force(nunet: Nunet) -> None:
    w = walkthrough(nunet)
    before = nunet.cap_file("dms").read_bytes()
    nunet.fails("cap", "new", "dms", match="--force")
    assert nunet.cap_file("dms").read_bytes() == before
    assert nunet.out("cap", "new", "dms", "--force") == w.dms  # same key, fresh context
    assert json.loads(nunet.cap_file("dms").read_text())["roots"] == []
    backups = [p for p in (nunet.user_dir / "cap").iterdir() if p.name.startswith("dms.cap.")]
    assert backups and any(b.read_bytes() == before for b in backups)


def test_key_commands(nunet: Nunet) -> None:
    key = Ed25519PrivateKey.generate()
    expected = did_from_public_key(key.public_key).uri
    assert nunet.out("key", "import", "alice", key.seed.hex()) == expected
    assert nunet.out("key", "did", "alice") == expected
    assert nunet.out("key", "peer-id", "alice") == str(peer_id_from_public_key(key.public_key))
    nunet.fails("key", "new", "alice", match="--force")
    assert nunet.out("key", "did", "alice") == expected  # not overwritten
    assert nunet.out("key", "new", "bob").startswith("did:key:z6Mk")
    assert json.loads(nunet.out("key", "list", "--json")) == ["alice", "bob"]
    nunet.fails("key", "import", "carol", "zz", match="hex")
    nunet.fails("key", "did", "carol", match="nunet key new carol")
    no_tty = {"DMS_PASSPHRASE": ""}
    nunet.fails("key", "did", "alice", match="DMS_PASSPHRASE", **no_tty)


def test_ledger_context_signs_tokens_with_an_eth_key(nunet: Nunet, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_fake_ledger_cli(bin_dir)
    secret = coincurve.PrivateKey()
    nunet.env["PATH"] = f"{bin_dir}{os.pathsep}{nunet.env['PATH']}"
    nunet.env["FAKE_LEDGER_SECRET"] = secret.secret.hex()

    ledger_did = nunet.out("key", "did", "ledger")
    assert isinstance(public_key_from_did(DID(ledger_did)), EthPublicKey)
    assert nunet.out("cap", "new", "ledger") == ledger_did
    nunet.run("cap", "new", "dms")
    dms = nunet.out("key", "did", "dms")
    grant = nunet.out("cap", "grant", "-c", "ledger", "--cap", "/public", "--duration", "1h", dms)
    (token,) = parse_token_list(grant.encode()).tokens
    assert token.dms.issuer.uri == ledger_did
    verify_token(token, now_ns=time.time_ns())
    # the DMS accepts the Ledger-issued grant as a provide anchor and delegates from it
    nunet.run("cap", "anchor", "-c", "dms", "--provide", grant)
    other = did_from_public_key(Ed25519PrivateKey.generate().public_key).uri
    chained = nunet.out("cap", "delegate", "-c", "dms", "--cap", "/public", other)
    verify_token(parse_token_list(chained.encode()).tokens[0], now_ns=time.time_ns())


def test_token_arguments_bad_json_or_unreadable_file_are_invalid_input(nunet: Nunet) -> None:
    nunet.run("cap", "new", "dms")
    before = nunet.cap_dir_snapshot()
    bad = nunet.run("cap", "anchor", "-c", "dms", "--provide", "{not json", ok=False)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: tokens must be JSON: Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1)"
    )
    missing = nunet.run("cap", "anchor", "-c", "dms", "--provide", "@nope.json", ok=False)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: cannot read nope.json: No such file or directory"
    nunet.fails("cap", "anchor", "-c", "dms", "--provide", "{}", match="the token list is empty")
    assert nunet.cap_dir_snapshot() == before
