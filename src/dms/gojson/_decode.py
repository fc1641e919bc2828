"""Decoding Go-style JSON the way Go's ``encoding/json`` fills a struct: the one rule set.

Every decoder of peer JSON (envelopes, tokens, every payload) goes through these functions, so
there is one answer to "which field does this key fill?":

* **Field matching** (:class:`Fields`): a key fills the field whose name it equals exactly; failing
  that, the first field (in declaration order) whose name it equals under Go's case folding
  (:func:`dms.gojson.fold`: ``NAME``, ``Name``, ``ſig`` for ``sig``, ``K`` for ``k``). Keys
  that match no field are ignored, as Go ignores them.
* **Repeated keys** (two keys that fill the same field, e.g. ``"be"`` and ``"Be"``):

  - in **signed objects** (envelopes, handles inside them, tokens) they are **refused**. Go
    decodes both, one into the other, and a reader with other rules (last wins, first wins)
    would see a different message under the same signature; no honest encoder writes them.
  - in **other payloads** they are decoded as Go does, each into what the one before filled:
    the **last one wins**; two objects merge key by key (a key inside the later object wins);
    a later ``null`` leaves the earlier value (as Go does for a string, number, bool or struct).
    One difference is accepted: Go sets a slice, map or pointer field to nil on that ``null``,
    and we keep the earlier value there too (the rule would need each field's Go type; no Go
    encoder writes a key twice).

* **Values**: ``null`` is the field's zero value (callers give the default); a value of the wrong
  JSON type is an error with a one-line message naming the field's path; ``NaN`` / ``Infinity``
  and invalid UTF-8 are refused; a ``\\uXXXX`` escape of an unpaired surrogate becomes U+FFFD in
  a string, as in Go; a ``uint64`` is a plain non-negative integer below 2**64 (``1.0``, ``1e3``
  and ``-0`` are refused, as ``strconv.ParseUint`` refuses them).

:func:`loads` keeps objects as :class:`Object` (pairs in source order, duplicates included) so
these rules can be applied; every function also accepts plain ``json.loads`` output (dicts),
which is what a web framework hands over, where Python has already kept the last duplicate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from dms.errors import DMSError, InvalidInput
from dms.gojson._encode import b64decode
from dms.gojson._fold import fold

_UINT64_LIMIT = 1 << 64
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

ErrorType = type[DMSError]


class Object(list[tuple[str, Any]]):
    """A decoded JSON object: its (key, value) pairs in source order, duplicates kept."""


class NotJSON(InvalidInput):
    """Input that is not JSON text at all; ``reason`` is the parser's own message."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"invalid {what} JSON: {reason}")
        self.reason = reason


class _NegativeZero(int):
    """``-0`` as written: an int (Go's ``ParseInt`` takes it) that no ``uint64`` accepts."""


#: What :func:`loads` returns for the number ``-0``.
NEGATIVE_ZERO = _NegativeZero(0)


def _parse_int(text: str) -> int:
    return NEGATIVE_ZERO if text == "-0" else int(text)


class _Constant(ValueError):
    pass


def _reject_constant(name: str) -> NoReturn:
    raise _Constant(f"invalid JSON value {name}")


def loads(data: bytes | bytearray | memoryview | str, what: str) -> Any:
    """Parse strict JSON into :class:`Object` / list / str / int / float / bool / ``None``.

    Text that does not parse is :class:`NotJSON`; ``NaN``/``Infinity`` (Python accepts them, JSON
    does not) are :class:`~dms.errors.InvalidInput`. ``what`` names the input in the message.
    """
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise NotJSON(what, "not UTF-8 text") from None
    try:
        return json.loads(
            text,
            object_pairs_hook=Object,
            parse_int=_parse_int,
            parse_constant=_reject_constant,
        )
    except _Constant as exc:
        raise InvalidInput(f"invalid {what} JSON: {exc}") from None
    except RecursionError:
        raise NotJSON(what, "nested too deeply") from None
    except ValueError as exc:
        raise NotJSON(what, str(exc)) from None


