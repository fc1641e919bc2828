"""Chain verification and the authorisation predicates, as the Go DMS applies them.

A token is valid when every link is unexpired and unrevoked, each parent is a ``delegate`` token
that outlives its child, was given to the child's issuer, and covers the child's audience, topics
and capabilities, delegation depth limits hold, and every issuer signed its link. The rules and
their order follow Go's ``DMSToken.verify`` so a chain accepted by one side is accepted by the
other. Each rule raises its own one-line :class:`TokenError`, which the tests rely on to show that
exactly the intended rule tripped.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable

from dms.did import DID
from dms.errors import TokenError
from dms.ucan._capability import implied_by_any
from dms.ucan._token import Action, DMSToken, Token


class RevocationSet:
    """Revoked tokens, keyed like Go: ``"<iss URI>#<sub URI>#<raw nonce bytes>"``."""

    def __init__(self, tokens: Iterable[Token] = ()) -> None:
        self._keys: set[bytes] = set()
        for token in tokens:
            self.add(token.dms)

    @staticmethod
    def key(token: DMSToken) -> bytes:
        """The revocation key of ``token`` (a revoke token has the same key as its target)."""
        return f"{token.issuer.uri}#{token.subject.uri}#".encode() + (token.nonce or b"")

    def add(self, token: DMSToken) -> None:
        """Revoke every token with the same issuer, subject and nonce as ``token``."""
        self._keys.add(self.key(token))

    def revoked(self, token: DMSToken) -> bool:
        """True if ``token`` has been revoked."""
        return self.key(token) in self._keys

    def __len__(self) -> int:
        return len(self._keys)


_NO_REVOCATIONS = RevocationSet()


def verify_token(
    token: Token | DMSToken, now_ns: int, revoked: RevocationSet | None = None
) -> None:
    """Verify ``token`` and its whole chain at time ``now_ns``; raise :class:`TokenError` if not."""
    dms = token.dms if isinstance(token, Token) else token
    for link in dms.links():
        if link.expired(now_ns):
            raise TokenError(f"token expired: {_describe(link)}")
    _verify(dms, now_ns, 0, revoked or _NO_REVOCATIONS)


def _verify(t: DMSToken, now_ns: int, depth: int, revoked: RevocationSet) -> None:
    if t.expired(now_ns):
        raise TokenError(f"token expired: {_describe(t)}")
    if t.action == Action.REVOKE:
        _check_signature(t)
        return
    if t.depth > 0 and depth > t.depth:
        raise TokenError(f"delegation too deep: {depth} > {t.depth} for {_describe(t)}")
    if revoked.revoked(t):
        raise TokenError(f"token revoked: {_describe(t)}")
    if t.chain is not None:
        parent = t.chain.dms
        if parent.action != Action.DELEGATE:
            raise TokenError(f"chained from a {parent.action!r} token, not a delegate token")
        if parent.expires_before(t.expire):
            raise TokenError("token outlives the token it is chained from")
        _verify(parent, now_ns, depth + 1, revoked)
        if t.issuer != parent.subject:
            raise TokenError(f"token issuer {t.issuer.uri} is not the subject of its parent token")
        for c in t.caps:
            reason = delegation_refusal(
                parent, t.issuer, t.audience, topics=t.topic, expire_ns=t.expire, c=c
            )
            if reason is not None:
                raise TokenError(f"parent token does not allow {c!r}: {reason}")
    _check_signature(t)


class VerifiedSignatures:
    """Token links whose signature already verified, so recurring links skip Ed25519 and Go JSON.

    Every envelope carries whole chains, and the parents recur: the user's grant to a node is
    in every message that node sends. Verifying a link means re-marshalling it (and its whole
    chain) to Go JSON and checking a signature, about 0.15 ms each in Python. A link is taken
    as verified only when a link with the *same signature* verified before **and** every field
    the signature covers is equal (chains compared link by link), so a forged link reusing a
    real signature never hits. Only signatures are cached: expiry, revocation and delegation
    rules are checked on every use. Bounded; the oldest entries go first.
    """

    def __init__(self, size: int = 8192) -> None:
        self._size = size
        # Ordered, evicted with popitem(last=False): O(1). Popping ``next(iter(d))`` from a
        # plain dict that keeps losing its oldest keys scans the dead slots at the front of its
        # entry table: ~6 us per add at 8192 entries, on every fresh link of every message.
        self._by_signature: collections.OrderedDict[bytes, DMSToken] = collections.OrderedDict()

    def known(self, t: DMSToken) -> bool:
        cached = self._by_signature.get(t.signature)
        if cached is None or not same_link(cached, t):
            return False
        # Equal links have equal Go JSON: hand over the encodings already computed, so a
        # fresh child chained from this link does not re-marshal the whole chain above it.
        for name in ("unsigned_json", "json"):
            if name in cached.__dict__ and name not in t.__dict__:
                t.__dict__[name] = cached.__dict__[name]
        return True

    def add(self, t: DMSToken) -> None:
        if len(self._by_signature) >= self._size and t.signature not in self._by_signature:
            self._by_signature.popitem(last=False)
        self._by_signature[t.signature] = t

    def clear(self) -> None:
        self._by_signature.clear()


#: The DMSToken fields a signature covers besides ``chain`` (compared separately, by link).
_SIGNED_FIELDS = tuple(f.name for f in dataclasses.fields(DMSToken) if f.name != "chain")


def same_link(a: DMSToken, b: DMSToken) -> bool:
    """True if ``a`` and ``b`` have equal content, signature and chain (so equal Go JSON)."""
    while True:
        if a is b:
            return True
        if any(getattr(a, name) != getattr(b, name) for name in _SIGNED_FIELDS):
            return False
        if a.chain is None or b.chain is None:
            return a.chain is None and b.chain is None
        a, b = a.chain.dms, b.chain.dms


#: Process-wide: a signature that verified once verifies for every context.
VERIFIED = VerifiedSignatures()


def _check_signature(t: DMSToken) -> None:
    if t.signature and VERIFIED.known(t):
        return
    if not t.verify_signature():
        raise TokenError(f"invalid signature on {_describe(t)}")
    VERIFIED.add(t)


def _describe(t: DMSToken) -> str:
    return f"{t.action} token from {t.issuer.uri or '<no issuer>'}"


def delegation_refusal(
    parent: DMSToken,
    issuer: DID,
    audience: DID,
    *,
    topics: Iterable[str],
    expire_ns: int,
    c: str,
) -> str | None:
    """Why ``parent`` cannot back a child granting ``c`` (None if it can): Go's step-5 rule."""
    if parent.action != Action.DELEGATE:
        return "parent is not a delegate token"
    if parent.expires_before(expire_ns):
        return "parent expires first"
    if parent.subject != issuer:
        return "parent was not given to the child's issuer"
    if not parent.audience.empty() and parent.audience != audience:
        return "audience not allowed by parent"
    for topic in topics:
        if not implied_by_any(parent.topic, topic):
            return f"topic {topic!r} not allowed by parent"
    if not implied_by_any(parent.caps, c):
        return "capability not implied by parent"
    return None


