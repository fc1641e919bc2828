"""The capability context: whom we trust, what we may present, and what others presented to us.

One context belongs to one DID (a node's ``dms`` context or a user's ``user`` context) and holds
its trust anchors, as Go's ``BasicCapabilityContext`` does:

* ``roots``: DIDs trusted absolutely (their tokens need no further justification);
* ``require``: delegate tokens that accept *side chains*: a token anchored on the require token's
  subject is accepted within that token's capabilities (e.g. "anything NuNet vouches for with
  ``/public``");
* ``provide``: tokens granted *to us* that we chain from when presenting or re-delegating;
* ``revoke``: revocation tokens; a revoked token is rejected at every level of any chain;
* consumed tokens, per subject, received with incoming messages.

Every anchor added is verified first (fail closed). Time comes from an injectable clock so tests
can move it. Methods are guarded by a lock because the actor layer may verify off the event loop.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from dms.did import DID, Anchor, Provider
from dms.errors import CapabilityError, DMSError, TokenError
from dms.ucan._capability import capabilities
from dms.ucan._chain import (
    RevocationSet,
    allow_action,
    allow_broadcast,
    allow_delegation,
    allow_invocation,
    subsumes,
    verify_token,
)
from dms.ucan._parse import parse_token_list
from dms.ucan._token import MAX_CAPABILITY_SIZE, Action, DMSToken, Token, TokenList, new_token

log = logging.getLogger(__name__)

Clock = Callable[[], int]
_Tokens = list[Token]
_NOBODY = DID()  # the empty audience: anyone


class SelfSign(StrEnum):
    """Whether :meth:`CapabilityContext.delegate` adds a self-signed grant (``--self-sign``)."""

    NO = "no"
    ALSO = "also"
    ONLY = "only"


@dataclass(frozen=True)
class ContextView:
    """A snapshot of a context's anchors (what ``nunet cap list`` shows and ``.cap`` files hold)."""

    did: DID
    roots: tuple[DID, ...]
    require: TokenList
    provide: TokenList
    revoke: TokenList


#: Tokens kept per subject (the oldest go first); far above what honest peers hold live.
MAX_CONSUMED_PER_SUBJECT = 4096
#: How often expired consumed tokens are pruned (ns).
CONSUMED_PRUNE_INTERVAL_NS = 5 * 10**9


