"""Byte-exact reproduction of Go's ``encoding/json`` Marshal output.

Tokens and envelopes are signed over ``json.Marshal`` bytes, and the Go verifier re-marshals what
it parsed, so our bytes must equal Go's to the byte. The value model:

* :class:`Struct` – a Go struct: keys are emitted in insertion order (callers apply ``omitempty``
  by leaving a key out);
* ``dict`` – a Go map: keys sorted by their UTF-8 bytes, as Go does;
* ``bytes`` – a Go ``[]byte``: standard, padded base64 in a string;
* ``None`` – ``null`` (a nil slice, map or pointer);
* ``bool``, ``int`` (any size: Go's uint64 nanoseconds), ``str``;
* ``float`` – a Go ``float64``; :class:`Float32` wraps a Go ``float32``;
* :class:`Raw` – a ``json.RawMessage``, compacted on output;
* ``list`` / ``tuple`` – a Go slice or array;
* any object with a ``__gojson__()`` method returning one of the above.

Strings are escaped the way ``json.Marshal`` does by default (``SetEscapeHTML(true)``): ``<``,
``>``, ``&``, U+2028 and U+2029 become ``\\u003c`` etc., invalid code points become ``\\ufffd``.
Go 1.22 started writing ``\\b`` and ``\\f`` as short escapes; older Go writes ``\\u0008`` and
``\\u000c``. The Go DMS pins toolchain go1.21.7 (its ``go.mod``), so the older form is the default;
:data:`SHORT_BF_ESCAPES` switches to the newer one should a Go DMS release move past 1.21.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from dms.errors import InvalidInput

#: Emit ``\b`` and ``\f`` as Go >= 1.22 does (False: as Go <= 1.21, the Go DMS's toolchain).
SHORT_BF_ESCAPES = False

_HEX = "0123456789abcdef"


class Struct(dict[str, Any]):
    """A Go struct value: its keys are written in insertion order, not sorted."""


class Float32(float):
    """A Go ``float32``: formatted with the shortest digits that round-trip in 32 bits."""


class Raw:
    """A ``json.RawMessage``: already-encoded JSON inserted (compacted) as is."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def marshal(value: Any, *, short_bf_escapes: bool | None = None) -> bytes:
    """Return the bytes Go's ``json.Marshal`` produces for ``value`` (see the module doc)."""
    short = SHORT_BF_ESCAPES if short_bf_escapes is None else short_bf_escapes
    out: list[str] = []
    _encode(value, out, short)
    return "".join(out).encode("utf-8")


def string(text: str, *, short_bf_escapes: bool | None = None) -> bytes:
    """Go's ``json.Marshal`` of one string (for hand-built encoders of hot types)."""
    if _PLAIN.fullmatch(text):
        return b'"' + text.encode() + b'"'
    out: list[str] = []
    _encode_string(text, out, SHORT_BF_ESCAPES if short_bf_escapes is None else short_bf_escapes)
    return "".join(out).encode()


