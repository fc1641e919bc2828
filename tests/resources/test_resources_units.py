"""Human units: parse and format sizes and clocks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dms.errors import InvalidInput
from dms.resources import (
    GPU,
    format_clock,
    format_size,
    parse_clock,
    parse_gpu_list,
    parse_size,
    split_gpu_list,
)

GIB = 1024**3


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4", 4 * GIB),
        ("4GiB", 4 * GIB),
        ("4 gib", 4 * GIB),
        ("512MiB", 512 * 1024**2),
        ("2GB", 2 * 10**9),
        ("2G", 2 * 10**9),
        ("1.5GiB", 3 * GIB // 2),
        ("100B", 100),
        ("1TiB", 1024**4),
        (4, 4 * GIB),
        (0.5, GIB // 2),
    ],
)
def test_parse_size(text: str | float, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_default_unit_can_change() -> None:
    assert parse_size("20", default_unit="GB") == 20 * 10**9


@pytest.mark.parametrize(
    ("text", "hz"),
    [
        ("2.5GHz", 2.5e9),
        ("2400MHz", 2.4e9),
        ("2.4", 2.4e9),
        ("800 mhz", 8e8),
        (3, 3e9),
    ],
)
def test_parse_clock(text: str | float, hz: float) -> None:
    assert parse_clock(text) == pytest.approx(hz)


@pytest.mark.parametrize("bad", ["", "GiB", "-1", "4XB", "1e999", "four", "2.5 GHzz"])
def test_bad_sizes_raise(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_size(bad)


@pytest.mark.parametrize("bad", ["", "fast", "2.5GB", "-2GHz"])
def test_bad_clocks_raise(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_clock(bad)


def test_format_for_humans() -> None:
    assert format_size(4 * GIB) == "4 GiB"
    assert format_size(512 * 1024**2) == "512 MiB"
    assert format_size(3 * GIB // 2) == "1536 MiB"  # exact: parses back to the same bytes
    assert format_size(3 * GIB // 2 + 1) == "1.5 GiB"  # not a whole unit: rounded
    assert format_size(100) == "100 B"
    assert format_clock(2.5e9) == "2.5 GHz"
    assert format_clock(2.4e9) == "2.4 GHz"
    assert format_clock(8e8) == "800 MHz"


@given(st.integers(min_value=0, max_value=2**40), st.sampled_from([1024, 1024**2, 1024**3]))
def test_whole_binary_units_round_trip_exactly(count: int, unit: int) -> None:
    size = count * unit
    assert parse_size(format_size(size)) == size


@given(st.integers(min_value=0, max_value=2**60))
def test_any_size_round_trips_within_half_a_percent(size: int) -> None:
    assert abs(parse_size(format_size(size)) - size) <= size * 0.005 + 1


@given(st.integers(min_value=1, max_value=10**6))
def test_clock_round_trips_at_mhz_precision(mhz: int) -> None:
    hz = mhz * 1e6
    assert parse_clock(format_clock(hz)) == pytest.approx(hz, rel=0.005)


def test_gpu_list_keeps_the_vram_as_typed_and_parses_it_in_gib() -> None:
    assert list(split_gpu_list(" 0:4, 1 : 512MiB ,,")) == [(0, "4"), (1, "512MiB")]
    assert parse_gpu_list("0:4,1:512MiB") == (
        GPU(index=0, vram=4 * GIB),
        GPU(index=1, vram=512 * 1024**2),
    )
    assert parse_gpu_list("") == ()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("0", "invalid GPU '0': expected index:vram, e.g. 0:4"),
        ("x:4", "invalid GPU 'x:4': expected index:vram"),
        ("-1:4", "invalid GPU '-1:4'"),
        ("0:lots", "invalid size"),
        ("0:lots,x", "invalid size"),  # the first bad part is the one reported
    ],
)
def test_bad_gpu_lists_raise(text: str, error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        parse_gpu_list(text)
