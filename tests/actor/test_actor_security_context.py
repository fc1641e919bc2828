"""SecurityContext: the tokens it attaches (spec §2.4) and the checks it makes (§3.4)."""

from __future__ import annotations

import dataclasses
import time

import trio
from tests.actor.actor_sim import Node, User, make_nodes

from dms.actor import Address, Envelope, EnvelopeOptions, Handle, SecurityContext
from dms.crypto import ID, Ed25519PrivateKey
from dms.did import KeyProvider, did_from_id
from dms.network import MemoryFabric
from dms.ucan import CapabilityContext, parse_token_list


def _handle(sctx: SecurityContext, host: str, inbox: str) -> Handle:
    return Handle(sctx.id, sctx.did, Address(host, inbox))


def test_provide_attaches_tokens_then_signs() -> None:
    exp = time.time_ns() + 30 * 10**9
    ctx_a = CapabilityContext(KeyProvider(Ed25519PrivateKey.generate()))
    ctx_b = CapabilityContext(KeyProvider(Ed25519PrivateKey.generate()))
    a = SecurityContext(Ed25519PrivateKey.generate(), ctx_a)
    b = SecurityContext(Ed25519PrivateKey.generate(), ctx_b)
    env = Envelope(
        to=_handle(b, "hb", "root"),
        behavior="/dms/node/peers/list",
        from_=_handle(a, "ha", "root"),
        options=EnvelopeOptions(exp, reply_to="/dms/actor/replyto/9"),
    )
    sent = a.provide(env, ["/dms/node/peers/list"], ["/dms/actor/replyto/9"])
    assert sent.nonce != 0  # set because it was 0
    sent.verify()  # the signature covers the cap blob
    tokens = [t.dms for t in parse_token_list(sent.capability).tokens]
    invoke, delegate = tokens
    assert (invoke.action, invoke.issuer, invoke.subject, invoke.audience) == (
        "invoke",
        ctx_a.did,
        did_from_id(a.id),
        did_from_id(b.id),
    )
    assert invoke.caps == ("/dms/node/peers/list",) and invoke.expire == exp
    assert (delegate.action, delegate.subject, delegate.audience, delegate.depth) == (
        "delegate",
        ctx_b.did,
        did_from_id(a.id),
        1,
    )
    assert delegate.caps == ("/dms/actor/replyto/9",)
    # b does not trust a: refused, and the tokens it consumed are discarded again
    assert not b.require(sent, ["/dms/node/peers/list"])
    assert ctx_b.consumed(did_from_id(a.id)) == []
    ctx_b.add_roots([ctx_a.did])
    assert b.require(sent, ["/dms/node/peers/list"])
    assert not b.require(sent, ["/dms/node/other"])
    # a nonce already set is kept
    assert a.provide(dataclasses.replace(env, nonce=5), ["/x"]).nonce == 5


def test_require_fails_closed_on_garbage() -> None:
    ctx = CapabilityContext(KeyProvider(Ed25519PrivateKey.generate()))
    b = SecurityContext(Ed25519PrivateKey.generate(), ctx)
    ctx.add_roots([ctx.did])
    env = Envelope(from_=Handle(ID(b"not a key")), capability=b"{nonsense", behavior="/x")
    assert not b.require(env, ["/x"])
    env = Envelope(from_=_handle(b, "h", "i"), capability=b"{nonsense", behavior="/x")
    assert not b.require(env, ["/x"])
    assert not b.require_broadcast(env, "/nunet", ["/x"])


async def test_cli_style_sender_with_ephemeral_key_and_user_did(nursery: trio.Nursery) -> None:
    """The CLI signs with a throwaway key but presents the user's context DID (spec §2.1)."""
    user, fabric = User(), MemoryFabric()
    (node,) = await make_nodes(nursery, fabric, user, 1)
    seen: list[Envelope] = []

    async def handler(env: Envelope) -> None:
        seen.append(env)
        await node.actor.reply(env, "ok")

    node.actor.add_behavior("/dms/node/peers/self", handler)
    # the CLI's "actor": a fresh key, the user's capability context, an inbox on its own host
    cli_host = Node(fabric)
    await nursery.start(cli_host.net.run)
    from dms.actor import Actor

    cli = Actor(cli_host.net, SecurityContext(Ed25519PrivateKey.generate(), user.ctx), "user-1")
    await nursery.start(cli.run)
    assert cli.handle.did == user.did and did_from_id(cli.handle.id) != user.did
    reply = await cli.invoke(node.actor.handle, "/dms/node/peers/self", timeout=5)
    assert reply.decode_payload() == "ok"
    assert seen[0].from_.did == user.did
