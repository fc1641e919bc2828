"""The wasmtime side of the WASM executor: compiling modules and running one in a thread.

* One :class:`wasmtime.Engine` per execution, with epoch interruption on and a deadline of one
  tick: :meth:`Runner.stop` bumps that engine's epoch (thread-safe), so the module traps at its
  next loop back-edge or function entry, however tight the loop, and no other execution is
  disturbed. An engine costs microseconds; a module is compiled once per (bytes, fuel on/off)
  and each run loads the compiled artifact into its own engine (``Module.deserialize``, ~50 µs
  for a small module against ~1 ms to compile; see ``bench/bench_executor_wasm.py``).
* Fuel changes the generated code, so metered and unmetered artifacts are cached separately
  and only executions that ask for ``fuel`` pay for metering.
* The module sees WASI preview1 with: its ``argv``/``environ``, stdout/stderr going to files,
  an empty stdin, and one preopened directory, ``/sandbox``. Nothing else of the host.

Epoch checks happen in wasm code only: a module blocked in a host call (``poll_oneoff``
sleeping, say) stops when the call returns. The executor then abandons the thread after a
grace period (see ``_wasm.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from dms.executor._errors import InvalidSpec
from dms.executor._wasm_result import Outcome, OutcomeKind
from dms.executor._wasm_source import ModuleBytes

WASI_MODULE = "wasi_snapshot_preview1"
WASM_MAGIC = b"\0asm"


def new_engine(*, fuel: bool) -> wasmtime.Engine:
    """An engine whose code can be interrupted by epoch and, if ``fuel``, metered."""
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = fuel
    return wasmtime.Engine(config)


def one_line(message: str) -> str:
    """The reason of a wasmtime error: its ``Caused by`` lines, or its first line.

    WAT parse errors quote the offending source line; only its location is kept, so an error
    never echoes file contents.
    """
    lines = [line.strip() for line in message.strip().splitlines()]
    if "Caused by:" in lines:
        causes = [line for line in lines[lines.index("Caused by:") + 1 :] if line]
        return "; ".join(causes) or lines[0]
    where = next((line[4:] for line in lines if line.startswith("--> ")), "")
    return f"{lines[0]} ({where})" if where else lines[0] if lines else "unknown error"


def _wasm_binary(module: ModuleBytes, source: str) -> bytes:
    if module.data.startswith(WASM_MAGIC):
        return module.data
    try:
        text = module.data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSpec(
            f"wasm module {source} is neither WebAssembly binary nor WAT text"
        ) from None
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        raise InvalidSpec(f"wasm module {source}: invalid WAT: {one_line(str(exc))}") from None


def _check_interface(module: wasmtime.Module, source: str) -> None:
    """A WASI command: imports only WASI preview1 functions and exports ``_start``."""
    foreign = [f"{i.module}::{i.name}" for i in module.imports if i.module != WASI_MODULE]
    if foreign:
        raise InvalidSpec(
            f"wasm module {source} imports {', '.join(foreign[:3])}; only WASI preview1 "
            f"({WASI_MODULE}) is provided"
        )
    start = next((e.type for e in module.exports if e.name == "_start"), None)
    if not isinstance(start, wasmtime.FuncType) or start.params or start.results:
        raise InvalidSpec(f"wasm module {source} is not a WASI command: no '_start' function")


def compile_artifact(module: ModuleBytes, *, fuel: bool, source: str) -> bytes:
    """Compile ``module`` (binary or WAT) and return the engine's serialized artifact.

    Raises :class:`InvalidSpec` (one line) when it is not a valid WASI command module.
    """
    binary = _wasm_binary(module, source)
    engine = new_engine(fuel=fuel)
    try:
        compiled = wasmtime.Module(engine, binary)
    except wasmtime.WasmtimeError as exc:
        raise InvalidSpec(f"wasm module {source} is not valid: {one_line(str(exc))}") from None
    _check_interface(compiled, source)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    try:
        linker.instantiate_pre(compiled)  # every WASI import exists, with the right type
    except wasmtime.WasmtimeError as exc:
        raise InvalidSpec(f"wasm module {source}: {one_line(str(exc))}") from None
    return bytes(compiled.serialize())


class CompiledModules:
    """Compiled artifacts by (module sha256, fuel on/off), least recently used evicted first.

    Thread-safe; two threads compiling the same new module both compile, and one result is
    kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, bool], bytes] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    def artifact(self, module: ModuleBytes, *, fuel: bool, source: str) -> bytes:
        key = (module.sha256, fuel)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        artifact = compile_artifact(module, fuel=fuel, source=source)
        with self._lock:
            if key not in self._items and len(artifact) <= self.max_bytes:
                self._items[key] = artifact
                self._size += len(artifact)
                while self._size > self.max_bytes:
                    _, evicted = self._items.popitem(last=False)
                    self._size -= len(evicted)
        return artifact

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


