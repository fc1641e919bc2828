"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.gocompat.goprog import build_go_program


@pytest.fixture(scope="session")
def go_program(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Return a builder that compiles a Go program once per test session."""
    cache: dict[str, Path] = {}
    out_dir = tmp_path_factory.mktemp("go")

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = build_go_program(name, out_dir)
        return cache[name]

    return get


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """An ExitStack closed after the test (stores, executors and other blocking resources)."""
    with ExitStack() as s:
        yield s
