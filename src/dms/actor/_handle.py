"""Actor handles: who an actor is (ID, DID) and where its inbox lives (Address).

A handle is part of every envelope and so part of the signed bytes; its Go JSON is fixed
(spec §2.1): ``{"id":{"pub":"<base32>"},"did":{"uri":...},"addr":{"host":...,"inbox":...}}``,
where ``id`` is always written (the ID has its own marshaller, the empty one is ``{"pub":""}``),
an empty DID is ``{}`` and empty address fields are omitted.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from dms import gojson
from dms.crypto import ID
from dms.did import DID
from dms.errors import InvalidInput

#: The inbox of a DMS's node actor (Go's ``"root"``): where a handle made from a bare DID or peer
#: ID points, and the one inbox a REST client may never borrow for its replies.
ROOT_INBOX = "root"


@dataclass(frozen=True)
class Address:
    """Where an actor receives messages: libp2p peer ID of its host and its inbox name."""

    host: str = ""
    inbox: str = ""

    def empty(self) -> bool:
        """True when neither host nor inbox is set."""
        return not self.host and not self.inbox

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct()
        if self.host:
            out["host"] = self.host
        if self.inbox:
            out["inbox"] = self.inbox
        return out


@dataclass(frozen=True)
class Handle:
    """An actor's handle; ``Handle()`` is the empty handle (the ``to`` of a broadcast)."""

    id: ID = field(default_factory=ID)
    did: DID = field(default_factory=DID)
    address: Address = Address()

    def empty(self) -> bool:
        """True for the empty handle (Go's ``Handle.Empty``)."""
        return self.id.empty() and self.did.empty() and self.address.empty()

    def __gojson__(self) -> gojson.Struct:
        did = gojson.Struct()
        if self.did.uri:
            did["uri"] = self.did.uri
        return gojson.Struct(
            id=gojson.Struct(pub=self.id.to_base32()),
            did=did,
            addr=self.address.__gojson__(),
        )

    @cached_property
    def json(self) -> bytes:
        """Go's ``json.Marshal`` of the handle, built directly (it is in every envelope twice)."""
        return _handle_json(self)

    def _render_json(self) -> bytes:
        did = b'{"uri":' + gojson.string(self.did.uri) + b"}" if self.did.uri else b"{}"
        addr = self.address
        parts = []
        if addr.host:
            parts.append(b'"host":' + gojson.string(addr.host))
        if addr.inbox:
            parts.append(b'"inbox":' + gojson.string(addr.inbox))
        return (
            b'{"id":{"pub":'
            + gojson.string(self.id.to_base32())
            + b'},"did":'
            + did
            + b',"addr":{'
            + b",".join(parts)
            + b"}}"
        )

    def to_json(self) -> bytes:
        """Go's ``json.Marshal`` of the handle."""
        return self.json

    @classmethod
    def from_json(cls, data: bytes | str) -> Handle:
        """Parse a handle as Go would (case-insensitive keys, strict types)."""
        return cls.from_value(gojson.loads(data, "handle"))

    @classmethod
    def from_value(cls, value: Any) -> Handle:
        """Build a handle from already-decoded JSON (e.g. ``json.loads`` output)."""
        if value is None:
            raise InvalidInput("invalid handle: expected an object, got null")
        return decode_handle(value, "handle")


_ID = gojson.Fields("pub")
_DID = gojson.Fields("uri")
_ADDRESS = gojson.Fields("host", "inbox")
_HANDLE = gojson.Fields("id", "did", "addr")


def _struct(value: Any, fields: gojson.Fields, path: str) -> dict[str, Any]:
    """A signed object's fields (a handle is inside every signed envelope): repeats refused."""
    return gojson.decode_struct(value, fields, path, signed=True)


@functools.lru_cache(maxsize=1024)
def _handle_json(handle: Handle) -> bytes:
    """A handle's Go JSON, cached by value: every envelope names the same few handles."""
    return handle._render_json()


