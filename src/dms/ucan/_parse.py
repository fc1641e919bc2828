"""Parsing token JSON the way Go's ``encoding/json`` decodes it, but failing closed on junk.

Go matches object keys to struct fields case-insensitively (an exact match first), ignores unknown
keys and reads ``null`` as "leave the zero value". We do the same so that tokens from Go peers
parse, and we keep nil vs empty so they re-marshal to the signed bytes. Where Go would merge or
silently coerce (duplicate keys, ``null`` inside a list, numbers that are not uint64, ``ucan``
tokens we cannot re-encode, unknown actions) we refuse with a one-line :class:`TokenError`: such
input never comes from an honest Go encoder.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from dms import gojson
from dms.did import DID
from dms.errors import DMSError, TokenError
from dms.ucan._token import Action, DMSToken, Token, TokenList

_ACTIONS = frozenset(a.value for a in Action)
_MAX_UINT64 = (1 << 64) - 1
_MAX_NESTING = 64


def parse_token_list(data: bytes | str) -> TokenList:
    """Parse a Go ``TokenList`` (``{"tok":[...]}``; ``{}`` or ``null`` is the empty list)."""
    return token_list_from_value(_loads(data), "token list")


def token_list_from_value(value: Any, what: str) -> TokenList:
    """Build a :class:`TokenList` from already-decoded JSON; ``what`` names it in errors."""
    if value is None:
        return TokenList()
    raw = _fields(value, ("tok",), what).get("tok")
    if raw is None:
        return TokenList()
    if type(raw) is not list:  # a decoded object is a list subclass (_Pairs)
        raise TokenError(f"invalid {what}: 'tok' must be an array")
    return TokenList(tuple(token_from_value(item) for item in raw))


def parse_tokens(data: bytes | str) -> TokenList:
    """Parse either a Go ``TokenList`` (``{"tok":[...]}``) or one ``Token`` (``{"dms":...}``).

    An object with a ``dms`` key (matched as Go matches keys) is a single token, anything else
    must be a token list. The JSON is decoded once; undecodable input is :class:`TokenJSONError`.
    """
    value = _loads(data)
    if isinstance(value, _Pairs) and any(_fold(key) == "dms" for key, _ in value):
        return TokenList((token_from_value(value),))
    return token_list_from_value(value, "token list")


def parse_token(data: bytes | str) -> Token:
    """Parse one Go ``Token`` (``{"dms":{...}}``)."""
    return token_from_value(_loads(data))


def token_from_value(value: Any, level: int = 0) -> Token:
    """Build a :class:`Token` from already-decoded JSON (pairs lists, see :func:`_loads`)."""
    if level > _MAX_NESTING:
        raise TokenError("invalid token: chain nested too deeply")
    fields = _fields(value, ("dms", "ucan"), "token")
    if fields.get("ucan") is not None:
        raise TokenError("invalid token: BYO UCAN tokens are not supported")
    dms = fields.get("dms")
    if dms is None:
        raise TokenError("invalid token: no 'dms' token")
    return Token(_dms_token(dms, level))


def did_from_value(value: Any, what: str) -> DID:
    """A Go ``did.DID`` (``{"uri":...}``; ``{}`` and ``null`` are the empty DID)."""
    if value is None:
        return DID()
    uri = _fields(value, ("uri",), what).get("uri")
    if uri is None:
        return DID()
    if not isinstance(uri, str):
        raise TokenError(f"invalid {what}: 'uri' must be a string")
    return DID(uri)


def loads(data: bytes | str) -> Any:
    """Decode JSON keeping objects as lists of pairs (so case-folded duplicates can be caught)."""
    return _loads(data)


def fields(value: Any, names: tuple[str, ...], what: str) -> dict[str, Any]:
    """Map a decoded object's keys onto Go field ``names`` (see the module doc)."""
    return _fields(value, names, what)


def _dms_token(value: Any, level: int) -> DMSToken:
    names = ("act", "iss", "sub", "aud", "topic", "cap", "nonce", "exp", "depth", "chain", "sig")
    f = _fields(value, names, "token")
    action = f.get("act")
    if action is None:
        action = ""
    if not isinstance(action, str) or action not in _ACTIONS:
        raise TokenError(f"invalid token: unknown action {action!r}")
    topic = _strings(f.get("topic"), "topic")
    chain = f.get("chain")
    return DMSToken(
        action=action,
        issuer=did_from_value(f.get("iss"), "token issuer"),
        subject=did_from_value(f.get("sub"), "token subject"),
        audience=did_from_value(f.get("aud"), "token audience"),
        topic=topic or (),
        capability=_strings(f.get("cap"), "cap"),
        nonce=_bytes(f.get("nonce"), "nonce"),
        expire=_uint64(f.get("exp"), "exp"),
        depth=_uint64(f.get("depth"), "depth"),
        chain=None if chain is None else token_from_value(chain, level + 1),
        signature=_bytes(f.get("sig"), "sig") or b"",
    )


class TokenJSONError(TokenError):
    """Token input that is not JSON at all; ``reason`` is the decoder's own message."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token JSON: {reason}")
        self.reason = reason


class _ConstantError(ValueError):
    """``NaN``/``Infinity``: valid for Python's decoder, not JSON, and never in a token."""


def _loads(data: bytes | str) -> Any:
    def reject_constant(name: str) -> Any:
        raise _ConstantError(f"invalid JSON value {name}")

    try:
        return json.loads(data, object_pairs_hook=_Pairs, parse_constant=reject_constant)
    except RecursionError:
        raise TokenJSONError("nested too deeply") from None
    except _ConstantError as exc:
        raise TokenError(f"invalid token JSON: {exc}") from None
    except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
        raise TokenJSONError(str(exc)) from None


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as decoded: its (key, value) pairs in order."""


def _fields(value: Any, names: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(value, _Pairs):
        raise TokenError(f"invalid {what}: expected a JSON object")
    folded = _folded(names)
    out: dict[str, Any] = {}
    for key, item in value:
        name = key if key in names else folded.get(_fold(key))
        if name is None:
            continue  # Go ignores unknown keys
        if name in out:
            raise TokenError(f"invalid {what}: duplicate key {key!r}")
        out[name] = item
    return out


@functools.cache
def _folded(names: tuple[str, ...]) -> dict[str, str]:
    """Folded field name -> field name, once per field set (every token parse needs it)."""
    return {_fold(n): n for n in names}


def _fold(key: str) -> str:
    # Go folds ASCII case plus the Kelvin sign and long s when matching keys to fields.
    return key.lower().replace("\u017f", "s")


def _strings(value: Any, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if type(value) is not list or not all(isinstance(v, str) for v in value):
        raise TokenError(f"invalid token: '{what}' must be an array of strings")
    return tuple(value)


def _bytes(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TokenError(f"invalid token: '{what}' must be a base64 string")
    try:
        return gojson.b64decode(value)
    except DMSError:
        raise TokenError(f"invalid token: '{what}' is not valid base64") from None


def _uint64(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_UINT64:
        raise TokenError(f"invalid token: '{what}' must be an unsigned 64-bit integer")
    return value
