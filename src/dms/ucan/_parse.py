"""Parsing token JSON the way Go's ``encoding/json`` decodes it, but failing closed on junk.

Keys fill fields by :mod:`dms.gojson`'s rules (Go's matching: exact name first, then Unicode
simple case folding; unknown keys ignored; ``null`` is the zero value), so tokens from Go peers
parse, and nil vs empty is kept so they re-marshal to the signed bytes. Tokens are signed, so a
repeated key is refused (Go would merge it), as are ``null`` inside a list, numbers that are not
uint64, ``ucan`` tokens we cannot re-encode and unknown actions: such input never comes from an
honest Go encoder. Errors are one-line :class:`TokenError`.
"""

from __future__ import annotations

import functools
from typing import Any

from dms import gojson
from dms.did import DID
from dms.errors import DMSError, TokenError
from dms.ucan._token import Action, DMSToken, Token, TokenList, build_token

_ACTIONS = frozenset(a.value for a in Action)
_MAX_NESTING = 64
_TOKEN_LIST = gojson.Fields("tok")
_TOKEN = gojson.Fields("dms", "ucan")
_DID = gojson.Fields("uri")
_DMS_TOKEN = gojson.Fields(
    "act", "iss", "sub", "aud", "topic", "cap", "nonce", "exp", "depth", "chain", "sig"
)


def parse_token_list(data: bytes | str) -> TokenList:
    """Parse a Go ``TokenList`` (``{"tok":[...]}``; ``{}`` or ``null`` is the empty list)."""
    return token_list_from_value(loads(data), "token list")


def token_list_from_value(value: Any, what: str) -> TokenList:
    """Build a :class:`TokenList` from already-decoded JSON; ``what`` names it in errors."""
    if value is None:
        return TokenList()
    raw = fields(value, _TOKEN_LIST, what).get("tok")
    if raw is None:
        return TokenList()
    if type(raw) is not list:  # a decoded object is a list subclass (gojson.Object)
        raise TokenError(f"invalid {what}: 'tok' must be an array")
    return TokenList(tuple(token_from_value(item) for item in raw))


def parse_tokens(data: bytes | str) -> TokenList:
    """Parse either a Go ``TokenList`` (``{"tok":[...]}``) or one ``Token`` (``{"dms":...}``).

    An object with a ``dms`` key (matched as Go matches keys) is a single token, anything else
    must be a token list. The JSON is decoded once; undecodable input is :class:`TokenJSONError`.
    """
    value = loads(data)
    if isinstance(value, gojson.Object) and any(_TOKEN.match(key) == "dms" for key, _ in value):
        return TokenList((token_from_value(value),))
    return token_list_from_value(value, "token list")


def parse_token(data: bytes | str) -> Token:
    """Parse one Go ``Token`` (``{"dms":{...}}``)."""
    return token_from_value(loads(data))


def token_from_value(value: Any, level: int = 0) -> Token:
    """Build a :class:`Token` from already-decoded JSON (see :func:`loads`)."""
    if level > _MAX_NESTING:
        raise TokenError("invalid token: chain nested too deeply")
    f = fields(value, _TOKEN, "token")
    if f.get("ucan") is not None:
        raise TokenError("invalid token: BYO UCAN tokens are not supported")
    dms = f.get("dms")
    if dms is None:
        raise TokenError("invalid token: no 'dms' token")
    return Token(_dms_token(dms, level))


def did_from_value(value: Any, what: str) -> DID:
    """A Go ``did.DID`` (``{"uri":...}``; ``{}`` and ``null`` are the empty DID)."""
    if value is None:
        return DID()
    if type(value) is gojson.Object and len(value) == 1:
        key, uri = value[0]
        if key == "uri" and type(uri) is str:  # the usual form: skip the field matching
            return _did(uri)
    uri = fields(value, _DID, what).get("uri")
    if uri is None:
        return DID()
    if not isinstance(uri, str):
        raise TokenError(f"invalid {what}: 'uri' must be a string")
    return DID(uri)


@functools.lru_cache(maxsize=1024)
def _did(uri: str) -> DID:
    """One DID object per URI: tokens name the same few DIDs over and over."""
    return DID(uri)


def loads(data: bytes | str) -> Any:
    """Decode token JSON (objects as :class:`dms.gojson.Object`, so repeated keys can be caught).

    Text that is not JSON is :class:`TokenJSONError`; ``NaN`` and the like, :class:`TokenError`.
    """
    try:
        return gojson.loads(data, "token")
    except gojson.NotJSON as exc:
        raise TokenJSONError(exc.reason) from None
    except DMSError as exc:
        raise TokenError(str(exc)) from None


def fields(value: Any, names: gojson.Fields | tuple[str, ...], what: str) -> dict[str, Any]:
    """Map a decoded object's keys onto Go field ``names``; a repeated field is refused."""
    if value is None or not isinstance(value, gojson.Object):
        raise TokenError(f"invalid {what}: expected a JSON object")
    if not isinstance(names, gojson.Fields):
        names = gojson.Fields(*names)
    return gojson.decode_struct(value, names, what, signed=True, error=TokenError)


def _dms_token(value: Any, level: int) -> DMSToken:
    f = fields(value, _DMS_TOKEN, "token")
    action = f.get("act")
    if action is None:
        action = ""
    if not isinstance(action, str) or action not in _ACTIONS:
        raise TokenError(f"invalid token: unknown action {action!r}")
    topic = gojson.strings_value(f.get("topic"), "token.topic", error=TokenError)
    chain = f.get("chain")
    return build_token(  # every field checked above or by its converter
        action,
        did_from_value(f.get("iss"), "token issuer"),
        did_from_value(f.get("sub"), "token subject"),
        did_from_value(f.get("aud"), "token audience"),
        topic or (),
        gojson.strings_value(f.get("cap"), "token.cap", error=TokenError),
        gojson.bytes_value(f.get("nonce"), "token.nonce", error=TokenError),
        gojson.uint64_value(f.get("exp"), "token.exp", error=TokenError),
        gojson.uint64_value(f.get("depth"), "token.depth", error=TokenError),
        None if chain is None else token_from_value(chain, level + 1),
        gojson.bytes_value(f.get("sig"), "token.sig", error=TokenError) or b"",
    )


class TokenJSONError(TokenError):
    """Token input that is not JSON at all; ``reason`` is the decoder's own message."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token JSON: {reason}")
        self.reason = reason
