"""dms.gojson's decoding rules (the Go programs in tests/gocompat check the matching itself)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dms import gojson
from dms.errors import InvalidInput, TokenError


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("allocationID", "ALLOCATIONid", True),
        ("\u212aey", "key", True),  # KELVIN SIGN is k
        ("\u017fig", "SIG", True),  # LONG S is s
        ("stra\u1e9ee", "straße", True),  # capital sharp s folds simply to ß
        ("strasse", "straße", False),  # ß -> ss is a full folding: not Go's
        ("\u0130d", "id", False),  # dotted capital I: Turkic only
        ("\u0131d", "id", False),
        ("\u2126", "ω", True),  # OHM SIGN
        ("ς", "Σ", True),
        ("ǅ", "ǆ", True),
        ("\ud800", "\ufffd", True),  # an unpaired surrogate is U+FFFD, as invalid UTF-8 in Go
        ("ab", "abc", False),
    ],
)
def test_equal_fold(a: str, b: str, equal: bool) -> None:
    assert gojson.equal_fold(a, b) is equal
    assert (gojson.fold(a) == gojson.fold(b)) is equal


def test_ascii_keys_fold_to_lower_case() -> None:
    assert gojson.fold("AllocationID") == "allocationid"


def test_fields_prefer_an_exact_name_then_the_first_declared() -> None:
    fields = gojson.Fields("AB", "ab", "name")
    assert fields.match("ab") == "ab"
    assert fields.match("AB") == "AB"
    assert fields.match("Ab") == "AB"
    assert fields.match("NAME") == "name"
    assert fields.match("names") is None


def test_signed_objects_refuse_a_field_filled_twice() -> None:
    fields = gojson.Fields("be", "to")
    with pytest.raises(InvalidInput, match="invalid env: duplicate key 'Be'"):
        gojson.decode_struct(gojson.loads('{"be":"a","Be":"b"}', "x"), fields, "env", signed=True)
    with pytest.raises(TokenError, match="duplicate key"):
        gojson.decode_struct(
            gojson.loads('{"to":1,"to":1}', "x"), fields, "t", signed=True, error=TokenError
        )
    # unknown keys may repeat: they fill nothing
    value = gojson.loads('{"x":1,"x":2,"be":"a"}', "x")
    assert gojson.decode_struct(value, fields, "env", signed=True) == {"be": "a"}


def test_other_payloads_decode_repeats_as_go_does() -> None:
    fields = gojson.Fields("n", "sub")
    value = gojson.loads('{"n":1,"N":2,"n":null,"sub":{"a":1,"b":1},"Sub":{"b":2},"sub":null}', "x")
    out = gojson.decode_struct(value, fields, "p", signed=False)
    assert out["n"] == 2  # last wins, a later null leaves it
    assert gojson.decode_struct(out["sub"], gojson.Fields("a", "b"), "p.sub", signed=False) == {
        "a": 1,
        "b": 2,
    }
    # the same from plain json.loads dicts (what a web framework hands over)
    folded = gojson.folded({"Sub": {"a": 1, "A": 2}, "sub": {"a": 3}}, "p")
    assert gojson.folded(folded["sub"], "p.sub") == {"a": 3}
    assert gojson.field({"Host": "h", "HOST": None}, "host") == "h"


def test_loads_refuses_what_is_not_json() -> None:
    with pytest.raises(gojson.NotJSON) as info:
        gojson.loads(b"{", "thing")
    assert str(info.value).startswith("invalid thing JSON: ")
    with pytest.raises(gojson.NotJSON, match="not UTF-8"):
        gojson.loads(b'{"a":"\xff"}', "thing")
    with pytest.raises(InvalidInput, match="NaN") as nan:
        gojson.loads('{"a":NaN}', "thing")
    assert not isinstance(nan.value, gojson.NotJSON)
    assert isinstance(gojson.loads("{}", "thing"), gojson.Object)


@pytest.mark.parametrize("text", ["1.0", "1e3", "-1", "-0", "18446744073709551616", '"1"', "true"])
def test_uint64_refuses_what_parse_uint_refuses(text: str) -> None:
    value = gojson.field(gojson.loads('{"n":' + text + "}", "x"), "n")
    with pytest.raises(InvalidInput, match=r"^invalid p\.n: "):
        gojson.uint64_value(value, "p.n")


def test_typed_values() -> None:
    assert gojson.uint64_value(18446744073709551615, "n") == 2**64 - 1
    assert gojson.uint64_value(None, "n", 7) == 7
    assert gojson.str_value("a\ud800", "s") == "a\ufffd"
    assert gojson.bytes_value(None, "b") is None
    assert gojson.bytes_value("AAE=", "b") == b"\x00\x01"
    assert gojson.strings_value(["a"], "l") == ("a",)
    for bad, fn in [(1, gojson.str_value), ([1], gojson.strings_value), (1, gojson.bytes_value)]:
        with pytest.raises(InvalidInput) as info:
            fn(bad, "p.f")  # type: ignore[operator]
        assert "\n" not in str(info.value) and str(info.value).startswith("invalid p.f: ")
    with pytest.raises(InvalidInput, match="expected a JSON object, got array"):
        gojson.folded([], "p")


# -- the "root" inbox is one constant --------------------------------------------------------

SRC = Path(__file__).resolve().parents[2] / "src" / "dms"


def _root_inbox_literals(tree: ast.AST) -> list[int]:
    """Lines that spell the node actor's inbox as a literal rather than ``ROOT_INBOX``."""

    def is_root(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and node.value == "root"

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in {"Address", "Actor", "Handle"} and any(map(is_root, node.args)):
                lines.append(node.lineno)
            if any(k.arg == "inbox" and is_root(k.value) for k in node.keywords):
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(map(is_root, sides)) and any(
                isinstance(s, ast.Attribute) and s.attr == "inbox" for s in sides
            ):
                lines.append(node.lineno)
        elif isinstance(node, ast.Assign) and is_root(node.value):
            targets = [getattr(t, "id", getattr(t, "attr", "")) for t in node.targets]
            if any("inbox" in t.lower() for t in targets):
                lines.append(node.lineno)
    return lines


def test_the_root_inbox_is_spelled_once() -> None:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        lines = _root_inbox_literals(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[path.relative_to(SRC).as_posix()] = lines
    assert list(found) == ["actor/_handle.py"], found  # ROOT_INBOX = "root", and only there