@dataclass(frozen=True)
class RunPlan:
    """Everything one run needs; built in the trio thread, used in the worker thread."""

    artifact: bytes
    fuel: int | None
    memory_cap: int  # bytes; 0 = no cap
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    stdout: Path
    stderr: Path
    sandbox: Path


def _memory_bytes(instance: wasmtime.Instance | None, store: wasmtime.Store) -> int:
    """The size of the exported ``memory`` (where WASI programs keep their heap), or 0."""
    if instance is None:
        return 0
    try:
        memory = instance.exports(store).get("memory")
        return memory.data_len(store) if isinstance(memory, wasmtime.Memory) else 0
    except wasmtime.WasmtimeError:
        return 0


class Runner:
    """One execution of a compiled module: :meth:`execute` in a worker thread, :meth:`stop`
    from anywhere."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self.engine = new_engine(fuel=plan.fuel is not None)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Interrupt the module at its next epoch check (or before it starts)."""
        self._stop.set()
        self.engine.increment_epoch()

    def _store(self) -> wasmtime.Store:
        plan = self.plan
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(1)
        if plan.fuel is not None:
            store.set_fuel(plan.fuel)
        if plan.memory_cap > 0:
            store.set_limits(memory_size=plan.memory_cap)
        wasi = wasmtime.WasiConfig()
        wasi.argv = list(plan.argv)
        wasi.env = [list(pair) for pair in plan.env]
        wasi.stdout_file = str(plan.stdout)
        wasi.stderr_file = str(plan.stderr)
        wasi.preopen_dir(str(plan.sandbox), "/sandbox")
        store.set_wasi(wasi)
        return store

    def execute(self, on_running: Callable[[], None]) -> Outcome:
        """Run the module to its end (blocking); never raises."""
        on_running()
        try:
            return self._execute()
        except Exception as exc:  # report, never lose the execution
            return Outcome(OutcomeKind.ERROR, message=f"wasm executor error: {exc!r}")

    def _execute(self) -> Outcome:
        try:
            module = wasmtime.Module.deserialize(self.engine, self.plan.artifact)
            store = self._store()
        except wasmtime.WasmtimeError as exc:
            return Outcome(OutcomeKind.START_FAILED, message=one_line(str(exc)))
        # Checked after the deadline is armed: a stop() from now on traps the module, and
        # one from before is seen here.
        if self._stop.is_set():
            return Outcome(OutcomeKind.NOT_STARTED)
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        instance: wasmtime.Instance | None = None
        try:
            instance = linker.instantiate(store, module)
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
            outcome = Outcome(OutcomeKind.RETURNED)
        except wasmtime.ExitTrap as exc:
            outcome = Outcome(OutcomeKind.EXITED, exit_code=exc.code)
        except wasmtime.Trap as exc:
            code = exc.trap_code
            outcome = Outcome(
                OutcomeKind.TRAPPED, trap=code.name if code else "", message=one_line(exc.message)
            )
        except wasmtime.WasmtimeError as exc:
            kind = OutcomeKind.START_FAILED if instance is None else OutcomeKind.TRAPPED
            outcome = Outcome(kind, message=one_line(str(exc)))
        memory = _memory_bytes(instance, store)
        return Outcome(outcome.kind, outcome.exit_code, outcome.trap, outcome.message, memory)