def allow_invocation(t: DMSToken, subject: DID, audience: DID, c: str) -> bool:
    """Go ``AllowInvocation``: an ``invoke`` token for ``subject`` that covers ``c``."""
    return (
        t.action == Action.INVOKE
        and t.subject == subject
        and (t.audience.empty() or t.audience == audience)
        and implied_by_any(t.caps, c)
    )


def allow_broadcast(t: DMSToken, subject: DID, topic: str, c: str) -> bool:
    """Go ``AllowBroadcast``: a ``broadcast`` token for ``subject`` covering ``topic`` and ``c``."""
    return (
        t.action == Action.BROADCAST
        and t.subject == subject
        and t.audience.empty()
        and implied_by_any(t.topic, topic)
        and implied_by_any(t.caps, c)
    )


def allow_action(anchor: DMSToken, other: DMSToken) -> bool:
    """Go ``AllowAction``: does require-anchor ``anchor`` authorise the (side) chain ``other``?

    ``anchor`` delegates to some DID; ``other`` must have been issued, directly or up its chain,
    by that DID within ``anchor``'s depth, and ask for nothing beyond ``anchor``'s audience,
    capabilities and topics.
    """
    if anchor.action != Action.DELEGATE or anchor.expires_before(other.expire):
        return False
    hops = other.anchor_depth(anchor.subject)
    if hops is None or (anchor.depth > 0 and hops > anchor.depth):
        return False
    if not anchor.audience.empty() and anchor.audience != other.audience:
        return False
    return all(implied_by_any(anchor.caps, c) for c in other.caps) and all(
        implied_by_any(anchor.topic, topic) for topic in other.topic
    )


def verify_depth(t: DMSToken, d: int) -> bool:
    """Go ``verifyDepth``: every link ``i`` (0 = ``t``) has depth 0 or ``d + i <= depth``."""
    return all(link.depth == 0 or d + i <= link.depth for i, link in enumerate(t.links()))


def allow_delegation(
    parent: DMSToken,
    action: str,
    issuer: DID,
    audience: DID,
    *,
    topics: Iterable[str],
    expire_ns: int,
    c: str,
) -> bool:
    """Go ``AllowDelegation``: may a new ``action`` token granting ``c`` chain from ``parent``?"""
    if not verify_depth(parent, 2 if action == Action.DELEGATE else 1):
        return False
    return (
        delegation_refusal(parent, issuer, audience, topics=topics, expire_ns=expire_ns, c=c)
        is None
    )


def subsumes(t: DMSToken, other: DMSToken) -> bool:
    """Go ``Subsumes``: same parties, lasts as long, covers every capability (dedupes anchors)."""
    return (
        t.issuer == other.issuer
        and t.subject == other.subject
        and t.audience == other.audience
        and t.expire >= other.expire
        and all(implied_by_any(t.caps, c) for c in other.caps)
    )
