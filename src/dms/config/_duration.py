"""Go duration syntax (``time.ParseDuration``): ``"90s"``, ``"1h30m"``, ``"1.5ms"``.

The one reader of that syntax, shared by the config (``time.Duration`` fields given as strings)
and the CLI's ``--duration`` flag. It only splits the text into number/unit parts; each caller
applies its own unit table, scale and error messages. Standard library only, so any layer may
import it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

__all__ = ["GO_DURATION_UNITS_NS", "split_go_duration"]

# Go's unit table, in nanoseconds (both the micro sign U+00B5 and Greek mu U+03BC spell µs).
GO_DURATION_UNITS_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}


@functools.lru_cache(maxsize=8)
def _part_pattern(units: tuple[str, ...]) -> re.Pattern[str]:
    # Longer units first, so "5ms" reads as milliseconds, not 5 minutes followed by "s".
    alternatives = "|".join(re.escape(u) for u in sorted(units, key=lambda u: (-len(u), u)))
    return re.compile(rf"(\d+(?:\.\d*)?|\.\d+)({alternatives})")


def split_go_duration(
    text: str, units: Iterable[str] = GO_DURATION_UNITS_NS
) -> list[tuple[str, str]] | None:
    """Split ``text`` into its ``(number, unit)`` parts, or ``None`` if it is not a duration.

    ``text`` must be one or more number+unit parts with nothing around or between them (strip
    it first); ``units`` are the unit names allowed (Go's by default). No sign is accepted.
    """
    pattern = _part_pattern(tuple(sorted(set(units))))
    parts: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = pattern.match(text, pos)
        if match is None:
            return None
        parts.append((match.group(1), match.group(2)))
        pos = match.end()
    return parts or None
