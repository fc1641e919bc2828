"""The REST API relays client-signed envelopes over the network, as the Go DMS's gin server does.

Every test runs a real hypercorn server (port 0) for host A of an in-memory network with hosts
B and C, in the test's own nursery, and talks to it over TCP with httpx.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trio

from dms.actor import Address, Envelope, EnvelopeOptions, Handle
from dms.api import create_app, serve_api
from dms.crypto import ID, Ed25519PrivateKey, peer_id_from_public_key
from dms.did import did_from_public_key
from dms.errors import NetworkError
from dms.network import MemoryFabric, MemoryNetwork

_nonces = itertools.count(1_731_000_000_000_000_001)


@dataclass
class Peer:
    """One host of the memory network with the key of its node actor."""

    key: Ed25519PrivateKey
    net: MemoryNetwork

    @property
    def handle(self) -> Handle:
        return Handle(
            ID.from_public_key(self.key.public_key),
            did_from_public_key(self.key.public_key),
            Address(self.net.host_id, "root"),
        )


@dataclass
class Harness:
    a: Peer
    b: Peer
    c: Peer
    client: httpx.AsyncClient
    app: Any
    user_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def envelope(
        self,
        to: Handle,
        *,
        inbox: str = "user-1",
        host: str | None = None,
        ttl: float = 5.0,
        topic: str = "",
        payload: Any = None,
        behavior: str = "/dms/node/peers/self",
    ) -> Envelope:
        """A CLI-style envelope: ephemeral key in from.id, reply inbox on host A."""
        envelope = Envelope(
            to=to,
            behavior=behavior,
            from_=Handle(
                ID.from_public_key(self.user_key.public_key),
                did_from_public_key(self.user_key.public_key),
                Address(self.a.net.host_id if host is None else host, inbox),
            ),
            nonce=next(_nonces),
            options=EnvelopeOptions(
                time.time_ns() + int(ttl * 1e9), reply_to=f"/private/user/{inbox}", topic=topic
            ),
        ).with_payload(payload if payload is not None else {})
        return envelope.sign(self.user_key)

    @property
    def active_inboxes(self) -> frozenset[str]:
        return frozenset(self.app.state.reply_inboxes.active)


def _peer(fabric: MemoryFabric) -> Peer:
    key = Ed25519PrivateKey.generate()
    return Peer(key, MemoryNetwork(fabric, str(peer_id_from_public_key(key.public_key))))


@pytest.fixture
async def node(nursery: trio.Nursery) -> AsyncIterator[Harness]:
    fabric = MemoryFabric()
    a, b, c = _peer(fabric), _peer(fabric), _peer(fabric)
    for peer in (a, b, c):
        await nursery.start(peer.net.run)
    app = create_app(a.net, lambda: a.handle)
    port = await nursery.start(serve_api, app, "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield Harness(a, b, c, client, app)


def _replier(
    peer: Peer, *, delay: float = 0.0, payload: Callable[[Envelope], Any] | None = None
) -> Callable[[bytes, str], Awaitable[None]]:
    """An inbox/topic handler that answers like Go's ReplyTo: to=from, be=cont, same exp."""

    async def handler(data: bytes, remote: str) -> None:
        request = Envelope.from_json(data)
        await trio.sleep(delay)
        reply = Envelope(
            to=request.from_,
            behavior=request.options.reply_to,
            from_=peer.handle,
            nonce=next(_nonces),
            options=EnvelopeOptions(request.options.expire),
        ).with_payload(payload(request) if payload else {"from": peer.net.host_id})
        await peer.net.send(
            request.from_.address.host,
            request.from_.address.inbox,
            reply.sign(peer.key).to_json(),
            timeout=1,
        )

    return handler


