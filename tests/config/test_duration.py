"""The shared Go duration splitter used by the config and the CLI."""

from __future__ import annotations

import pytest

from dms.config._duration import GO_DURATION_UNITS_NS, split_go_duration


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("90s", [("90", "s")]),
        ("1h30m", [("1", "h"), ("30", "m")]),
        ("5ms", [("5", "ms")]),
        ("1.5m2.s", [("1.5", "m"), ("2.", "s")]),
        (".5h", [(".5", "h")]),
        ("3µs4μs", [("3", "µs"), ("4", "μs")]),
    ],
)
def test_splits_go_durations(text: str, parts: list[tuple[str, str]]) -> None:
    assert split_go_duration(text) == parts


@pytest.mark.parametrize("text", ["", "5", "h", "1h 30m", " 1h", "-1h", "1x", "7d", "1h!"])
def test_refuses_what_go_refuses(text: str) -> None:
    assert split_go_duration(text) is None


def test_units_are_the_callers() -> None:
    assert split_go_duration("7d", {*GO_DURATION_UNITS_NS, "d"}) == [("7", "d")]
    assert split_go_duration("3μs", ("ns", "µs", "s")) is None
