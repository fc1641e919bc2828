"""dms.gojson's field matching against Go's own encoding/json (Debian golang-go).

The Go program decodes crafted objects into a struct whose fields record every value that lands
in them, so we can see, key by key, which field Go picks: case variants, repeated keys, unknown
keys, Unicode folding (Kelvin sign, long s, Ohm sign, final sigma, titlecase digraphs, Cherokee),
keys that differ only in non-ASCII case, and exact matches winning over folded ones.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dms import gojson
from dms.errors import InvalidInput
from tests.gocompat.goprog import run_lines

#: The JSON names of Go's ``Probe`` struct, in declaration order (see go/jsonfields/main.go).
PROBE = gojson.Fields(
    "name",
    "Kind",
    "sig",
    "AB",
    "ab",
    "aB",
    "straße",
    "ωmega",
    "ǆ",
    "µs",
    "σ",
    "Ꭰx",
    "å",
    "id",
    "snake_case",
)

KEYS = [
    # ASCII case variants, near misses and unknown keys
    *("name", "NAME", "Name", "nAmE", "names", "nam", "na me", ""),
    *("snake_case", "SNAKE_CASE", "Snake_Case", "snake-case", "snakecase", "snake_casE"),
    *("id", "ID", "Id", "iD"),
    # the two non-ASCII runes that fold to ASCII letters: Kelvin sign and long s
    *("Kind", "kind", "KIND", "\u212aind", "\u212aIND", "k\u0131nd"),
    *("sig", "SIG", "\u017fig", "\u017fIG", "\u017f\u017fig", "s\u0131g"),
    # Turkic dotted/dotless i are not simple foldings of i
    *("\u0130d", "\u0131d", "\u0130D"),
    # exact matches win; otherwise the first declared of the names that fold alike
    *("AB", "ab", "aB", "Ab"),
    # keys that differ from a name only in non-ASCII case
    *("straße", "STRAẞE", "Straße", "STRASSE", "strasse", "straẞe"),
    *("ωmega", "ΩMEGA", "\u2126mega", "\u2126MEGA", "Ωmega"),
    *("ǆ", "ǅ", "Ǆ", "dž", "DŽ"),
    *("µs", "μs", "ΜS", "µS", "us"),
    *("σ", "Σ", "ς"),
    *("Ꭰx", "ꭰx", "ᎠX", "ꭰX"),
    *("å", "Å", "\u212b", "a"),
]


def _line(pairs: list[tuple[str, Any]], *, ascii_escapes: bool = False) -> str:
    body = ",".join(
        f"{json.dumps(k, ensure_ascii=ascii_escapes)}:{json.dumps(v)}" for k, v in pairs
    )
    return "{" + body + "}"


def _inputs() -> list[str]:
    lines = []
    for i, key in enumerate(KEYS):  # each key alone, written raw and with \u escapes
        lines.append(_line([(key, i)]))
        lines.append(_line([(key, i)], ascii_escapes=True))
    # every key in one object: repeated fields, in source order
    lines.append(_line([(k, i) for i, k in enumerate(KEYS)]))
    lines.append(_line([(k, i) for i, k in reversed(list(enumerate(KEYS)))]))
    # pairs of keys, some landing in the same field, with nulls and objects among the values
    for i in range(0, len(KEYS) - 1, 3):
        lines.append(_line([(KEYS[i], i), (KEYS[i + 1], None), (KEYS[(i * 7) % len(KEYS)], {})]))
    lines.append('{"n\\u0061me":1,"\\u212aind":2,"\\u017Fig":3}')
    return lines


def _ours(line: str) -> dict[str, list[Any]]:
    landed: dict[str, list[Any]] = {}
    for key, value in gojson.pairs(gojson.loads(line, "probe"), "probe") or ():
        name = PROBE.match(key)
        if name is not None:
            landed.setdefault(name, []).append(value)
    return landed


def _plain(value: Any) -> Any:
    if isinstance(value, gojson.Object):
        return {k: _plain(v) for k, v in value}
    return value


@pytest.fixture(scope="module")
def go_landings(go_program: Callable[[str], Path]) -> list[tuple[str, dict[str, list[Any]]]]:
    lines = _inputs()
    out = run_lines(go_program("jsonfields"), "fields", lines)
    results = []
    for line, result in zip(lines, out, strict=True):
        assert not result.startswith("ERR"), f"Go refused {line}: {result}"
        results.append((line, json.loads(result)))
    return results


def test_every_key_lands_where_go_puts_it(
    go_landings: list[tuple[str, dict[str, list[Any]]]],
) -> None:
    for line, go in go_landings:
        ours = {name: [_plain(v) for v in values] for name, values in _ours(line).items()}
        assert ours == go, line


def test_signed_objects_refuse_exactly_what_go_decodes_twice(
    go_landings: list[tuple[str, dict[str, list[Any]]]],
) -> None:
    refused = 0
    for line, go in go_landings:
        twice = any(len(values) > 1 for values in go.values())
        value = gojson.loads(line, "probe")
        if twice:
            refused += 1
            with pytest.raises(InvalidInput, match="duplicate key"):
                gojson.decode_struct(value, PROBE, "probe", signed=True)
        else:
            decoded = gojson.decode_struct(value, PROBE, "probe", signed=True)
            assert {k: [_plain(v)] for k, v in decoded.items()} == go, line
    assert refused > 5


def test_other_payloads_keep_the_last_value_go_decoded(
    go_landings: list[tuple[str, dict[str, list[Any]]]],
) -> None:
    """Last wins; a later null leaves the earlier value; objects merge (Go's rules for structs)."""
    for line, go in go_landings:
        decoded = gojson.decode_struct(gojson.loads(line, "probe"), PROBE, "probe", signed=False)
        for name, values in go.items():
            non_null = [v for v in values if v is not None]
            expected = non_null[-1] if non_null else None
            if all(isinstance(v, dict) for v in non_null) and non_null:
                expected = {k: v for d in non_null for k, v in d.items()}
            assert _plain(decoded.get(name)) == expected, (line, name)
        # one field at a time (no fold collisions outside AB/ab/aB) gives the same answers
        for name in set(go) - {"AB", "ab", "aB"}:
            assert _plain(gojson.field(gojson.loads(line, "p"), name)) == _plain(
                decoded.get(name)
            ), (line, name)


def test_fold_classes_are_gos_simple_fold_orbits(go_program: Callable[[str], Path]) -> None:
    """Over every code point: two runes fold alike exactly when Go's SimpleFold links them.

    The only differences allowed are runes Go's Unicode tables (13.0 in Go 1.19) do not know yet.
    """
    binary = go_program("jsonfields")
    go: dict[int, int] = {}
    for line in _orbits(binary):
        rune, smallest = map(int, line.split())
        go[rune] = smallest
    classes: dict[str, list[int]] = {}
    for code in range(0x110000):
        if not 0xD800 <= code <= 0xDFFF:
            classes.setdefault(gojson.fold(chr(code)), []).append(code)
    ours = {c: min(members) for members in classes.values() if len(members) > 1 for c in members}
    differ = sorted(c for c in go.keys() | ours.keys() if go.get(c) != ours.get(c))
    assert len(go) > 2500
    assert 0x212A in go and go[0x212A] == ord("K") and ours[0x212A] == ord("K")
    assert 0x017F in go and ours[0x017F] == ord("S")
    if differ:
        known = run_lines(binary, "letters", [str(c) for c in differ])
        unknown_to_go = {c for c, flag in zip(differ, known, strict=True) if flag == "0"}
        assert set(differ) == unknown_to_go, [hex(c) for c in differ if c not in unknown_to_go]
        assert all(c not in go for c in differ)


def _orbits(binary: Path) -> list[str]:
    result = subprocess.run([str(binary), "orbits"], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()