class CapabilityContext:
    """Capability state of one DID; see the module doc. Construct via :mod:`dms.ucan` helpers."""

    def __init__(
        self,
        provider: Provider,
        *,
        name: str = "",
        roots: Iterable[DID] = (),
        require: Iterable[Token] = (),
        provide: Iterable[Token] = (),
        revoke: Iterable[Token] = (),
        clock: Clock = time.time_ns,
    ) -> None:
        """Build a context from anchors that are already verified (as :func:`load_context` does).

        Use :meth:`add_roots` and friends to add anchors that still need checking.
        """
        self.name = name
        self.provider = provider
        self.did = provider.did
        self.clock = clock
        self._lock = threading.RLock()
        self._roots: list[DID] = list(dict.fromkeys(roots))
        self._require: _Tokens = list(require)
        # Require anchors added while running (grants to supervisors and orchestrators): not in
        # the .cap file, so a reload of the file must keep them.
        self._runtime_require: _Tokens = []
        self._provide: _Tokens = list(provide)
        self._revoke: _Tokens = list(revoke)
        self._revoked = RevocationSet(self._revoke)
        # Tokens received from peers, per subject, keyed by signature (unique per token). Every
        # message brings fresh tokens, so this is bounded and pruned: see _store_consumed.
        self._consumed: dict[DID, collections.OrderedDict[bytes, Token]] = {}
        # Tokens about ourselves (reply-continuation grants, mostly) by capability, so provide
        # finds the few that can parent a reply without scanning one per past invocation.
        self._about_us: dict[str, dict[bytes, Token]] = {}
        self._next_prune = 0

    def replace_anchors(self, view: ContextView) -> None:
        """Swap in the anchors of ``view`` (a freshly loaded ``.cap`` file of the same DID).

        A running DMS calls this when ``nunet cap anchor|remove`` changed its file, so new trust
        applies without a restart. Tokens consumed from peers are kept; they are re-checked
        against the new anchors on every use. Require anchors added at runtime with
        :meth:`add_require` (grants to a supervisor or an orchestrator) are kept while live.
        """
        if view.did != self.did:
            raise CapabilityError(f"anchors for {view.did.uri} cannot replace {self.did.uri}'s")
        with self._lock:
            self._roots = list(dict.fromkeys(view.roots))
            self._runtime_require = self._live(self._runtime_require, self.clock())
            require = list(view.require.tokens)
            for token in self._runtime_require:
                require = _merge(require, token)
            self._require = require
            self._provide = list(view.provide.tokens)
            self._revoke = list(view.revoke.tokens)
            self._revoked = RevocationSet(self._revoke)

    # -- incoming ---------------------------------------------------------------------------

    def consume(self, origin: DID, cap_blob: bytes) -> _Tokens:
        """Verify and store the tokens of an incoming envelope's ``cap`` blob.

        A token is kept only if it is anchored on our DID, on ``origin`` (the sender's context
        DID), on a root, or is authorised by a require anchor, and if it verifies. Invalid tokens
        are skipped (Go only logs them); an oversized or unparseable blob raises
        :class:`TokenError`. Returns the tokens stored.
        """
        if len(cap_blob) > MAX_CAPABILITY_SIZE:
            raise TokenError(
                f"capability blob too large: {len(cap_blob)} > {MAX_CAPABILITY_SIZE} bytes"
            )
        tokens = parse_token_list(cap_blob)
        with self._lock:
            now = self.clock()
            require = self._live(self._require, now)
            kept: _Tokens = []
            for token in tokens.tokens:
                t = token.dms
                trusted = (
                    t.anchored(self.did)
                    or (not origin.empty() and t.anchored(origin))
                    or any(t.anchored(root) for root in self._roots)
                    or any(allow_action(rt.dms, t) for rt in require)
                )
                if not trusted:
                    log.debug("ignoring unanchored token from %s", t.issuer.uri)
                    continue
                try:
                    verify_token(token, now, self._revoked)
                except TokenError as exc:
                    log.info("rejecting token: %s", exc)
                    continue
                self._store_consumed(token, now)
                kept.append(token)
            return kept

    def _store_consumed(self, token: Token, now: int) -> None:
        """Remember a verified token; bound per subject, expired ones pruned every few seconds.

        Go keeps every consumed token until a GC that never runs; a busy peer sends thousands
        a minute, and scanning them all on each check made authorisation cost grow with traffic.
        """
        stored = self._consumed.get(token.dms.subject)
        if stored is None:
            stored = self._consumed[token.dms.subject] = collections.OrderedDict()
        key = _token_key(token)
        stored[key] = token
        self._index_about_us(key, token, add=True)
        while len(stored) > MAX_CONSUMED_PER_SUBJECT:  # oldest first, O(1) (see VERIFIED)
            oldest, dropped = stored.popitem(last=False)
            self._index_about_us(oldest, dropped, add=False)
        if now >= self._next_prune:
            self._next_prune = now + CONSUMED_PRUNE_INTERVAL_NS
            for subject in list(self._consumed):
                live = collections.OrderedDict(
                    (key, t) for key, t in self._consumed[subject].items() if not t.dms.expired(now)
                )
                if live:
                    self._consumed[subject] = live
                else:
                    del self._consumed[subject]
            self._about_us = {}
            for key, t in self._consumed.get(self.did, {}).items():
                self._index_about_us(key, t, add=True)

    def _index_about_us(self, key: bytes, token: Token, *, add: bool) -> None:
        if token.dms.subject != self.did:
            return
        for cap in token.dms.capability or ():
            entries = self._about_us.setdefault(cap, {})
            if add:
                entries[key] = token
            else:
                entries.pop(key, None)
                if not entries:
                    del self._about_us[cap]

    def _about_us_allowing(self, target: DID, caps: Sequence[str]) -> _Tokens:
        """Consumed tokens about us, anchored on ``target``, with a cap covering ``caps[0]``.

        (A parent must allow every requested cap; _chained checks the rest.)
        """
        first = caps[0]
        prefixes = ["/"] + ["/".join(first.split("/")[:i]) for i in range(2, first.count("/") + 2)]
        found: dict[bytes, Token] = {}
        for prefix in prefixes:
            found.update(self._about_us.get(prefix, {}))
        return [t for t in found.values() if t.dms.anchored(target)]

    def discard(self, cap_blob: bytes) -> None:
        """Forget the tokens of a ``cap`` blob again (after a failed :meth:`require`)."""
        try:
            tokens = parse_token_list(cap_blob)
        except TokenError:
            return
        with self._lock:
            for token in tokens.tokens:
                stored = self._consumed.get(token.dms.subject)
                if stored is not None:
                    removed = stored.pop(_token_key(token), None)
                    if removed is not None:
                        self._index_about_us(_token_key(token), removed, add=False)
                    if not stored:
                        del self._consumed[token.dms.subject]

    def require(
        self,
        anchor: DID,
        subject: DID,
        audience: DID,
        caps: Sequence[str],
        presented: Sequence[Token] = (),
    ) -> bool:
        """Is ``subject`` allowed to invoke every capability in ``caps`` on ``audience``?

        ``anchor`` is our own DID; ``subject``/``audience`` are the DIDs of the sender's and our
        actor IDs (the caller converts them). An empty ``caps`` is never authorised.
        ``presented`` are the tokens the message itself carried (what :meth:`consume` returned):
        they are tried first, which settles nearly every check without scanning the stored ones.
        """
        return self._require_each(
            anchor,
            subject,
            caps,
            lambda t, c: allow_invocation(t, subject, audience, c),
            presented,
        )

    def require_broadcast(
        self,
        anchor: DID,
        subject: DID,
        topic: str,
        caps: Sequence[str],
        presented: Sequence[Token] = (),
    ) -> bool:
        """Is ``subject`` allowed to broadcast every capability in ``caps`` on ``topic``?"""
        return self._require_each(
            anchor, subject, caps, lambda t, c: allow_broadcast(t, subject, topic, c), presented
        )

    def _require_each(
        self,
        anchor: DID,
        subject: DID,
        caps: Sequence[str],
        allows: Callable[[DMSToken, str], bool],
        presented: Sequence[Token] = (),
    ) -> bool:
        if not caps:
            return False
        with self._lock:
            now = self.clock()
            require = self._live(self._require, now)
            trusted = (anchor, *self._roots)

            def authorises(tokens: _Tokens) -> bool:
                return all(
                    any(
                        allows(t.dms, c)
                        and (
                            any(t.dms.anchored(d) for d in trusted)
                            or any(allow_action(rt.dms, t.dms) for rt in require)
                        )
                        for t in tokens
                    )
                    for c in caps
                )

            fresh = [t for t in presented if t.dms.subject == subject]
            if fresh and authorises(self._live(fresh, now)):
                return True
            return authorises(self._live(self._consumed.get(subject, {}).values(), now))

    # -- outgoing ---------------------------------------------------------------------------

    def provide(
        self,
        target: DID,
        subject: DID,
        audience: DID,
        *,
        expire_ns: int,
        invoke: Sequence[str],
        delegate: Sequence[str] = (),
    ) -> bytes:
        """The ``cap`` blob (TokenList JSON) for an invocation of ``invoke`` on ``target``.

        ``target`` is the recipient's context DID, ``subject`` the DID of our actor ID and
        ``audience`` the DID of the recipient's actor ID. Holds invoke tokens chained from
        consumed tokens about us anchored on ``target`` and from each provide anchor (each only
        if it allows all of ``invoke``), a self-signed invoke token, and, if ``delegate`` is
        given (a reply continuation), a self-signed depth-1 delegate token letting ``target``
        answer our actor.
        """
        if not invoke:
            raise CapabilityError("nothing to invoke: no capabilities given")
        with self._lock:
            now = self.clock()
            about_us = self._about_us_allowing(target, invoke)
            tokens = self._chained(
                about_us + self._provide,
                now,
                Action.INVOKE,
                subject,
                audience,
                (),
                expire_ns,
                0,
                invoke,
            )
        tokens.append(self._sign(Action.INVOKE, subject, audience, (), expire_ns, 0, invoke))
        if delegate:
            tokens.append(self._sign(Action.DELEGATE, target, subject, (), expire_ns, 1, delegate))
        return TokenList(tuple(tokens)).to_json()

    def provide_broadcast(
        self, subject: DID, topic: str, *, expire_ns: int, caps: Sequence[str]
    ) -> bytes:
        """The ``cap`` blob for broadcasting ``caps`` on ``topic`` as actor DID ``subject``."""
        if not caps:
            raise CapabilityError("nothing to broadcast: no capabilities given")
        with self._lock:
            tokens = self._chained(
                self._provide,
                self.clock(),
                Action.BROADCAST,
                subject,
                _NOBODY,
                (topic,),
                expire_ns,
                0,
                caps,
            )
        tokens.append(self._sign(Action.BROADCAST, subject, _NOBODY, (topic,), expire_ns, 0, caps))
        return TokenList(tuple(tokens)).to_json()

    def grant(
        self,
        action: Action | str,
        subject: DID,
        *,
        audience: DID = _NOBODY,
        topics: Sequence[str] = (),
        expire_ns: int,
        depth: int = 0,
        caps: Sequence[str],
    ) -> TokenList:
        """A self-signed root token from us (``nunet cap grant``)."""
        act, topic, cap = _check_request(action, topics, caps)
        return TokenList((self._sign(act, subject, audience, topic, expire_ns, depth, cap),))

    def delegate(
        self,
        action: Action | str,
        subject: DID,
        *,
        audience: DID = _NOBODY,
        topics: Sequence[str] = (),
        expire_ns: int = 0,
        depth: int = 0,
        caps: Sequence[str],
        self_sign: SelfSign | str = SelfSign.NO,
    ) -> TokenList:
        """Re-delegate from our provide anchors (``nunet cap delegate``).

        One chained token per provide anchor that allows every capability; ``expire_ns`` 0
        inherits each parent's expiry. ``self_sign`` ``also``/``only`` adds/uses only a
        self-signed grant (which needs an explicit expiry).
        """
        act, topic, cap = _check_request(action, topics, caps)
        try:
            mode = SelfSign(self_sign)
        except ValueError:
            raise CapabilityError(
                f"invalid self-sign mode {self_sign!r}: expected no, also or only"
            ) from None
        tokens: _Tokens = []
        if mode != SelfSign.ONLY:
            with self._lock:
                tokens = self._chained(
                    self._provide,
                    self.clock(),
                    act,
                    subject,
                    audience,
                    topic,
                    expire_ns,
                    depth,
                    cap,
                )
            if not tokens and mode == SelfSign.NO:
                raise CapabilityError(
                    f"no provide anchor allows delegating {', '.join(cap)} to {subject.uri}"
                )
        if mode != SelfSign.NO:
            if not expire_ns:
                raise CapabilityError("a self-signed token needs an explicit expiry")
            tokens.append(self._sign(act, subject, audience, topic, expire_ns, depth, cap))
        return TokenList(tuple(tokens))

    def revoke(self, token: Token) -> Token:
        """A revocation of ``token``, which we must have issued (``nunet cap revoke``).

        Copies issuer, subject, nonce, expiry and (as the newest Go does) the capabilities.
        """
        t = token.dms
        if t.issuer != self.did:
            raise CapabilityError(f"only the issuer {t.issuer.uri} may revoke this token")
        revocation = DMSToken(
            action=Action.REVOKE.value,
            issuer=t.issuer,
            subject=t.subject,
            audience=DID(),
            topic=(),
            capability=t.capability,
            nonce=t.nonce,
            expire=t.expire,
        )
        return Token(revocation.sign(self.provider))

    def _sign(  # noqa: PLR0917 - mirrors the token's own fields, in their order
        self,
        action: Action,
        subject: DID,
        audience: DID,
        topics: Sequence[str],
        expire_ns: int,
        depth: int,
        caps: Sequence[str],
        chain: Token | None = None,
    ) -> Token:
        return new_token(
            self.provider,
            action,
            subject,
            audience=audience,
            topics=topics,
            expire_ns=expire_ns,
            depth=depth,
            caps=caps,
            chain=chain,
        )

    def _chained(  # noqa: PLR0917 - as _sign, plus the parents and the time
        self,
        parents: Iterable[Token],
        now: int,
        action: Action,
        subject: DID,
        audience: DID,
        topics: Sequence[str],
        expire_ns: int,
        depth: int,
        caps: Sequence[str],
    ) -> _Tokens:
        """One token chained from each live parent that allows all ``caps``.

        ``expire_ns`` 0 inherits the parent's expiry.
        """
        out: _Tokens = []
        for parent in self._live(parents, now):
            exp = expire_ns or parent.dms.expire
            if all(
                allow_delegation(
                    parent.dms, action, self.did, audience, topics=topics, expire_ns=exp, c=c
                )
                for c in caps
            ):
                out.append(
                    self._sign(action, subject, audience, topics, exp, depth, caps, chain=parent)
                )
        return out

    # -- anchors ----------------------------------------------------------------------------

    def add_roots(self, roots: Iterable[DID]) -> None:
        """Trust ``roots`` absolutely; each must be a DID whose key we can resolve."""
        roots = list(roots)
        for root in roots:
            try:
                Anchor.from_did(root)
            except (DMSError, ValueError) as exc:
                raise CapabilityError(f"cannot use {root.uri!r} as a root: {exc}") from None
        with self._lock:
            self._roots = list(dict.fromkeys([*self._roots, *roots]))

    def add_require(self, tokens: Iterable[Token]) -> None:
        """Accept side chains authorised by these delegate tokens (each must verify)."""
        with self._lock:
            for token in self._verified(tokens):
                self._require = _merge(self._require, token)
                live = self._live(self._runtime_require, self.clock())
                self._runtime_require = [*live, token]

    def add_provide(self, tokens: Iterable[Token]) -> None:
        """Hold these tokens, granted to us, to chain from (each must verify and name us)."""
        with self._lock:
            for token in self._verified(tokens):
                if token.dms.subject != self.did:
                    raise CapabilityError(
                        f"provide anchor was granted to {token.dms.subject.uri}, not {self.did.uri}"
                    )
                self._provide = _merge(self._provide, token)

    def add_revoke(self, tokens: Iterable[Token]) -> None:
        """Record revocations; each must be a ``revoke`` token signed by its issuer."""
        tokens = list(tokens)
        for token in tokens:
            if token.dms.action != Action.REVOKE:
                raise CapabilityError(f"not a revoke token: action {token.dms.action!r}")
        with self._lock:
            for token in self._verified(tokens):
                if token not in self._revoke:
                    self._revoke.append(token)
                    self._revoked.add(token.dms)

    def remove(
        self,
        roots: Iterable[DID] = (),
        require: Iterable[Token] = (),
        provide: Iterable[Token] = (),
        revoke: Iterable[Token] = (),
    ) -> int:
        """Drop the given roots and anchor tokens (tokens match byte for byte).

        Returns how many entries were removed, so a caller can say when nothing matched.
        Removing a revoke token un-revokes what it named.
        """
        drop_roots, drop_require, drop_provide = set(roots), set(require), set(provide)
        drop_revoke = set(revoke)
        with self._lock:
            before = len(self._roots) + len(self._require) + len(self._provide) + len(self._revoke)
            self._roots = [r for r in self._roots if r not in drop_roots]
            self._require = [t for t in self._require if t not in drop_require]
            self._runtime_require = [t for t in self._runtime_require if t not in drop_require]
            self._provide = [t for t in self._provide if t not in drop_provide]
            if drop_revoke:
                self._revoke = [t for t in self._revoke if t not in drop_revoke]
                self._revoked = RevocationSet(self._revoke)
            after = len(self._roots) + len(self._require) + len(self._provide) + len(self._revoke)
            return before - after

    def list(self) -> ContextView:
        """A snapshot of the anchors, expired tokens left out."""
        with self._lock:
            now = self.clock()
            return ContextView(
                did=self.did,
                roots=tuple(self._roots),
                require=TokenList(tuple(t for t in self._require if not t.dms.expired(now))),
                provide=TokenList(tuple(t for t in self._provide if not t.dms.expired(now))),
                revoke=TokenList(tuple(t for t in self._revoke if not t.dms.expired(now))),
            )

    def consumed(self, subject: DID) -> _Tokens:
        """The unexpired tokens consumed about ``subject``."""
        with self._lock:
            return self._live(self._consumed.get(subject, {}).values(), self.clock())

    # -- helpers ----------------------------------------------------------------------------

    def _verified(self, tokens: Iterable[Token]) -> _Tokens:
        now = self.clock()
        tokens = list(tokens)
        for token in tokens:
            try:
                verify_token(token, now, self._revoked)
            except TokenError as exc:
                raise CapabilityError(f"anchor token rejected: {exc}") from None
        return tokens

    def _live(self, tokens: Iterable[Token], now: int) -> _Tokens:
        """Tokens with no expired or revoked link."""
        return [
            t
            for t in tokens
            if not any(link.expired(now) or self._revoked.revoked(link) for link in t.dms.links())
        ]


def _token_key(token: Token) -> bytes:
    """A token's identity in the consumed store: its signature (unique per signed token)."""
    return token.dms.signature or token.to_json()


def _merge(anchors: list[Token], token: Token) -> _Tokens:
    """Add ``token`` unless an anchor subsumes it; drop the anchors it subsumes."""
    if any(subsumes(a.dms, token.dms) for a in anchors):
        return anchors
    return [a for a in anchors if not subsumes(token.dms, a.dms)] + [token]


def _check_request(
    action: Action | str, topics: Sequence[str], caps: Sequence[str]
) -> tuple[Action, tuple[str, ...], tuple[str, ...]]:
    try:
        act = Action(action)
    except ValueError:
        raise CapabilityError(f"invalid action {action!r}") from None
    if act == Action.REVOKE:
        raise CapabilityError("revoke tokens are made with revoke, not granted")
    if not caps:
        raise CapabilityError("no capabilities given")
    return act, capabilities(topics), capabilities(caps)
