"""Token models and their exact Go JSON form.

The Go DMS signs ``"dms:token:" + json.Marshal(DMSToken without sig)`` and verifies by
re-marshalling what it *parsed*, so a token must survive parse → marshal byte for byte. That rules
out a general-purpose model library: these frozen dataclasses keep every distinction Go keeps
(``"cap":null`` vs ``"cap":[]``, ``"nonce":null`` vs ``""``) and render with :mod:`dms.gojson`
in Go's field order with Go's ``omitempty`` rules. Rendered bytes are cached per instance, since
verifying a chain needs each link's bytes once per level above it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from dms import gojson
from dms.did import DID, Anchor, Provider
from dms.errors import CapabilityError, DMSError

#: Prefix of the data a token signature covers.
SIGNATURE_PREFIX = b"dms:token:"
#: Largest ``cap`` blob (a TokenList's JSON) that :meth:`CapabilityContext.consume` accepts.
MAX_CAPABILITY_SIZE = 16384
#: Length of the random nonce in new tokens.
NONCE_SIZE = 12


class Action(StrEnum):
    """What a token allows its subject to do."""

    INVOKE = "invoke"
    DELEGATE = "delegate"
    BROADCAST = "broadcast"
    REVOKE = "revoke"


@dataclass(frozen=True, eq=False)
class DMSToken:
    """One signed capability grant (Go ``ucan.DMSToken``).

    ``capability`` and ``nonce`` are ``None`` for a Go nil (rendered ``null``); an empty
    ``topic``, zero ``depth``, missing ``chain`` and empty ``signature`` are omitted. ``expire``
    is Unix nanoseconds; ``depth`` 0 means unlimited delegation depth.
    """

    action: str
    issuer: DID
    subject: DID
    audience: DID
    topic: tuple[str, ...]
    capability: tuple[str, ...] | None
    nonce: bytes | None
    expire: int
    depth: int = 0
    chain: Token | None = None
    signature: bytes = b""

    @cached_property
    def unsigned_json(self) -> bytes:
        """Go's ``json.Marshal`` of this token with ``Signature=nil`` (what the issuer signs)."""
        parts = [
            b'{"act":',
            gojson.string(self.action),
            b',"iss":',
            _did_json(self.issuer),
            b',"sub":',
            _did_json(self.subject),
            b',"aud":',
            _did_json(self.audience),
        ]
        if self.topic:
            parts += [b',"topic":', _strings(self.topic)]
        parts += [b',"cap":', b"null" if self.capability is None else _strings(self.capability)]
        # Go's []byte: null when nil, else a padded standard base64 string.
        nonce = b"null" if self.nonce is None else f'"{gojson.b64encode(self.nonce)}"'.encode()
        parts += [b',"nonce":', nonce, b',"exp":', str(self.expire).encode()]
        if self.depth:
            parts += [b',"depth":', str(self.depth).encode()]
        if self.chain is not None:
            parts += [b',"chain":', self.chain.to_json()]
        parts.append(b"}")
        return b"".join(parts)

    @cached_property
    def json(self) -> bytes:
        """Go's ``json.Marshal`` of this token, signature included."""
        if not self.signature:
            return self.unsigned_json
        return (
            self.unsigned_json[:-1]
            + b',"sig":"'
            + gojson.b64encode(self.signature).encode()
            + b'"}'
        )

    @property
    def signing_input(self) -> bytes:
        """The exact bytes the issuer's signature covers."""
        return SIGNATURE_PREFIX + self.unsigned_json

    @property
    def caps(self) -> tuple[str, ...]:
        """The capabilities, with a Go nil read as empty."""
        return self.capability or ()

    def expired(self, now_ns: int) -> bool:
        """Go ``ExpireBefore(now)``: true once ``now`` is past the expiry."""
        return self.expire < now_ns

    def expires_before(self, other_ns: int) -> bool:
        """True if this token expires before ``other_ns``."""
        return self.expire < other_ns

    def sign(self, provider: Provider) -> DMSToken:
        """A copy signed by ``provider``, which must be the issuer."""
        if provider.did != self.issuer:
            raise CapabilityError(
                f"cannot sign a token issued by {self.issuer.uri} as {provider.did.uri}"
            )
        # A field-for-field copy (dataclasses.replace re-runs the generated __init__, a hot
        # cost here) with the signature set; the signed fields are the same, so the unsigned
        # JSON is too: keep it rather than render it again.
        signed = object.__new__(type(self))
        fields = signed.__dict__
        for name in _FIELD_NAMES:
            fields[name] = getattr(self, name)
        fields["signature"] = provider.sign(self.signing_input)
        fields["unsigned_json"] = self.unsigned_json
        return signed

    def verify_signature(self) -> bool:
        """True if the signature was made by the issuer's key (any resolution problem: False)."""
        if not self.signature:
            return False
        try:
            anchor = _anchor(self.issuer)
            return anchor.verify(self.signing_input, self.signature)
        except (DMSError, ValueError):
            return False

    def anchor_depth(self, did: DID) -> int | None:
        """Hops from this token up to the nearest one issued by ``did`` (None if none is)."""
        hops = 0
        token: DMSToken | None = self
        while token is not None:
            if token.issuer == did:
                return hops
            token = token.chain.dms if token.chain is not None else None
            hops += 1
        return None

    def anchored(self, did: DID) -> bool:
        """True if this token or any link of its chain was issued by ``did``."""
        return self.anchor_depth(did) is not None

    def links(self) -> Iterable[DMSToken]:
        """This token, then its chain, parent first up to the root."""
        token: DMSToken | None = self
        while token is not None:
            yield token
            token = token.chain.dms if token.chain is not None else None