@functools.lru_cache(maxsize=1024)
def _id_from_pub(pub: str) -> ID | None:
    """The ID a ``pub`` string decodes to (None if it is not padded base32); cached by value."""
    try:
        raw = base64.b32decode(pub.replace("\r", "").replace("\n", ""), casefold=False)
    except (binascii.Error, ValueError):
        return None
    return ID(raw)


def decode_id(value: Any, path: str) -> ID:
    """Decode an ID (``{"pub": "<base32>"}``); ``null`` or a missing ``pub`` is the empty ID."""
    pub = gojson.str_value(_struct(value, _ID, path).get("pub"), f"{path}.pub")
    decoded = _id_from_pub(pub)
    if decoded is None:
        raise InvalidInput(f"invalid {path}.pub: not padded base32")
    return decoded


def decode_address(value: Any, path: str) -> Address:
    """Decode an Address (``null`` is the empty one)."""
    f = _struct(value, _ADDRESS, path)
    return Address(
        gojson.str_value(f.get("host"), f"{path}.host"),
        gojson.str_value(f.get("inbox"), f"{path}.inbox"),
    )


def decode_did(value: Any, path: str) -> DID:
    """Decode a DID struct (``{"uri": ...}``); the URI is kept as sent, as Go does."""
    return DID(gojson.str_value(_struct(value, _DID, path).get("uri"), f"{path}.uri"))


def _ascii_strings(pairs: Any, names: frozenset[str]) -> dict[str, str] | None:
    """``pairs`` as a dict when it is a decoded object whose keys are distinct members of
    ``names`` (exactly spelled) and whose values are ASCII strings; else None.

    For such an object the generic decoders return exactly these values (no case folding, no
    repeated key, nothing for ``str_value`` to repair), which is what makes the fast path of
    :func:`decode_handle` equivalent to the general one.
    """
    if type(pairs) is not gojson.Object:
        return None
    out = dict(pairs)
    if len(out) != len(pairs) or not out.keys() <= names:
        return None
    for text in out.values():
        if type(text) is not str or not text.isascii():
            return None
    return out


_PUB = frozenset({"pub"})
_URI = frozenset({"uri"})
_HOST_INBOX = frozenset({"host", "inbox"})


@functools.lru_cache(maxsize=1024)
def _handle_of(pub: str, uri: str, host: str, inbox: str, path: str) -> Handle:
    """The handle with these fields, cached by value: every envelope names the same few."""
    decoded = _id_from_pub(pub)
    if decoded is None:
        raise InvalidInput(f"invalid {path}.id.pub: not padded base32")
    return Handle(decoded, DID(uri), Address(host, inbox))


def decode_handle(value: Any, path: str) -> Handle:
    """Decode a Handle; ``null`` is the empty handle, as in Go.

    A handle in the form every encoder writes (keys ``id``, ``did``, ``addr`` spelled exactly,
    once each, ASCII strings) is read directly and its :class:`Handle` shared by value; any other
    form (null, case-folded keys, non-ASCII text, errors) takes the general path.
    """
    if type(value) is gojson.Object and len(value) == 3:
        (k_id, v_id), (k_did, v_did), (k_addr, v_addr) = value
        if k_id == "id" and k_did == "did" and k_addr == "addr":
            pub = _ascii_strings(v_id, _PUB)
            did = _ascii_strings(v_did, _URI)
            addr = _ascii_strings(v_addr, _HOST_INBOX)
            if pub is not None and did is not None and addr is not None and "pub" in pub:
                return _handle_of(
                    pub["pub"],
                    did.get("uri", ""),
                    addr.get("host", ""),
                    addr.get("inbox", ""),
                    path,
                )
    f = _struct(value, _HANDLE, path)
    return Handle(
        decode_id(f.get("id"), f"{path}.id"),
        decode_did(f.get("did"), f"{path}.did"),
        decode_address(f.get("addr"), f"{path}.addr"),
    )
