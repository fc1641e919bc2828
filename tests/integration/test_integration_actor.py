"""Real ``nunet run`` daemons on loopback, driven through the CLI and a raw libp2p peer."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import httpx
import trio
from tests.integration.conftest import Cli, log_of

from dms import devnet
from dms.actor import Actor, Address, Envelope, Handle, SecurityContext
from dms.client import build_message, parse_destination
from dms.crypto import Ed25519PrivateKey
from dms.did import KeyProvider, keystore_for
from dms.network import Libp2pNetwork
from dms.ucan import CapabilityContext, load_context


def _user_context(net: devnet.Devnet) -> CapabilityContext:
    key = keystore_for(net.user_dir).load("user", devnet.DEVNET_PASSPHRASE)
    return load_context(net.user_dir, "user", KeyProvider(key))


def _wait_for_log(net: devnet.Devnet, node: int, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_of(net, node):
        assert time.monotonic() < deadline, f"{text!r} not in node{node}'s log"
        time.sleep(0.1)


def test_hello_to_own_node_and_across_the_network(cli: Cli) -> None:
    net = cli.net
    own = json.loads(cli.run("actor", "cmd", "/public/hello", "--json").stdout)
    assert own == {"DID": {"uri": net.nodes[0].did}}
    # node1 and node2 only know node0 (their bootstrap peer): node1 finds node2 through the DHT
    by_did = cli.run("actor", "cmd", "/public/hello", "--json", "-d", net.nodes[2].did, node=1)
    assert json.loads(by_did.stdout) == {"DID": {"uri": net.nodes[2].did}}
    by_peer = cli.run("actor", "cmd", "/public/hello", "--json", "-d", net.nodes[0].peer_id, node=2)
    assert json.loads(by_peer.stdout) == {"DID": {"uri": net.nodes[0].did}}


def test_msg_then_invoke_and_send(cli: Cli) -> None:
    envelope = cli.run("actor", "msg", "/public/hello", "-i", "-t", "20s").stdout.strip()
    parsed = Envelope.from_json(envelope)
    assert parsed.options.reply_to.startswith("/private/user/")
    assert parsed.from_.address.inbox == "user-" + parsed.options.reply_to.rsplit("/", 1)[1]
    assert parsed.from_.did.uri == cli.net.user_did  # signed for the user's context
    reply = cli.run("actor", "invoke", envelope, "--json").stdout
    assert json.loads(reply) == {"DID": {"uri": cli.net.nodes[0].did}}
    message = cli.run("actor", "msg", "/public/hello", "-d", cli.net.nodes[1].did).stdout.strip()
    assert cli.run("actor", "send", message).stdout.strip() == "message sent"


def test_a_stranger_without_capabilities_is_refused(cli: Cli, tmp_path: Path) -> None:
    stranger = {"DMS_GENERAL_USER_DIR": str(tmp_path / "stranger")}
    cli.run("cap", "new", "user", env=stranger)
    cli.fails(
        "actor",
        "cmd",
        "/public/hello",
        "-t",
        "3s",
        match="no reply before the message expired",
        env=stranger,
    )
    _wait_for_log(cli.net, 0, "unauthorized")
    # the node's trust is unchanged: the real user is still served
    cli.run("actor", "cmd", "/public/hello", "--json")


def test_oversized_message_is_refused(cli: Cli, tmp_path: Path) -> None:
    payload = tmp_path / "big.json"
    payload.write_text(json.dumps("x" * (2 << 20)))
    envelope = tmp_path / "msg.json"
    envelope.write_text(cli.run("actor", "msg", "/public/hello", f"@{payload}").stdout)
    assert envelope.stat().st_size > 2 << 20
    cli.fails("actor", "send", f"@{envelope}", match="400")


def test_replayed_reply_is_dropped(cli: Cli) -> None:
    """A reply captured from an invocation and delivered again finds no one waiting for it."""
    net = cli.net
    envelope = cli.run("actor", "msg", "/public/hello", "-i", "-d", net.nodes[1].did).stdout
    response = httpx.post(f"{net.nodes[0].rest_url}/api/v1/actor/invoke", content=envelope)
    assert response.status_code == 200
    reply = Envelope.from_json(response.content)
    assert reply.from_.address.host == net.nodes[1].peer_id
    # node1 relays its own (validly signed) reply to node0 a second time: the one-shot reply
    # inbox is gone, so node0 no longer accepts anything on it. node1 may still believe in the
    # inbox (node0 announced it with the request): then node0 takes the frame, drops it and
    # tells node1 its inboxes, and the next try is refused outright.
    url = f"{net.nodes[1].rest_url}/api/v1/actor/send"
    again = httpx.post(url, content=reply.to_json())
    deadline = time.monotonic() + 10
    while again.status_code == 200 and time.monotonic() < deadline:
        _wait_for_log(net, 0, f"unknown inbox {reply.to.address.inbox!r}")
        again = httpx.post(url, content=reply.to_json())
    assert again.status_code == 500
    assert reply.to.address.inbox in again.json()["error"]


async def test_forged_expired_and_spoofed_envelopes_are_dropped(
    shared_devnet: devnet.Devnet,
) -> None:
    net = shared_devnet
    target = net.nodes[1]
    user = _user_context(net)
    network = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        await network.connect(target.address)
        me = Handle(address=Address(network.host_id, "root"))

        def message(**kw: object) -> Envelope:
            return build_message(
                user, me, "/public/hello", None, destination=target.did, **kw
            ).envelope  # type: ignore[arg-type]

        # a valid invocation from this peer is answered (the control case)
        actor = Actor(network, SecurityContext(Ed25519PrivateKey.generate(), user), "tester")
        await nursery.start(actor.run)
        reply = await actor.invoke(parse_destination(target.did), "/public/hello", timeout=10)
        assert reply.decode_payload() == {"DID": {"uri": target.did}}

        forged = dataclasses.replace(message(), message=b'"tampered"')
        await network.send(target.peer_id, "root", forged.to_json(), timeout=5)
        expired = message(timeout_s=0.05)
        await trio.sleep(0.2)
        await network.send(target.peer_id, "root", expired.to_json(), timeout=5)
        other = Handle(address=Address(net.nodes[2].peer_id, "root"))
        spoofed = build_message(user, other, "/public/hello", None, destination=target.did)
        await network.send(target.peer_id, "root", spoofed.envelope.to_json(), timeout=5)
        # Our host stays up until the target has judged every message: closing it right after
        # the last send could cut that message off in flight (seen once on a loaded machine).
        for reason, host in (
            ("bad_signature", network.host_id),
            ("expired", network.host_id),
            ("spoofed", net.nodes[2].peer_id),
        ):
            await trio.to_thread.run_sync(
                _wait_for_log, net, 1, f"dropped message '/public/hello' from {host}: {reason}"
            )
        nursery.cancel_scope.cancel()


def test_a_second_daemon_on_a_taken_port_fails_with_one_line(cli: Cli, tmp_path: Path) -> None:
    taken = cli.net.nodes[0].rest_port
    result = cli.run(
        "run",
        ok=False,
        env={
            "DMS_GENERAL_USER_DIR": str(tmp_path / "other"),
            "DMS_REST_PORT": str(taken),
            "DMS_P2P_LISTEN_ADDRESS": "/ip4/127.0.0.1/tcp/0",
            "DMS_P2P_BOOTSTRAP_PEERS": "[]",
        },
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: cannot listen on 127.0.0.1:{taken}: Address already in use"
    assert "Traceback" not in result.stderr


def test_cap_anchor_changes_apply_to_a_running_dms(cli: Cli, tmp_path: Path) -> None:
    stranger = {"DMS_GENERAL_USER_DIR": str(tmp_path / "newcomer")}
    node_dir = {"DMS_GENERAL_USER_DIR": str(Path(cli.net.nodes[0].directory) / "nunet")}
    cli.run("cap", "new", "user", env=stranger)
    newcomer = cli.run("key", "did", "user", env=stranger).stdout.strip()
    hello = ("actor", "cmd", "/public/hello", "-t", "3s", "--json")
    cli.fails(*hello, match="no reply", env=stranger)

    cli.run("cap", "anchor", "-c", "dms", "--root", newcomer, env=node_dir)
    _wait_for_log(cli.net, 0, "reloaded capability context 'dms'")
    reply = cli.run(*hello, env=stranger)
    assert json.loads(reply.stdout) == {"DID": {"uri": cli.net.nodes[0].did}}

    cli.run("cap", "remove", "-c", "dms", "--root", newcomer, env=node_dir)
    time.sleep(2.5)  # one reload interval
    cli.fails(*hello, match="no reply", env=stranger)
