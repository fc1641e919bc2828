"""Human units for sizes and clock speeds, in and out.

Why: users type ``--ram 4`` or ``--ram 512MiB`` and the Go CLI and ensemble YAML treat a bare
number as GiB for memory/disk and GHz for clocks, while the wire format is plain bytes and Hz.
Decimal prefixes (``GB``) mean powers of 1000, as Go's ``ConvertGBToBytes`` (``1e9``) does;
binary ones (``GiB``) powers of 1024. The ``index:vram,...`` GPU list (``--gpus 0:4,1:8``) is
parsed here too, as its VRAM is such a size. Everything here is pure, so it is property-tested.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from dms.errors import InvalidInput
from dms.resources._types import GPU

#: size suffix (lower case, without a trailing ``b``) → bytes per unit
_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "p": 1000**5,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
    "pi": 1024**5,
}

_CLOCK_UNITS: dict[str, float] = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}

_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_SIZE_RE = re.compile(rf"\s*(?P<num>{_NUMBER})\s*(?P<unit>[a-zA-Z]*)\s*")
_CLOCK_RE = _SIZE_RE

#: binary units used when formatting, largest first
_FORMAT_SIZES = (
    ("PiB", 1024**5),
    ("TiB", 1024**4),
    ("GiB", 1024**3),
    ("MiB", 1024**2),
    ("KiB", 1024),
)


def _size_factor(unit: str) -> int | None:
    u = unit.lower()
    if u in ("b", ""):
        return 1
    if u.endswith("b"):
        u = u[:-1]
    return _SIZE_UNITS.get(u)


def parse_size(text: str | int | float, default_unit: str = "GiB") -> int:
    """Bytes from ``"4"``, ``"4GiB"``, ``"512MiB"``, ``"2GB"`` (2e9) or a number.

    A bare number is in ``default_unit`` (GiB, as ``nunet ... onboard --ram 4`` means 4 GiB).
    Fractions are allowed (``"1.5GiB"``); the result is rounded to whole bytes.
    """
    if isinstance(text, bool):
        raise InvalidInput(f"invalid size: {text!r}")
    if isinstance(text, int | float):
        value, unit = float(text), default_unit
    else:
        match = _SIZE_RE.fullmatch(text)
        if match is None:
            raise InvalidInput(f"invalid size: {text!r} (expected e.g. 4, 4GiB, 512MiB, 2GB)")
        value, unit = float(match.group("num")), match.group("unit") or default_unit
    factor = _size_factor(unit)
    if factor is None:
        raise InvalidInput(f"invalid size unit {unit!r} in {text!r}")
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"invalid size: {text!r} (must be a non-negative number)")
    return round(value * factor)


def split_gpu_list(text: str) -> Iterator[tuple[int, str]]:
    """``"0:4, 1:512MiB"`` → ``(0, "4")``, ``(1, "512MiB")``: each GPU's index and VRAM as typed.

    Lazy, so a caller checking each GPU as it comes reports the first bad part. Empty parts are
    skipped; a part that is not ``index:vram`` raises :class:`InvalidInput` naming it.
    """
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        index, sep, vram = part.partition(":")
        if not sep or not index.strip().isdigit():
            raise InvalidInput(f"invalid GPU {part!r}: expected index:vram, e.g. 0:4")
        yield int(index), vram.strip()


def parse_gpu_list(text: str) -> tuple[GPU, ...]:
    """``"0:4,1:8"`` → GPUs 0 and 1 with 4 and 8 GiB of VRAM (units like ``512MiB`` allowed)."""
    return tuple(GPU(index=index, vram=parse_size(vram)) for index, vram in split_gpu_list(text))


def parse_clock(text: str | int | float, default_unit: str = "GHz") -> float:
    """Hz from ``"2.5GHz"``, ``"2400MHz"``, ``"2.4"`` (GHz by default) or a number."""
    if isinstance(text, bool):
        raise InvalidInput(f"invalid clock speed: {text!r}")
    if isinstance(text, int | float):
        value, unit = float(text), default_unit
    else:
        match = _CLOCK_RE.fullmatch(text)
        if match is None:
            raise InvalidInput(f"invalid clock speed: {text!r} (expected e.g. 2.5GHz, 2400MHz)")
        value, unit = float(match.group("num")), match.group("unit") or default_unit
    factor = _CLOCK_UNITS.get(unit.lower())
    if factor is None:
        raise InvalidInput(f"invalid clock unit {unit!r} in {text!r}")
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"invalid clock speed: {text!r} (must be a non-negative number)")
    return value * factor


def _trim(number: float) -> str:
    text = f"{number:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def format_size(size: int) -> str:
    """``"4 GiB"``, ``"512 MiB"``, ``"1.5 GiB"`` or ``"100 B"`` for humans.

    Exact when ``size`` is a whole number of some binary unit (then it parses back to the same
    bytes); otherwise rounded to two decimals of the largest unit that fits.
    """
    if size < 0:
        return "-" + format_size(-size)
    for name, factor in _FORMAT_SIZES:
        if size >= factor and size % factor == 0:
            return f"{size // factor} {name}"
    for name, factor in _FORMAT_SIZES:
        if size >= factor:
            return f"{_trim(size / factor)} {name}"
    return f"{size} B"


def format_clock(hz: float) -> str:
    """``"2.5 GHz"``, ``"800 MHz"`` for humans (two decimals at most)."""
    for name, factor in (("GHz", 1e9), ("MHz", 1e6), ("kHz", 1e3)):
        if hz >= factor:
            return f"{_trim(hz / factor)} {name}"
    return f"{_trim(hz)} Hz"
