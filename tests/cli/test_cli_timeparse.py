"""The CLI's --duration and --expiry parsers."""

from __future__ import annotations

import pytest

from dms.cli._timeparse import expiry_from_flags, parse_duration_ns, parse_expiry_ns
from dms.errors import InvalidInput

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", 90 * S),
        ("1h30m", 5400 * S),
        ("720h", 720 * 3600 * S),
        ("1.5h", 5400 * S),
        ("7d", 7 * 86400 * S),
        ("250ms", 250_000_000),
        ("3us", 3000),
        ("1m0.5s", 60 * S + S // 2),
    ],
)
def test_go_durations(text: str, expected: int) -> None:
    assert parse_duration_ns(text) == expected


@pytest.mark.parametrize("text", ["", "10", "h", "1y", "-5m", "0s", "5 m", "1h-2m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_duration_ns(text)


def test_iso_expiry_dates_are_utc_nanoseconds() -> None:
    assert parse_expiry_ns("2025-12-31") == 1767139200 * S  # the spec's example token exp
    assert parse_expiry_ns("2025-12-31T00:00:01Z") == 1767139201 * S
    assert parse_expiry_ns("2025-12-31T02:00:00+02:00") == 1767139200 * S
    with pytest.raises(InvalidInput, match="ISO date"):
        parse_expiry_ns("31/12/2025")


def test_expiry_flags_combination_rules() -> None:
    now = 1_700_000_000 * S
    assert expiry_from_flags(None, None, now_ns=now) == 0
    assert expiry_from_flags(None, "1h", now_ns=now) == now + 3600 * S
    assert expiry_from_flags("2030-01-01", None, now_ns=now) == parse_expiry_ns("2030-01-01")
    with pytest.raises(InvalidInput, match="not both"):
        expiry_from_flags("2030-01-01", "1h", now_ns=now)
    with pytest.raises(InvalidInput, match="past"):
        expiry_from_flags("2020-01-01", None, now_ns=now)
