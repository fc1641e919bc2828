"""Executors by name, and which of them can run on this machine.

A node advertises the executors whose probe passes and only bids for allocations whose
``executor:`` it has; for the others the probe's one-line reason is what it records ("docker:
no engine at unix:///var/run/docker.sock"), so a user asking why an ensemble was not placed
gets an answer. Back-ends are imported lazily: the Docker SDK and wasmtime cost start-up time
that ``nunet key list`` should not pay.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from dms.errors import NotFound
from dms.executor._base import Executor, ExecutorSettings
from dms.executor._errors import ExecutorUnavailable

log = logging.getLogger(__name__)

#: Built-in back-ends: name -> "module:class".
BUILTIN_EXECUTORS: dict[str, str] = {
    "docker": "dms.executor._docker:DockerExecutor",
    "wasm": "dms.executor._wasm:WasmExecutor",
    "null": "dms.executor._null:NullExecutor",
    "vm": "dms.executor._vm:VmExecutor",
    "firecracker": "dms.executor._vm:FirecrackerExecutor",
}


@dataclass(frozen=True)
class ExecutorAvailability:
    """Whether an executor can run here; ``reason`` says why not."""

    name: str
    available: bool
    reason: str = ""


class UnknownExecutor(ExecutorUnavailable, NotFound):
    """No executor is registered under that name."""


class ExecutorRegistry:
    """Executor classes by name, with a cached availability probe per name."""

    def __init__(self, kinds: dict[str, str] | None = None) -> None:
        self._paths = dict(BUILTIN_EXECUTORS if kinds is None else kinds)
        self._classes: dict[str, type[Executor]] = {}
        self._probed: dict[str, ExecutorAvailability] = {}

    def register(self, cls: type[Executor]) -> None:
        """Add (or replace) a back-end class under ``cls.name``."""
        self._classes[cls.name] = cls
        self._paths.pop(cls.name, None)
        self._probed.pop(cls.name, None)

    def names(self) -> list[str]:
        return sorted({*self._paths, *self._classes})

    def executor_class(self, name: str) -> type[Executor]:
        if name in self._classes:
            return self._classes[name]
        if name not in self._paths:
            known = ", ".join(self.names())
            raise UnknownExecutor(f"unknown executor {name!r} (known: {known})")
        module_name, _, attr = self._paths[name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # an optional dependency is missing
            raise ExecutorUnavailable(f"{name}: cannot load its back-end: {exc}") from exc
        cls: type[Executor] = getattr(module, attr)
        self._classes[name] = cls
        return cls

    def probe(self, name: str, *, refresh: bool = False) -> ExecutorAvailability:
        """Whether ``name`` can run here (blocking: may talk to an engine; cached)."""
        if not refresh and name in self._probed:
            return self._probed[name]
        try:
            reason = self.executor_class(name).probe()
        except UnknownExecutor:
            raise
        except ExecutorUnavailable as exc:
            reason = str(exc)
        except Exception as exc:  # a probe must never take the node down
            reason = f"{name}: probe failed: {exc}"
        note = ""
        if reason is None:  # an available back-end may say how (``vm: available (kvm)``)
            how = getattr(self.executor_class(name), "availability_note", None)
            note = str(how()) if callable(how) else ""
        found = ExecutorAvailability(name, reason is None, reason or note)
        if reason:
            log.info("executor %s unavailable: %s", name, reason)
        self._probed[name] = found
        return found

    def probe_all(self, *, refresh: bool = False) -> list[ExecutorAvailability]:
        return [self.probe(name, refresh=refresh) for name in self.names()]

    def available(self) -> list[str]:
        """Names of the executors that can run here (probing those not probed yet)."""
        return [found.name for found in self.probe_all() if found.available]

    def create(self, name: str, settings: ExecutorSettings) -> Executor:
        """A new executor of kind ``name``; refuses one whose probe failed, saying why."""
        found = self.probe(name)
        if not found.available:
            raise ExecutorUnavailable(found.reason)
        return self.executor_class(name)(settings)