def _error(response: httpx.Response, status: int) -> str:
    """Assert a JSON one-line error with ``status``; return the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and body["error"]
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return str(body["error"])


# -- node routes -------------------------------------------------------------------------------


async def test_health_and_handle(node: Harness) -> None:
    response = await node.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}

    response = await node.client.get("/api/v1/actor/handle")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == node.a.handle.to_json()
    assert Handle.from_json(response.content).address == Address(node.a.net.host_id, "root")


# -- /send -------------------------------------------------------------------------------------


async def test_send_delivers_the_go_bytes_with_the_sender_host(node: Harness) -> None:
    got: list[tuple[bytes, str]] = []
    arrived = trio.Event()

    async def inbox(data: bytes, remote: str) -> None:
        got.append((data, remote))
        arrived.set()

    node.b.net.register_inbox("root", inbox)
    envelope = node.envelope(node.b.handle, payload={"<tag>": "a&b"})
    # Not Go-canonical on the way in: spaces, reordered and unknown keys, non-HTML-escaped text.
    loose = json.loads(envelope.to_json())
    loose = {"zzz": 1, **dict(reversed(list(loose.items())))}
    response = await node.client.post("/api/v1/actor/send", content=json.dumps(loose, indent=1))
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "message sent"}
    with trio.fail_after(1):
        await arrived.wait()
    assert got == [(envelope.to_json(), node.a.net.host_id)]
    Envelope.from_json(got[0][0]).verify()  # still signed correctly after the re-encoding


async def test_send_failure_is_a_json_500(node: Harness) -> None:
    envelope = node.envelope(node.b.handle)  # B has no "root" inbox registered
    response = await node.client.post("/api/v1/actor/send", content=envelope.to_json())
    assert "send failed" in _error(response, 500)
    stranger = Handle(address=Address("12D3KooWNotOnThisNetwork", "root"))
    response = await node.client.post(
        "/api/v1/actor/send", content=node.envelope(stranger).to_json()
    )
    assert "not reachable" in _error(response, 500)


async def test_send_needs_a_destination(node: Harness) -> None:
    response = await node.client.post(
        "/api/v1/actor/send", content=node.envelope(Handle()).to_json()
    )
    assert "to.addr.host" in _error(response, 400)


# -- /invoke -----------------------------------------------------------------------------------


async def test_invoke_returns_the_reply_envelope(node: Harness) -> None:
    node.b.net.register_inbox("root", _replier(node.b))
    envelope = node.envelope(node.b.handle, inbox="user-42")
    response = await node.client.post("/api/v1/actor/invoke", content=envelope.to_json())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    reply = Envelope.from_json(response.content)
    assert response.content == reply.to_json()  # Go bytes, as gin's c.JSON would send
    reply.verify()
    assert reply.behavior == "/private/user/user-42"
    assert reply.from_ == node.b.handle
    assert reply.decode_payload() == {"from": node.b.net.host_id}
    assert node.active_inboxes == frozenset()
    with pytest.raises(NetworkError, match="no inbox"):
        await node.b.net.send(node.a.net.host_id, "user-42", b"{}", timeout=1)


async def test_invoke_times_out_at_expiry_and_releases_the_inbox(node: Harness) -> None:
    async def silent(data: bytes, remote: str) -> None:
        pass

    node.b.net.register_inbox("root", silent)
    envelope = node.envelope(node.b.handle, inbox="user-7", ttl=0.5)
    start = trio.current_time()
    response = await node.client.post("/api/v1/actor/invoke", content=envelope.to_json())
    elapsed = trio.current_time() - start
    assert _error(response, 408) == "request timeout"
    assert 0.3 < elapsed < 1.5
    assert node.active_inboxes == frozenset()
    with pytest.raises(NetworkError, match="no inbox"):
        await node.b.net.send(node.a.net.host_id, "user-7", b"{}", timeout=1)


async def test_invoke_send_failure_is_a_json_500_and_releases_the_inbox(node: Harness) -> None:
    envelope = node.envelope(node.b.handle, inbox="user-fail")  # B has no "root" inbox
    response = await node.client.post("/api/v1/actor/invoke", content=envelope.to_json())
    assert "no inbox 'root'" in _error(response, 500)
    assert node.active_inboxes == frozenset()


async def test_invoke_reply_inbox_must_be_on_this_node(node: Harness) -> None:
    envelope = node.envelope(node.b.handle, host=node.b.net.host_id)
    response = await node.client.post("/api/v1/actor/invoke", content=envelope.to_json())
    message = _error(response, 400)
    assert "from.addr.host" in message and node.a.net.host_id in message
    response = await node.client.post(
        "/api/v1/actor/invoke", content=node.envelope(node.b.handle, inbox="").to_json()
    )
    assert "from.addr.inbox" in _error(response, 400)


async def test_concurrent_invokes_do_not_interfere(node: Harness) -> None:
    node.b.net.register_inbox(
        "root", _replier(node.b, delay=0.2, payload=lambda request: request.decode_payload())
    )
    results: dict[int, httpx.Response] = {}

    async def invoke(n: int) -> None:
        envelope = node.envelope(node.b.handle, inbox=f"user-{n}", payload={"n": n})
        results[n] = await node.client.post("/api/v1/actor/invoke", content=envelope.to_json())

    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(invoke, n)
    for n in range(5):
        assert results[n].status_code == 200, results[n].text
        reply = Envelope.from_json(results[n].content)
        assert reply.decode_payload() == {"n": n}
        assert reply.to.address.inbox == f"user-{n}"
    assert node.active_inboxes == frozenset()


async def test_same_inbox_twice_is_busy(node: Harness) -> None:
    node.b.net.register_inbox("root", _replier(node.b, delay=0.5))
    first: list[httpx.Response] = []

    async def invoke_first() -> None:
        envelope = node.envelope(node.b.handle, inbox="user-9")
        first.append(await node.client.post("/api/v1/actor/invoke", content=envelope.to_json()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(invoke_first)
        with trio.fail_after(2):
            while "user-9" not in node.active_inboxes:
                await trio.sleep(0.01)
        second = await node.client.post(
            "/api/v1/actor/invoke",
            content=node.envelope(node.b.handle, inbox="user-9").to_json(),
        )
        assert _error(second, 409) == "inbox busy"
    assert first[0].status_code == 200
    # The node actor's own inbox can never be borrowed for replies.
    response = await node.client.post(
        "/api/v1/actor/invoke", content=node.envelope(node.b.handle, inbox="root").to_json()
    )
    assert _error(response, 409) == "inbox busy"


async def test_client_disconnect_releases_the_inbox(node: Harness) -> None:
    async def silent(data: bytes, remote: str) -> None:
        pass

    node.b.net.register_inbox("root", silent)
    envelope = node.envelope(node.b.handle, inbox="user-gone", ttl=30)
    with trio.move_on_after(0.3):
        await node.client.post("/api/v1/actor/invoke", content=envelope.to_json())
    with trio.fail_after(2):
        while node.active_inboxes:
            await trio.sleep(0.01)
    with pytest.raises(NetworkError, match="no inbox"):
        await node.b.net.send(node.a.net.host_id, "user-gone", b"{}", timeout=1)


# -- /broadcast --------------------------------------------------------------------------------


async def test_broadcast_collects_every_reply(node: Harness) -> None:
    for peer in (node.b, node.c):
        await peer.net.subscribe("nunet/test", _replier(peer))
    envelope = node.envelope(Handle(), inbox="user-b", topic="nunet/test", ttl=0.6)
    assert envelope.is_broadcast()
    start = trio.current_time()
    response = await node.client.post("/api/v1/actor/broadcast", content=envelope.to_json())
    assert trio.current_time() - start >= 0.4  # collects until opt.exp
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    replies = [Envelope.from_value(item) for item in response.json()]
    assert response.content == b"[" + b",".join(r.to_json() for r in replies) + b"]"
    assert sorted(r.from_.address.host for r in replies) == sorted(
        [node.b.net.host_id, node.c.net.host_id]
    )
    for reply in replies:
        reply.verify(now_ns=envelope.options.expire)  # replies expire with the request
    assert node.active_inboxes == frozenset()


async def test_broadcast_without_replies_is_null(node: Harness) -> None:
    envelope = node.envelope(Handle(), topic="nunet/quiet", ttl=0.3)
    response = await node.client.post("/api/v1/actor/broadcast", content=envelope.to_json())
    assert response.status_code == 200
    assert response.content == b"null"


async def test_broadcast_refuses_a_direct_message(node: Harness) -> None:
    for envelope in (
        node.envelope(node.b.handle, topic="nunet/test"),  # has a recipient
        node.envelope(Handle()),  # no topic
    ):
        response = await node.client.post("/api/v1/actor/broadcast", content=envelope.to_json())
        assert _error(response, 400) == "message is not a broadcast message"


# -- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["send", "invoke", "broadcast"])
async def test_malformed_bodies_are_json_400s(node: Harness, route: str) -> None:
    good = json.loads(node.envelope(node.b.handle).to_json())
    expired = node.envelope(node.b.handle, ttl=-1).to_json()
    bodies: list[bytes] = [
        b"",
        b"not json",
        b"{",
        b"[1, 2]",
        b"null",
        b"\xff\xfe{}",
        json.dumps({**good, "nonce": "1"}).encode(),
        json.dumps({**good, "nonce": -1}).encode(),
        json.dumps({**good, "to": "peer"}).encode(),
        json.dumps({**good, "opt": {"exp": 1.5}}).encode(),
        json.dumps({**good, "msg": "not base64!"}).encode(),
        json.dumps({**good, "sig": 12}).encode(),
        b"[" * 100_000,
        expired,
    ]
    for body in bodies:
        response = await node.client.post(f"/api/v1/actor/{route}", content=body)
        _error(response, 400)
    assert "expired" in _error(
        await node.client.post(f"/api/v1/actor/{route}", content=expired), 400
    )


async def test_oversized_bodies_are_refused(node: Harness) -> None:
    big = node.envelope(node.b.handle, payload="x" * (1 << 20)).to_json()
    assert len(big) > 1 << 20
    response = await node.client.post("/api/v1/actor/send", content=big)
    assert "too large" in _error(response, 400)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
        for _ in range(20):
            yield b" " * 65536

    response = await node.client.post("/api/v1/actor/send", content=chunks())
    assert "too large" in _error(response, 400)
    # Fits as a body but not as a frame once Go's escaping of < > & grows it.
    envelope = node.envelope(node.b.handle, behavior="<" * 200_000)
    body = json.dumps(json.loads(envelope.to_json()), ensure_ascii=False).encode()
    assert len(body) < 300_000 < 1 << 20 < len(envelope.to_json())
    response = await node.client.post("/api/v1/actor/send", content=body)
    assert "too large" in _error(response, 400)


async def test_framework_errors_are_json(node: Harness) -> None:
    assert _error(await node.client.get("/nope"), 404) == "Not Found"
    assert _error(await node.client.get("/api/v1/actor/send"), 405) == "Method Not Allowed"


async def test_unexpected_errors_are_json_500s_without_traceback(nursery: trio.Nursery) -> None:
    fabric = MemoryFabric()
    a = _peer(fabric)
    await nursery.start(a.net.run)

    def broken() -> Handle:
        raise RuntimeError("boom\nwith a second line")

    port = await nursery.start(serve_api, create_app(a.net, broken), "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get("/api/v1/actor/handle")
    assert _error(response, 500) == "internal server error"


# -- docs --------------------------------------------------------------------------------------


async def test_docs_and_openapi(node: Harness) -> None:
    assert (await node.client.get("/docs")).status_code == 200
    spec = (await node.client.get("/openapi.json")).json()
    routes = {(method, path) for path, methods in spec["paths"].items() for method in methods}
    assert routes == {
        ("get", "/health"),
        ("get", "/api/v1/actor/handle"),
        ("post", "/api/v1/actor/send"),
        ("post", "/api/v1/actor/invoke"),
        ("post", "/api/v1/actor/broadcast"),
    }
    for methods in spec["paths"].values():
        for operation in methods.values():
            assert operation["summary"] and operation["description"]
    invoke = spec["paths"]["/api/v1/actor/invoke"]["post"]
    assert invoke["requestBody"]["required"] is True
    assert {"200", "400", "408", "409"} <= set(invoke["responses"])