#: Every dataclass field of DMSToken (what a copy must carry).
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(DMSToken))


@dataclass(frozen=True, eq=False)
class Token:
    """The wrapper Go puts around a token (``{"dms":{...}}``); BYO UCAN tokens are unsupported."""

    dms: DMSToken

    def to_json(self) -> bytes:
        """Go's ``json.Marshal`` of the wrapper."""
        return b'{"dms":' + self.dms.json + b"}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Token) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())


@dataclass(frozen=True)
class TokenList:
    """What travels in an envelope's ``cap`` field and in ``.cap`` files (Go ``TokenList``)."""

    tokens: tuple[Token, ...] = ()

    def to_json(self) -> bytes:
        """Go's ``json.Marshal``: ``{"tok":[...]}``, or ``{}`` when there are no tokens."""
        if not self.tokens:
            return b"{}"
        return b'{"tok":[' + b",".join(t.to_json() for t in self.tokens) + b"]}"

    def __len__(self) -> int:
        return len(self.tokens)


def new_token(
    provider: Provider,
    action: Action | str,
    subject: DID,
    *,
    audience: DID,
    topics: Iterable[str],
    expire_ns: int,
    depth: int,
    caps: Iterable[str],
    chain: Token | None = None,
) -> Token:
    """Build and sign a token issued by ``provider`` with a fresh random nonce."""
    if expire_ns <= 0 or expire_ns >= 1 << 64:
        raise CapabilityError(f"invalid token expiry {expire_ns}")
    if depth < 0 or depth >= 1 << 64:
        raise CapabilityError(f"invalid token depth {depth}")
    token = build_token(
        str(action),
        provider.did,
        subject,
        audience,
        tuple(topics),
        tuple(caps),
        os.urandom(NONCE_SIZE),
        expire_ns,
        depth,
        chain,
    )
    return Token(token.sign(provider))


def build_token(  # noqa: PLR0917 - the token's fields, in their order
    action: str,
    issuer: DID,
    subject: DID,
    audience: DID,
    topic: tuple[str, ...],
    capability: tuple[str, ...] | None,
    nonce: bytes | None,
    expire: int,
    depth: int = 0,
    chain: Token | None = None,
    signature: bytes = b"",
) -> DMSToken:
    """``DMSToken(...)`` for fields the caller has already checked, without the frozen init.

    The generated ``__init__`` of a frozen dataclass sets each field through
    ``object.__setattr__`` (about 1.9 us for a token, against 0.3 us here), and every message
    builds a dozen tokens (parsed and new). ``DMSToken`` has no ``__post_init__`` to skip.
    """
    token = object.__new__(DMSToken)
    token.__dict__.update(
        action=action,
        issuer=issuer,
        subject=subject,
        audience=audience,
        topic=topic,
        capability=capability,
        nonce=nonce,
        expire=expire,
        depth=depth,
        chain=chain,
        signature=signature,
    )
    return token


@functools.lru_cache(maxsize=1024)
def _anchor(did: DID) -> Anchor:
    """Resolve a DID once: did:key resolution is pure, and chains repeat the same issuers."""
    return Anchor.from_did(did)


def _strings(texts: tuple[str, ...]) -> bytes:
    return b"[" + b",".join(gojson.string(t) for t in texts) + b"]"


@functools.lru_cache(maxsize=1024)
def _did_json(did: DID) -> bytes:
    """Go JSON of a DID struct; cached because every token names the same few DIDs."""
    return b'{"uri":' + gojson.string(did.uri) + b"}" if did.uri else b"{}"
