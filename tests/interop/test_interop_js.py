"""Our libp2p host seen from js-libp2p 2.x: security, identify, ping, gossip, DHT, Go-style invoke.

Each test runs real hosts of ours (``Libp2pNetwork``, and a ``dms.node.Node`` where the actor
layer matters) in this trio process and one js-libp2p peer (``js_peer.mjs``) as a subprocess, all
on 127.0.0.1. The envelope the js peer sends is built and signed by the Go program of
tests/gocompat (Go's encoding/json and crypto/ed25519) and checked byte for byte against ours.
The tests skip only when ``node`` is absent; a missing ``npm ci`` is a failure.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from dms.actor import REPLY_PREFIX, Address, Envelope, EnvelopeOptions, Handle, SecurityContext
from dms.config import Config
from dms.crypto import ID, Ed25519PrivateKey
from dms.devnet import GRANT_LIFETIME_NS, GRANT_TOPICS, GRANTED_CAPS
from dms.did import KeyProvider, did_from_public_key
from dms.network._libp2p import Libp2pNetwork
from dms.network._libp2p_dht import DHT_PROTOCOL
from dms.node import Node
from dms.node._hello import root_handle
from dms.ucan import CapabilityContext
from tests.gocompat.goprog import run_lines
from tests.interop.jspeer import js_peer

pytestmark = pytest.mark.interop

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
ROOT_PROTOCOL = "actor/root/messages/0.0.1"
JS_INBOX = "jsactor"
SECURITY_IDS = {"noise": "/noise", "tls": "/tls/1.0.0"}
YAMUX = "/yamux/1.0.0"


async def wait_for(cond: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    with trio.move_on_after(timeout):
        while not (result := cond()):
            await trio.sleep(0.05)
        return result
    raise AssertionError(f"timed out waiting for {what}")


def _user() -> CapabilityContext:
    return CapabilityContext(KeyProvider(Ed25519PrivateKey.generate()), name="user")


def _context(user: CapabilityContext, key: Ed25519PrivateKey, name: str) -> CapabilityContext:
    """A context as ``dms.devnet`` sets one up: the user is a root and grants ``/public`` & co."""
    provider = KeyProvider(key)
    ctx = CapabilityContext(provider, name=name)
    ctx.add_roots([user.did])
    grant = user.grant(
        "delegate",
        provider.did,
        topics=GRANT_TOPICS,
        expire_ns=time.time_ns() + GRANT_LIFETIME_NS,
        caps=GRANTED_CAPS,
    )
    ctx.add_provide(grant.tokens)
    return ctx


@asynccontextmanager
async def our_hosts(
    *, nodes: int = 1, plain: int = 0, user: CapabilityContext | None = None
) -> AsyncIterator[tuple[list[Node], list[Libp2pNetwork]]]:
    """``nodes`` Libp2pNetwork+Node hosts (capabilities as on a devnet), ``plain`` bare hosts."""
    user = user or _user()
    made: list[Node] = []
    bare = [Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK) for _ in range(plain)]
    for _ in range(nodes):
        key = Ed25519PrivateKey.generate()
        network = Libp2pNetwork(key, LOOPBACK)
        security = SecurityContext(key, _context(user, key, "dms"))
        made.append(Node(network, security, Config(), hello_delay=(3600, 3600)))
    async with trio.open_nursery() as nursery:
        for node in made:
            await nursery.start(node.network.run)
            await nursery.start(node.run)
        for net in bare:
            await nursery.start(net.run)
        yield made, bare
        nursery.cancel_scope.cancel()


def _network(node: Node) -> Libp2pNetwork:
    assert isinstance(node.network, Libp2pNetwork)
    return node.network


def _bare(addresses: list[str]) -> set[str]:
    """Addresses without their ``/p2p/<id>`` suffix (js reports them either way)."""
    return {a.split("/p2p/", 1)[0] for a in addresses}


def _seed() -> bytes:
    return Ed25519PrivateKey.generate().seed


# -- security, identify, ping ------------------------------------------------------------------


@pytest.mark.parametrize("security", ["noise", "tls"])
async def test_js_dials_us_identifies_and_pings(tmp_path: Path, security: str) -> None:
    async with (
        our_hosts() as ([node], _),
        js_peer(tmp_path, seed=_seed(), security=(security,), inboxes=(JS_INBOX,)) as js,
    ):
        ours = _network(node)
        address = ours.listen_addresses()[0]
        dialled = await js.call("dial", addr=address)
        assert dialled["peer"] == ours.host_id
        assert dialled["encryption"] == SECURITY_IDS[security]
        assert dialled["multiplexer"] == YAMUX

        ident = await js.call("identify", peer=ours.host_id)
        assert ident["peer"] == ours.host_id
        for protocol in (ROOT_PROTOCOL, str(DHT_PROTOCOL), "/ipfs/ping/1.0.0", "/meshsub/1.1.0"):
            assert protocol in ident["protocols"], ident["protocols"]
        assert "/plaintext/2.0.0" not in ident["protocols"]
        assert address.rsplit("/p2p/", 1)[0] in _bare(ident["listenAddrs"])

        assert (await js.call("ping", peer=ours.host_id))["rtt"] >= 0
        # Our side identified the js peer too, and can ping it.
        await wait_for(
            lambda: any(
                p.peer_id == js.peer_id and f"actor/{JS_INBOX}/messages/0.0.1" in p.protocols
                for p in ours.peers()
            ),
            "our identify of the js peer",
        )
        assert await ours.ping(js.peer_id, timeout=10) > 0


@pytest.mark.parametrize("security", ["noise", "tls"])
async def test_we_dial_js(tmp_path: Path, security: str) -> None:
    async with (
        our_hosts(nodes=0, plain=1) as (_, [ours]),
        js_peer(tmp_path, seed=_seed(), security=(security,)) as js,
    ):
        assert await ours.connect(js.addrs[0], timeout=15) == js.peer_id
        assert await ours.ping(js.peer_id, timeout=10) > 0
        assert (await js.call("ping", peer=ours.host_id))["rtt"] >= 0


async def test_js_without_a_common_encrypter_is_refused(tmp_path: Path) -> None:
    """A js peer whose only encrypter is TLS reaches a Noise-only host of ours: no connection."""
    async with js_peer(tmp_path, seed=_seed(), security=("tls",)) as js:
        ours = Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK, security=("noise",))
        async with trio.open_nursery() as nursery:
            await nursery.start(ours.run)
            with pytest.raises(AssertionError, match="js dial failed"):
                await js.call("dial", addr=ours.listen_addresses()[0])
            assert not ours.peers()
            nursery.cancel_scope.cancel()


# -- gossipsub ---------------------------------------------------------------------------------


async def test_js_sees_our_broadcast_on_nunet_hello(tmp_path: Path) -> None:
    topic = "/nunet/hello"
    async with our_hosts() as ([node], _), js_peer(tmp_path, seed=_seed()) as js:
        ours = _network(node)
        await js.call("dial", addr=ours.listen_addresses()[0])
        await js.call("subscribe", topic=topic)

        async def js_knows_us() -> bool:
            return ours.host_id in (await js.call("topicPeers", topic=topic))["peers"]

        with trio.fail_after(20):
            while not await js_knows_us():
                await trio.sleep(0.1)
        await wait_for(
            lambda: js.peer_id in {str(p) for p in ours._pubsub.peer_topics.get(topic, ())},
            "our pubsub to see the js subscription",
        )
        # Publish until it arrives (the mesh forms on the 1 s heartbeat; fanout before that).
        sent: list[Envelope] = []
        with trio.fail_after(20):
            while not js.seen("message"):
                sent.append(await node.actor.publish(topic, "/broadcast/hello", timeout=30))
                with trio.move_on_after(0.5):
                    await js.event("message")
        message = js.seen("message")[0]
        assert message["topic"] == topic and message["signed"]
        assert message["from"] == ours.host_id
        data = base64.b64decode(message["data"])
        assert data in {env.to_json() for env in sent}  # the exact signed envelope bytes
        received = Envelope.from_json(data)
        received.verify()
        assert received.behavior == "/broadcast/hello"
        assert received.options.topic == topic


# -- DHT ---------------------------------------------------------------------------------------


async def test_js_find_peer_over_nunet_kad(tmp_path: Path) -> None:
    async with our_hosts(nodes=0, plain=2) as (_, [a, b]), js_peer(tmp_path, seed=_seed()) as js:
        await b.connect(a.listen_addresses()[0])
        await wait_for(lambda: b.host_id in a.dht_peers(), "b in a's routing table")
        await js.call("dial", addr=a.listen_addresses()[0])

        async def js_table_has_a() -> bool:
            return a.host_id in (await js.call("dhtPeers"))["peers"]

        with trio.fail_after(20):
            while not await js_table_has_a():
                await trio.sleep(0.1)

        # b: only a knows it; js must learn b's address from a's FIND_NODE answer.
        result = await js.call("findPeer", peer=b.host_id)
        assert result["found"] is not None, result
        assert result["found"]["id"] == b.host_id
        assert b.listen_addresses()[0].rsplit("/p2p/", 1)[0] in _bare(result["found"]["addrs"])
        # a itself, asked over the network: a answers for itself, with its addresses.
        result = await js.call("findPeer", peer=a.host_id)
        assert result["found"] is not None and result["found"]["id"] == a.host_id, result
        assert a.listen_addresses()[0].rsplit("/p2p/", 1)[0] in _bare(result["found"]["addrs"])
        # No answer of ours ever names a peer without addresses.
        assert result["responses"], result
        for response in result["responses"]:
            for peer in response["closer"]:
                assert peer["addrs"], response


# -- a Go-style invoke: framed envelope on actor/root/messages/0.0.1, reply on our inbox ------


def _go_signed_request(
    go_program: Callable[[str], Path],
    js_key: Ed25519PrivateKey,
    js_peer_id: str,
    node: Node,
    user: CapabilityContext,
) -> tuple[bytes, Envelope]:
    """The hello request signed by Go, and the same envelope built and signed by us."""
    js_security = SecurityContext(js_key, _context(user, js_key, "js"))
    node_key_seed = node.security.key.seed  # type: ignore[attr-defined]
    to = root_handle(_network(node).host_id)
    sender = Handle(
        ID.from_public_key(js_key.public_key),
        did_from_public_key(js_key.public_key),
        Address(js_peer_id, JS_INBOX),
    )
    nonce = 7
    cont = f"{REPLY_PREFIX}{nonce}"
    unsigned = Envelope(
        to=to,
        behavior="/public/hello",
        from_=sender,
        nonce=nonce,
        options=EnvelopeOptions(time.time_ns() + 60 * 10**9, cont),
    ).with_payload(None)
    ours = js_security.provide(unsigned, ["/public/hello"], [cont])
    request = {
        "seed": js_key.seed.hex(),
        "to_seed": node_key_seed.hex(),
        "to_host": to.address.host,
        "host": js_peer_id,
        "inbox": JS_INBOX,
        "be": ours.behavior,
        "nonce": ours.nonce,
        "exp": ours.options.expire,
        "cont": cont,
        "payload": None,
        "cap": base64.b64encode(ours.capability).decode(),
    }
    [line] = run_lines(go_program("envelope"), "sign", [json.dumps(request)])
    assert not line.startswith("ERR"), line
    return line.encode(), ours


async def test_go_style_envelope_from_js_is_answered_on_its_inbox(
    tmp_path: Path, go_program: Callable[[str], Path]
) -> None:
    user = _user()
    js_key = Ed25519PrivateKey.generate()
    async with (
        our_hosts(user=user) as ([node], _),
        js_peer(tmp_path, seed=js_key.seed, security=("tls",), inboxes=(JS_INBOX,)) as js,
    ):
        ours = _network(node)
        go_bytes, py_env = await trio.to_thread.run_sync(
            _go_signed_request, go_program, js_key, js.peer_id, node, user
        )
        assert go_bytes == py_env.to_json()  # Go and we build and sign the same bytes
        await js.call("dial", addr=ours.listen_addresses()[0])
        frame = struct.pack("<Q", len(go_bytes)) + go_bytes
        await js.call(
            "send",
            peer=ours.host_id,
            protocol=ROOT_PROTOCOL,
            frame=base64.b64encode(frame).decode(),
        )
        inbox = await js.event("inbox", lambda e: e["from"] == ours.host_id)
        assert inbox["protocol"] == f"actor/{JS_INBOX}/messages/0.0.1"
        body = base64.b64decode(inbox["body"])
        assert inbox["declared"] == len(body)  # one Go frame: length prefix + envelope

        reply = Envelope.from_json(body)
        reply.verify()
        assert reply.behavior == py_env.options.reply_to
        assert reply.to == py_env.from_
        assert reply.from_.address == Address(ours.host_id, "root")
        assert json.loads(reply.message or b"null") == {"DID": {"uri": node.security.did.uri}}
        [report] = await trio.to_thread.run_sync(
            run_lines, go_program("envelope"), "verify", [body.decode()]
        )
        checked = json.loads(report)
        assert checked["sig"] == "ok"
        assert base64.b64decode(checked["full"]) == body  # Go re-marshals it byte for byte
