"""dms.gojson against Go's own encoding/json (Debian golang-go), byte for byte."""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dms import gojson
from tests.gocompat.goprog import run_lines

SPECIAL_CHARS = [
    0,
    1,
    7,
    8,
    9,
    10,
    12,
    13,
    27,
    31,
    32,
    34,
    38,
    39,
    47,
    60,
    62,
    92,
    127,
    128,
    255,
    0x2027,
    0x2028,
    0x2029,
    0xFEFF,
    0xFFFD,
    0x1F600,
    0x10FFFF,
    0xE9,
    0x4E2D,
]


def _numbers_to_float(value: Any) -> Any:
    """Go decodes every JSON number into float64; mirror that before encoding."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_numbers_to_float(v) for v in value]
    return {k: _numbers_to_float(v) for k, v in value.items()}


def _random_string(rng: random.Random) -> str:
    chars = []
    for _ in range(rng.randint(0, 12)):
        roll = rng.random()
        if roll < 0.4:
            chars.append(chr(rng.choice(SPECIAL_CHARS)))
        elif roll < 0.8:
            chars.append(chr(rng.randint(32, 126)))
        else:
            code = rng.randint(0x80, 0x10FFFF)
            chars.append(chr(code if not 0xD800 <= code <= 0xDFFF else 0xE000))
    return "".join(chars)


def _random_float(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.3:
        return float(rng.randint(-(10**6), 10**6))
    if kind < 0.6:
        return rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
    bits = rng.getrandbits(64)
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value if math.isfinite(value) else 1.5


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice(
            [None, True, False, _random_string(rng), _random_float(rng), _random_float(rng)]
        )
    if roll < 0.75:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_random_string(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_random_values_match_go(go_program: Callable[[str], Path]) -> None:
    rng = random.Random(20261123)
    values = [_random_value(rng) for _ in range(600)]
    lines = [json.dumps(v, ensure_ascii=True) for v in values]
    go_out = run_lines(go_program("gojson"), "any", lines)
    for value, expected in zip(values, go_out, strict=True):
        ours = gojson.marshal(_numbers_to_float(value)).decode()
        assert ours == expected, f"value {value!r}"


def test_every_escape_class_matches_go(go_program: Callable[[str], Path]) -> None:
    points = [*range(0, 0x80), 0x2028, 0x2029, 0xFFFD, 0x1F600, -1]
    lines = [json.dumps([p]) for p in points]
    go_out = run_lines(go_program("gojson"), "str", lines)
    for point, expected in zip(points, go_out, strict=True):
        text = "\udcff" if point < 0 else chr(point)  # a lone surrogate stands for invalid UTF-8
        assert gojson.marshal(text).decode() == expected, f"code point {point}"


def test_float64_edges_match_go(go_program: Callable[[str], Path]) -> None:
    edges = [
        0.0,
        -0.0,
        1e-6,
        9.999999e-7,
        1e-7,
        1e20,
        1e21,
        123456789012345680000.0,
        0.1,
        1 / 3,
        5e-324,
        1.7976931348623157e308,
        2.5e-8,
        1e100,
        -1e-100,
        3.0,
        100.5,
        4.0e9,
        2.4e9,
    ]
    rng = random.Random(7)
    edges += [_random_float(rng) for _ in range(400)]
    lines = [json.dumps([e]) for e in edges]
    go_out = run_lines(go_program("gojson"), "f64", lines)
    for value, expected in zip(edges, go_out, strict=True):
        assert gojson.marshal([value]).decode() == expected, f"float64 {value!r}"


def test_float32_matches_go(go_program: Callable[[str], Path]) -> None:
    rng = random.Random(32)
    values = [0.5, 0.1, 1.25, 2.0, 0.33, 3.14159, 1e-7, 1e21, 16777217.0, 0.01, 4.2]
    values += [rng.uniform(-100, 100) for _ in range(300)]
    values += [rng.uniform(-1, 1) * 10 ** rng.randint(-20, 25) for _ in range(300)]
    lines = [json.dumps([v]) for v in values]
    go_out = run_lines(go_program("gojson"), "f32", lines)
    for value, expected in zip(values, go_out, strict=True):
        assert gojson.marshal([gojson.Float32(value)]).decode() == expected, f"float32 {value!r}"
