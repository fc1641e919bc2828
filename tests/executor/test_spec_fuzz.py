"""Whatever a deployer writes, spec validation answers with one :class:`InvalidSpec` line or a
valid spec: never another exception (a crash in a bid handler), never a multi-line message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dms.executor import InvalidSpec, SpecConfig
from dms.executor._base import ExecutorSettings
from dms.executor._docker_spec import parse_params
from dms.executor._null import NullExecutor
from dms.executor._wasm_spec import parse_spec
from dms.jobs import load_allocation

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        "image", "cmd", "entrypoint", "environment", "working_directory", "privileged",
        "module", "args", "env", "fuel", "timeout", "sha256", "duration", "exit_code",
        "stdout", "error", "volumes", "x",
    ]
)  # fmt: skip
_params = st.dictionaries(_keys, _values, max_size=6)


def _one_line(error: InvalidSpec) -> None:
    assert "\n" not in str(error) and str(error)


@given(_params, st.booleans())
@settings(max_examples=300, deadline=None)
def test_docker_params_validation_is_total(params: dict[str, Any], privileged: bool) -> None:
    try:
        parse_params(SpecConfig("docker", params), allow_privileged=privileged)
    except InvalidSpec as exc:
        _one_line(exc)


@given(_params)
@settings(max_examples=300, deadline=None)
def test_wasm_spec_validation_is_total(params: dict[str, Any]) -> None:
    try:
        parse_spec(SpecConfig("wasm", params))
    except InvalidSpec as exc:
        _one_line(exc)


@given(_params)
@settings(max_examples=200, deadline=None)
def test_null_spec_validation_is_total(params: dict[str, Any]) -> None:
    executor = NullExecutor(ExecutorSettings("fuzz", Path("/nonexistent")))
    try:
        executor.validate(SpecConfig("null", params))
    except InvalidSpec as exc:
        _one_line(exc)


_documents = st.one_of(
    _values,
    st.fixed_dictionaries(
        {
            "execution": st.one_of(
                _values, st.fixed_dictionaries({"type": _scalars}, optional={"image": _values})
            )
        },
        optional={"executor": _values, "resources": _values},
    ),
    st.fixed_dictionaries(
        {"allocations": st.dictionaries(st.text(max_size=5), _values, max_size=3)}
    ),
)


@given(st.one_of(_documents.map(yaml.safe_dump), st.text(max_size=80)))
@settings(max_examples=400, deadline=None)
def test_allocation_yaml_loading_is_total(text: str) -> None:
    try:
        load_allocation(text)
    except InvalidSpec as exc:
        _one_line(exc)


def test_hostile_yaml_is_one_line() -> None:
    for text, message in [
        ("[" * 100_000, "nested too deeply"),
        ("{a: " * 5_000, "nested too deeply"),
        ("a: " + "x" * (2 << 20), "larger than"),
        ("- &x [*x, *x]\n", "expected a mapping"),
    ]:
        try:
            load_allocation(text)
        except InvalidSpec as exc:
            _one_line(exc)
            assert message in str(exc)
        else:
            raise AssertionError(f"accepted {text[:20]!r}")
