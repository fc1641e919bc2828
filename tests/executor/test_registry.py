"""The registry says which executors run here, and why the others do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from dms.executor import (
    Executor,
    ExecutorRegistry,
    ExecutorSettings,
    ExecutorUnavailable,
    UnknownExecutor,
)
from dms.executor._null import NullExecutor


class _Broken(NullExecutor):
    name = "broken"

    @classmethod
    def probe(cls) -> str | None:
        return "broken: engine not installed"


class _Crashing(NullExecutor):
    name = "crashing"

    @classmethod
    def probe(cls) -> str | None:
        raise OSError("socket exploded")


def _settings(tmp_path: Path) -> ExecutorSettings:
    return ExecutorSettings(executor_id="x", work_dir=tmp_path)


def test_builtins_are_known_and_null_always_runs(tmp_path: Path) -> None:
    registry = ExecutorRegistry()
    assert {"docker", "wasm", "null"} <= set(registry.names())
    assert "null" in registry.available()
    executor = registry.create("null", _settings(tmp_path))
    assert isinstance(executor, Executor) and executor.name == "null"


def test_an_unavailable_executor_is_refused_with_its_reason(tmp_path: Path) -> None:
    registry = ExecutorRegistry({})
    registry.register(_Broken)
    registry.register(_Crashing)
    found = {a.name: a for a in registry.probe_all()}
    assert not found["broken"].available
    assert found["broken"].reason == "broken: engine not installed"
    assert found["crashing"].reason == "crashing: probe failed: socket exploded"
    assert registry.available() == []
    with pytest.raises(ExecutorUnavailable, match="engine not installed"):
        registry.create("broken", _settings(tmp_path))


def test_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    registry = ExecutorRegistry()
    with pytest.raises(
        UnknownExecutor,
        match=r"unknown executor 'lxc' \(known: docker, firecracker, null, vm, wasm\)",
    ):
        registry.create("lxc", _settings(tmp_path))


def test_a_back_end_that_cannot_be_imported_is_unavailable_not_a_crash() -> None:
    registry = ExecutorRegistry({"ghost": "dms.executor._no_such_module:Ghost"})
    found = registry.probe("ghost")
    assert not found.available
    assert found.reason.startswith("ghost: cannot load its back-end")
