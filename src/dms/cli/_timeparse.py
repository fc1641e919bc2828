"""Parsing of the CLI's time flags: Go durations (``--duration``) and ISO dates (``--expiry``).

Token expiries are Unix nanoseconds, so both parsers return integers in nanoseconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from dms.config import GO_DURATION_UNITS_NS, split_go_duration
from dms.errors import InvalidInput

# Go's units plus "d": not Go's, but what users type for token lifetimes.
_UNIT_NS = {**GO_DURATION_UNITS_NS, "d": 86400 * 1_000_000_000}


def parse_duration_ns(text: str) -> int:
    """Parse a Go ``time.ParseDuration`` string (``90s``, ``1h30m``, ``720h``; also ``7d``).

    Negative and zero durations are refused: a token that is already expired is never useful.
    """
    spec = text.strip()
    if not spec:
        raise InvalidInput("empty duration")
    parts = split_go_duration(spec, _UNIT_NS)
    if parts is None:
        raise InvalidInput(
            f"invalid duration {text!r}: expected a number and unit like 30m, 24h, 7d"
        )
    total = 0.0
    for number, unit in parts:
        total += float(number) * _UNIT_NS[unit]
    if total <= 0:
        raise InvalidInput(f"invalid duration {text!r}: must be positive")
    return int(total)


def parse_expiry_ns(text: str) -> int:
    """Parse an ISO-8601 date or date-time (``2025-12-31``, ``2025-12-31T12:00:00Z``).

    A value without a zone is read as UTC so the same command means the same thing everywhere.
    """
    spec = text.strip()
    try:
        moment = datetime.fromisoformat(spec.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"invalid expiry {text!r}: expected an ISO date like 2025-12-31 or 2025-12-31T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    return int(seconds) * 1_000_000_000 + moment.microsecond * 1000


def expiry_from_flags(
    expiry: str | None, duration: str | None, *, now_ns: int | None = None
) -> int:
    """Resolve ``--expiry`` / ``--duration`` into absolute Unix nanoseconds (0 = not given).

    Both at once is ambiguous and refused; an expiry in the past is refused.
    """
    if expiry and duration:
        raise InvalidInput("give either --expiry or --duration, not both")
    now = time.time_ns() if now_ns is None else now_ns
    if duration:
        return now + parse_duration_ns(duration)
    if expiry:
        value = parse_expiry_ns(expiry)
        if value <= now:
            raise InvalidInput(f"expiry {expiry!r} is in the past")
        return value
    return 0