def b64encode(data: bytes) -> str:
    """Go's encoding of a ``[]byte``: standard alphabet, padded."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str | None) -> bytes:
    """Decode a Go ``[]byte`` JSON string (standard, padded base64; ``None``/``""`` → b"").

    Go's decoder ignores ``\\r`` and ``\\n`` inside the string and rejects anything else that is
    not strict base64, so we do the same.
    """
    if not text:
        return b""
    cleaned = text.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"invalid base64 data: {exc}") from None


def format_float(value: float, bits: int = 64) -> str:
    """Format a float as Go's encoding/json does (``'f'`` or cleaned-up ``'e'``, shortest)."""
    if math.isnan(value) or math.isinf(value):
        raise InvalidInput(f"json: unsupported value: {value}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, exponent = _shortest_digits(value, bits)
    magnitude = abs(value) if bits == 64 else abs(_to_float32(value))
    sign = "-" if value < 0 else ""
    if magnitude < 1e-6 or magnitude >= 1e21:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp10 = exponent + len(digits) - 1
        exp_text = f"{abs(exp10):02d}"
        if exp10 < 0 and exp_text.startswith("0"):
            exp_text = exp_text[1:]  # Go cleans e-07 to e-7 (only for negative exponents)
        return f"{sign}{mantissa}e{'-' if exp10 < 0 else '+'}{exp_text}"
    point = len(digits) + exponent  # position of the decimal point within digits
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _to_float32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def _shortest_digits(value: float, bits: int) -> tuple[str, int]:
    """Shortest decimal digits d and exponent e with float(d * 10**e) == value."""
    if bits == 64:
        text = repr(abs(value))
    else:
        target = _to_float32(abs(value))
        text = ""
        for precision in range(1, 18):
            text = f"{target:.{precision}g}"
            if _to_float32(float(text)) == target:
                break
    _, digit_tuple, exponent = Decimal(text).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent = int(exponent) + (len(digit_tuple) - len(digits))
    return digits or "0", exponent


def _encode(value: Any, out: list[str], short: bool) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        _encode_string(value, out, short)
    elif isinstance(value, Float32):
        out.append(format_float(float(value), 32))
    elif isinstance(value, float):
        out.append(format_float(value, 64))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, bytes | bytearray | memoryview):
        out.append('"' + b64encode(bytes(value)) + '"')
    elif isinstance(value, Raw):
        out.append(_compact_raw(value.data, short))
    elif isinstance(value, Struct):
        _encode_object(list(value.items()), out, short)
    elif isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
        items.sort(key=lambda kv: kv[0].encode("utf-8", "surrogatepass"))
        _encode_object(items, out, short)
    elif isinstance(value, Sequence):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, short)
        out.append("]")
    elif hasattr(value, "__gojson__"):
        _encode(value.__gojson__(), out, short)
    else:
        raise InvalidInput(f"json: unsupported type: {type(value).__name__}")


def _encode_object(items: list[tuple[str, Any]], out: list[str], short: bool) -> None:
    out.append("{")
    for index, (key, item) in enumerate(items):
        if index:
            out.append(",")
        _encode_string(key, out, short)
        out.append(":")
        _encode(item, out, short)
    out.append("}")


# Strings with nothing to escape (base64 blobs, DIDs, paths: nearly all) are copied whole.
_PLAIN = re.compile(r'[^"\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]*')


def _encode_string(text: str, out: list[str], short: bool) -> None:
    if _PLAIN.fullmatch(text):
        out.append('"' + text + '"')
        return
    out.append('"')
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif code < 0x20:
            if char == "\n":
                out.append("\\n")
            elif char == "\r":
                out.append("\\r")
            elif char == "\t":
                out.append("\\t")
            elif short and char == "\b":
                out.append("\\b")
            elif short and char == "\f":
                out.append("\\f")
            else:
                out.append("\\u00" + _HEX[code >> 4] + _HEX[code & 0xF])
        elif char in "<>&":
            out.append("\\u00" + _HEX[code >> 4] + _HEX[code & 0xF])
        elif code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")  # a lone surrogate is invalid UTF-8 to Go
        else:
            out.append(char)
    out.append('"')


def _compact_raw(data: bytes, short: bool) -> str:
    """Compact a RawMessage as Go does: drop insignificant whitespace, escape HTML characters."""
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"json: invalid RawMessage: {exc}") from None
    del parsed  # validated only; re-encode the text itself so number spellings are kept
    out: list[str] = []
    in_string = False
    escaped = False
    for char in data.decode("utf-8"):
        if in_string:
            if escaped:
                escaped = False
                out.append(char)
            elif char == "\\":
                escaped = True
                out.append(char)
            elif char == '"':
                in_string = False
                out.append(char)
            elif char in "<>&":
                out.append("\\u00" + _HEX[ord(char) >> 4] + _HEX[ord(char) & 0xF])
            elif char in "\u2028\u2029":
                out.append(f"\\u{ord(char):04x}")
            else:
                out.append(char)
        elif char == '"':
            in_string = True
            out.append(char)
        elif char not in " \t\r\n":
            out.append(char)
    del short
    return "".join(out)