def kind(value: Any) -> str:
    """The JSON type name of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, Object | Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _wrong_type(value: Any, path: str, expected: str, error: ErrorType) -> NoReturn:
    raise error(f"invalid {path}: expected {expected}, got {kind(value)}")


def pairs(
    value: Any, path: str, *, error: ErrorType = InvalidInput
) -> list[tuple[str, Any]] | None:
    """The (key, value) pairs of a JSON object; ``None`` for ``null``; anything else is refused."""
    if value is None:
        return None
    if isinstance(value, Object):
        return value
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    _wrong_type(value, path, "a JSON object", error)


class Fields:
    """The JSON names of a Go struct's fields, in declaration order, matched as Go matches keys.

    Build one per struct type (at import time); :meth:`match` is what Go's decoder does for
    each key: exact name first, then the first name equal under case folding.
    """

    __slots__ = ("_exact", "_folded", "names")

    def __init__(self, *names: str) -> None:
        self.names = names
        self._exact = frozenset(names)
        self._folded: dict[str, str] = {}
        for name in names:
            self._folded.setdefault(fold(name), name)

    def match(self, key: str) -> str | None:
        """The field ``key`` fills, or ``None`` when Go would ignore the key."""
        if key in self._exact:
            return key
        return self._folded.get(fold(key))


def decode_struct(
    value: Any,
    fields: Fields,
    path: str,
    *,
    signed: bool,
    error: ErrorType = InvalidInput,
) -> dict[str, Any]:
    """Field name -> the JSON value that fills it (fields with no key are absent).

    ``null`` is the empty struct. ``signed`` refuses a field filled twice; otherwise the last
    value wins and objects merge (see the module doc).
    """
    out: dict[str, Any] = {}
    items = value if type(value) is Object else pairs(value, path, error=error) or ()
    for key, item in items:
        name = fields.match(key)
        if name is None:
            continue
        if name in out:
            if signed:
                raise error(f"invalid {path}: duplicate key {key!r}")
            out[name] = _merge(out[name], item)
        else:
            out[name] = item
    return out


def _merge(old: Any, new: Any) -> Any:
    """A repeated key, decoded as Go does into what the first one filled (see the module doc)."""
    if new is None:
        return old
    if isinstance(old, Object) or isinstance(new, Object):
        if isinstance(old, Object | Mapping) and isinstance(new, Object | Mapping):
            return Object([*(pairs(old, "") or ()), *(pairs(new, "") or ())])
        return new
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        merged = dict(old)
        for key, item in new.items():
            merged.pop(key, None)  # re-inserted at the end: a later key stays later
            merged[key] = item
        return merged
    return new


def folded(value: Any, path: str, *, error: ErrorType = InvalidInput) -> dict[str, Any]:
    """A non-signed object keyed by :func:`fold` of its keys (``null`` is ``{}``).

    ``folded(v, p).get(fold(name))`` is the value Go puts in field ``name`` whenever no two
    fields of the struct fold alike (true of every DMS struct); repeated keys follow the
    non-signed rule. Used by decoders that read fields one at a time.
    """
    out: dict[str, Any] = {}
    for key, item in pairs(value, path, error=error) or ():
        name = fold(key)
        out[name] = _merge(out[name], item) if name in out else item
    return out


def field(value: Any, name: str, *, error: ErrorType = InvalidInput) -> Any:
    """The value Go puts in the field ``name`` of a non-signed object (``None`` when absent)."""
    return folded(value, name, error=error).get(fold(name))


# -- typed values ---------------------------------------------------------------------------


def str_value(value: Any, path: str, default: str = "", *, error: ErrorType = InvalidInput) -> str:
    """A Go ``string``: ``null`` is ``default``; an unpaired surrogate becomes U+FFFD."""
    if value is None:
        return default
    if isinstance(value, str):
        return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)
    _wrong_type(value, path, "a string", error)


def uint64_value(
    value: Any, path: str, default: int = 0, *, error: ErrorType = InvalidInput
) -> int:
    """A Go ``uint64``: a plain integer in [0, 2**64); ``null`` is ``default``."""
    if value is None:
        return default
    if type(value) is not int:
        if isinstance(value, float | _NegativeZero):
            raise error(f"invalid {path}: {value!r} is not an unsigned integer")
        _wrong_type(value, path, "an unsigned integer", error)
    if value < 0:
        raise error(f"invalid {path}: {value} is not an unsigned integer")
    if value >= _UINT64_LIMIT:
        raise error(f"invalid {path}: {value} overflows uint64")
    return value


def bytes_value(value: Any, path: str, *, error: ErrorType = InvalidInput) -> bytes | None:
    """A Go ``[]byte``: padded std base64 text; ``null`` is a nil slice (``None``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        _wrong_type(value, path, "a base64 string", error)
    try:
        return b64decode(value)
    except InvalidInput as exc:
        raise error(f"invalid {path}: {exc}") from None


def strings_value(
    value: Any, path: str, *, error: ErrorType = InvalidInput
) -> tuple[str, ...] | None:
    """A Go ``[]string``: ``null`` is a nil slice (``None``); a ``null`` item is refused."""
    if value is None:
        return None
    if type(value) is not list or not all(isinstance(item, str) for item in value):
        _wrong_type(value, path, "an array of strings", error)
    return tuple(_LONE_SURROGATE.sub("\ufffd", item) for item in value)
