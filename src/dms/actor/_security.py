"""The security context of one actor: its key, its nonces and the shared capability context.

Every actor signs with its own key (a node actor with the node key, children and CLI sessions
with fresh ones), while all actors of a process present and check capabilities through one
:class:`~dms.ucan.CapabilityContext` (the node's ``dms`` context or the user's context). This
module wires the two together exactly as Go's ``BasicSecurityContext`` does (spec §2.4, §3.4):

* outgoing: tokens are attached first and the envelope is signed afterwards, so ``cap`` is
  covered by the signature;
* incoming: the sender's tokens are consumed with ``origin = from.did`` (its context DID) and the
  check is made against the DID of ``from.id`` (its actor key); if the check fails the tokens
  are discarded again so a refused sender leaves nothing behind. Any error means "refused".
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

from dms.actor._envelope import ALLOWED_KEY_TYPES, Envelope
from dms.actor._nonce import NonceSource
from dms.crypto import ID, PrivateKey
from dms.did import DID, did_from_id
from dms.errors import CapabilityError, CryptoError, DMSError
from dms.ucan import CapabilityContext, Token, TokenList

log = logging.getLogger(__name__)

_Predicate = Callable[[DID, Sequence[Token]], bool]


class SecurityContext:
    """One actor's signing key and nonce counter plus the process's capability context."""

    def __init__(
        self,
        key: PrivateKey,
        capabilities: CapabilityContext,
        *,
        nonces: NonceSource | None = None,
    ) -> None:
        if key.key_type not in ALLOWED_KEY_TYPES:
            raise CryptoError(f"an actor cannot use a {key.key_type.name} key")
        self.key = key
        self.capabilities = capabilities
        self.nonces = nonces or NonceSource()
        #: The actor ID (its public key), what ``from.id`` carries and signatures are checked by.
        self.id = ID.from_public_key(key.public_key)
        #: ``did:key`` of the actor ID: the subject/audience of the tokens about this actor.
        self.actor_did = did_from_id(self.id)

    @property
    def did(self) -> DID:
        """The capability context's DID: what handles carry in ``did`` and tokens are issued by."""
        return self.capabilities.did

    def nonce(self) -> int:
        """The next message nonce."""
        return self.nonces.next()

    def now_ns(self) -> int:
        """The capability context's clock (Unix ns)."""
        return self.capabilities.clock()

    # -- outgoing ---------------------------------------------------------------------------

    def sign(self, env: Envelope) -> Envelope:
        """Sign ``env``, which must be from this actor (``from.id`` = our ID)."""
        return env.sign(self.key)

    def _with_nonce(self, env: Envelope) -> Envelope:
        return env if env.nonce else dataclasses.replace(env, nonce=self.nonce())

    def provide(
        self, env: Envelope, invoke: Sequence[str], delegate: Sequence[str] = ()
    ) -> Envelope:
        """Attach tokens for invoking ``invoke`` on ``env.to`` (and ``delegate``), then sign.

        target = ``to.did`` (the recipient's context), subject = our actor DID, audience = the
        DID of ``to.id``; ``delegate`` is the reply continuation the recipient may answer on.
        """
        env = self._with_nonce(env)
        try:
            audience = did_from_id(env.to.id)
        except DMSError as exc:
            raise CapabilityError(f"cannot address tokens to the recipient: {exc}") from None
        blob = self.capabilities.provide(
            env.to.did,
            self.actor_did,
            audience,
            expire_ns=env.options.expire,
            invoke=invoke,
            delegate=delegate,
        )
        return self.sign(env.evolve(capability=blob))

    def provide_broadcast(self, env: Envelope, topic: str, caps: Sequence[str]) -> Envelope:
        """Attach broadcast tokens for ``caps`` on ``topic`` (no delegate token), then sign."""
        env = self._with_nonce(env)
        blob = self.capabilities.provide_broadcast(
            self.actor_did, topic, expire_ns=env.options.expire, caps=caps
        )
        return self.sign(env.evolve(capability=blob))

    def grant(
        self, subject: DID, audience: DID, caps: Sequence[str], expire_ns: int, depth: int = 1
    ) -> TokenList:
        """A self-signed delegate token from our capability context (Go's ``Grant``)."""
        return self.capabilities.grant(
            "delegate", subject, audience=audience, expire_ns=expire_ns, depth=depth, caps=caps
        )

    # -- incoming ---------------------------------------------------------------------------

    def require(self, env: Envelope, caps: Sequence[str]) -> bool:
        """May ``env``'s sender invoke all of ``caps`` on us? (consume, check, discard if not)"""
        return self._check(
            env,
            lambda subject, presented: self.capabilities.require(
                self.did, subject, self.actor_did, caps, presented
            ),
        )

    def require_broadcast(self, env: Envelope, topic: str, caps: Sequence[str]) -> bool:
        """May ``env``'s sender broadcast all of ``caps`` on ``topic``?"""
        return self._check(
            env,
            lambda subject, presented: self.capabilities.require_broadcast(
                self.did, subject, topic, caps, presented
            ),
        )

    def _check(self, env: Envelope, allowed: _Predicate) -> bool:
        consumed = False
        try:
            subject = did_from_id(env.from_.id)
            presented = []
            if env.capability:
                presented = self.capabilities.consume(env.from_.did, env.capability)
                consumed = True
            if allowed(subject, presented):
                return True
        except (DMSError, ValueError) as exc:
            log.info("capability check failed for %s: %s", env.behavior, exc)
        except Exception:  # fail closed on anything unexpected, but keep the evidence
            log.exception("capability check crashed for %s", env.behavior)
        if consumed:
            try:
                self.capabilities.discard(env.capability)
            except Exception:
                log.exception("could not discard tokens of a refused message")
        return False
