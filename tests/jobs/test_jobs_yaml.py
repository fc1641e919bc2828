"""The YAML reader under ensembles: lines per path, duplicate keys, aliases, caps."""

from __future__ import annotations

import pytest

from dms.jobs import MAX_YAML_BYTES, EnsembleInvalid
from dms.jobs._yaml import load_document


def test_every_path_has_its_line() -> None:
    doc = load_document("a:\n  b: 1\n  c:\n    - x\n    - {d: 2}\n")
    assert doc.data == {"a": {"b": 1, "c": ["x", {"d": 2}]}}
    assert doc.lines["a"] == 1 and doc.lines["a.b"] == 2 and doc.lines["a.c"] == 3
    assert doc.lines["a.c[0]"] == 4 and doc.lines["a.c[1].d"] == 5
    assert doc.line("a.c[1].d.missing.deeper") == 5  # nearest ancestor


def test_duplicate_keys_are_problems_with_both_lines() -> None:
    doc = load_document("nodes:\n  n1: {}\n  n2: {}\n  n1: {peer: x}\n")
    (problem,) = doc.problems
    assert (problem.path, problem.line) == ("nodes.n1", 4)
    assert "duplicate key 'n1' (first at line 2)" in problem.message
    assert doc.data["nodes"]["n1"] == {}  # the first one is kept


def test_aliases_and_merge_keys() -> None:
    doc = load_document("base: &b {x: 1, y: 2}\none: *b\ntwo:\n  <<: *b\n  y: 3\n")
    assert doc.data["one"] == {"x": 1, "y": 2}
    assert doc.data["two"] == {"x": 1, "y": 3}  # explicit keys win over merged ones
    assert doc.anchored == {"base"}


def test_yaml_1_2_booleans_norway_stays_norway() -> None:
    doc = load_document("country: NO\nflag: yes\nreal: true\nnull_ish: null\n")
    assert doc.data == {"country": "NO", "flag": "yes", "real": True, "null_ish": None}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000, "nested too deeply"),
        ("{a: " * 5_000, "nested too deeply"),
        ("a: " + "x" * (MAX_YAML_BYTES + 1), "larger than"),
        ("- &x [*x, *x]\n", "expected a mapping"),
        ("a: [unclosed\n", "invalid YAML"),
        ("\x1f", "unacceptable character"),
        ("", "empty"),
    ],
)
def test_hostile_or_broken_documents_are_one_problem(text: str, message: str) -> None:
    with pytest.raises(EnsembleInvalid) as info:
        load_document(text)
    assert len(info.value.problems) == 1 and message in str(info.value)


def test_recursive_alias_is_refused() -> None:
    doc = load_document("a: &x\n  b: *x\n")
    assert any("recursive alias" in p.message for p in doc.problems)


def test_billion_laughs_stops_at_the_value_cap() -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        refs = ", ".join([f"*l{i - 1}"] * 10)
        lines.append(f"l{i}: &l{i} [{refs}]")
    with pytest.raises(EnsembleInvalid, match="values"):
        load_document("\n".join(lines) + "\n")
