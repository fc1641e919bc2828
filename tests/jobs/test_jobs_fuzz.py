"""Whatever a user or a peer sends, loading answers with EnsembleInvalid (or, for one
allocation, InvalidSpec) or a valid ensemble: never another exception."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dms.executor import InvalidSpec
from dms.jobs import Ensemble, EnsembleInvalid, load_allocation, load_ensemble
from tests.jobs.ensembles import FULL

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["docker", "wasm", "null", "task", "service", "a1", "n1", "1GiB", "30s"]),
)
_names = st.sampled_from(
    [
        "allocations", "nodes", "executor", "type", "resources", "execution", "cpu", "ram",
        "disk", "gpus", "cores", "size", "vram", "edge_constraints", "edges", "rtt", "bw",
        "ports", "public", "private", "allocation", "depends_on", "supervisor", "children",
        "strategy", "healthcheck", "interval", "location", "accept", "reject", "continent",
        "subnet", "join", "scripts", "keys", "provision", "metadata", "contracts", "did",
        "volumes", "name", "module", "a1", "a2", "n1", "x",
    ]
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_names, inner, max_size=5)
    ),
    max_leaves=25,
)
_documents = st.dictionaries(_names, _values, max_size=6)


def _total(text: str) -> None:
    try:
        ensemble = load_ensemble(text)
    except EnsembleInvalid as exc:
        assert exc.problems and all(str(p) and "\n" not in str(p) for p in exc.problems)
    else:
        assert Ensemble.from_json(ensemble.to_json()) == ensemble
    try:
        load_allocation(text)
    except InvalidSpec as exc:
        assert str(exc) and "\n" not in str(exc)


@given(_documents)
@settings(max_examples=200, deadline=None)
def test_random_documents(doc: dict[str, Any]) -> None:
    _total(yaml.safe_dump(doc))


@given(st.text(max_size=120))
@settings(max_examples=150, deadline=None)
def test_random_text(text: str) -> None:
    _total(text)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_mutations_of_a_valid_ensemble(data: st.DataObject) -> None:
    doc = yaml.safe_load(FULL)
    # Replace one value somewhere in the tree by a random one.
    node: Any = doc
    while isinstance(node, dict | list) and node:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys))
        if data.draw(st.booleans()) or not isinstance(node[key], dict | list):
            node[key] = data.draw(_values)
            break
        node = node[key]
    _total(yaml.safe_dump(doc))


@given(_values)
@settings(max_examples=100, deadline=None)
def test_random_json_from_a_peer(value: Any) -> None:
    for data in ({"v1": value}, value):
        try:
            Ensemble.from_json(json.dumps(data, default=str))
        except EnsembleInvalid as exc:
            assert exc.problems
