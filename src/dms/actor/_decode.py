"""Go-like, type-strict decoding of JSON into the actor wire structs.

The Go verifier re-marshals the envelope *it parsed*, so to accept exactly what Go accepts (and to
sign what Go will check) we decode the way ``encoding/json`` does into a struct:

* keys match field names case-insensitively (Go folds ASCII case and lets ``ſ``/``K`` (Kelvin)
  stand for ``s``/``k``); unknown keys are ignored;
* a repeated key is decoded again *into* the current value, so a repeated object merges field by
  field and a repeated scalar replaces;
* ``null`` leaves a string, number or struct unchanged and sets a ``[]byte`` to nil;
* a value of the wrong JSON type is an error (Go reports an ``UnmarshalTypeError``);
* a ``\\uXXXX`` escape of an unpaired surrogate becomes U+FFFD, as in Go;
* ``uint64`` accepts only plain non-negative integers below 2**64 (``1.0``, ``1e3`` and ``-0``
  are refused, as ``strconv.ParseUint`` refuses them).

Deliberate differences, all on the strict side: invalid UTF-8, ``[]byte`` written as an array of
numbers and a top-level ``null`` are refused (Go replaces the first, accepts the second and
treats the third as a no-op; no DMS sends any of them).

Objects are kept as :class:`Object` (ordered pairs, duplicates included) and numbers as
:class:`Number` (their source text) so these rules can be applied; the same functions also accept
the output of a plain ``json.loads`` (dicts, ints), which is what a web framework hands over.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any, NoReturn

from dms import gojson
from dms.errors import InvalidInput

_UINT64_LIMIT = 1 << 64
# A ``\ud800`` escape without its pair: Go's decoder turns it into U+FFFD, so we do too.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

_FOLD = {ord(c): ord(c.lower()) for c in string.ascii_uppercase}
_FOLD[0x017F] = ord("s")  # LATIN SMALL LETTER LONG S folds to s in Go
_FOLD[0x212A] = ord("k")  # KELVIN SIGN folds to k in Go


class Object(list[tuple[str, Any]]):
    """A decoded JSON object: its (key, value) pairs in source order, duplicates kept."""


class Number:
    """A decoded JSON number, kept as its source text so integer rules can be checked."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Number({self.text!r})"


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes | bytearray | memoryview | str, what: str) -> Any:
    """Parse ``data`` as strict JSON into :class:`Object` / :class:`Number` / str / list..."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"invalid {what}: not UTF-8 text") from None
    try:
        return json.loads(
            text,
            object_pairs_hook=Object,
            parse_int=Number,
            parse_float=Number,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"invalid {what} JSON: {exc}") from None


def fold(key: str) -> str:
    """The key as Go's case-insensitive field matching sees it."""
    return key.translate(_FOLD)


def kind(value: Any) -> str:
    """The JSON type name of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Number | int | float):
        return "number"
    if isinstance(value, Object | dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _wrong_type(value: Any, path: str, expected: str) -> NoReturn:
    raise InvalidInput(f"invalid {path}: expected {expected}, got {kind(value)}")


def members(value: Any, path: str) -> list[tuple[str, Any]] | None:
    """The pairs of a JSON object; ``None`` for ``null``; anything else is refused."""
    if value is None:
        return None
    if isinstance(value, Object):
        return list(value)
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    _wrong_type(value, path, "an object")


def string_field(value: Any, path: str, current: str) -> str:
    """A Go ``string`` field: ``null`` keeps ``current``."""
    if value is None:
        return current
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    _wrong_type(value, path, "a string")


def uint64_field(value: Any, path: str, current: int) -> int:
    """A Go ``uint64`` field: a plain integer in [0, 2**64); ``null`` keeps ``current``."""
    if value is None:
        return current
    if isinstance(value, Number):
        text = value.text
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float):
        text = repr(value)
    else:
        _wrong_type(value, path, "an unsigned integer")
    if not (text.isascii() and text.isdigit()):
        raise InvalidInput(f"invalid {path}: {text} is not an unsigned integer")
    number = int(text)
    if number >= _UINT64_LIMIT:
        raise InvalidInput(f"invalid {path}: {text} overflows uint64")
    return number


def bytes_field(value: Any, path: str) -> bytes | None:
    """A Go ``[]byte`` field: padded std base64; ``null`` is a nil slice (``None``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        _wrong_type(value, path, "a base64 string")
    try:
        return gojson.b64decode(value)
    except InvalidInput as exc:
        raise InvalidInput(f"invalid {path}: {exc}") from None
