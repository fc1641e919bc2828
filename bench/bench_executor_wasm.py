"""Start-to-exit overhead of the WASM executor next to calling wasmtime directly.

Run: ``.venv/bin/python bench/bench_executor_wasm.py`` (a few seconds; ``--runs N``, default 300).
One trivial WASI command (writes ``hello`` to stdout, ``proc_exit(0)``) is run ``--runs`` times
by each variant below, interleaved (variant A run i, variant B run i, ...), so load changes hit
every variant alike. Every variant sends stdout/stderr to files and preopens one directory, as
the executor does. In one process, one trio run:

* ``raw warm``: one shared ``Engine``, module compiled once; per run a ``Store``, ``WasiConfig``,
  ``Linker.define_wasi``, instantiate, ``_start`` (the least anyone can do per run);
* ``raw engine/run``: the executor's strategy without the executor: a new epoch-interruptible
  ``Engine`` per run and ``Module.deserialize`` of the artifact compiled once;
* ``raw cold``: new ``Engine`` and compile per run;
* ``executor warm``: ``WasmExecutor.run`` (validate, read + hash the file, compiled-artifact
  cache hit, execution directory, worker thread, result with outputs) then ``remove`` (not
  timed);
* ``executor cold``: the same with the compiled-artifact cache cleared before each run.

Figures are the time from the call to the exit (``run`` returning), p50/p90 in microseconds,
and the ratios executor/raw at the same temperature.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path

import trio
import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import loadavg, quantile
from dms.executor import ExecutionRequest, ExecutorSettings, SpecConfig
from dms.executor._wasm import WasmExecutor
from dms.executor._wasm_engine import new_engine

HELLO = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 0))))
"""


def raw_run(engine: wasmtime.Engine, module: wasmtime.Module, out: Path, epoch: bool) -> int:
    """One run straight on wasmtime: store, WASI, link, instantiate, ``_start``."""
    store = wasmtime.Store(engine)
    if epoch:
        store.set_epoch_deadline(1)
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["hello.wasm"]
    wasi.stdout_file = str(out / "stdout")
    wasi.stderr_file = str(out / "stderr")
    wasi.preopen_dir(str(out / "sandbox"), "/sandbox")
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    try:
        start(store)
    except wasmtime.ExitTrap as exc:
        return exc.code
    return 0


async def bench(base: Path, runs: int) -> None:
    module_path = base / "hello.wasm"
    binary = bytes(wasmtime.wat2wasm(HELLO))
    module_path.write_bytes(binary)
    out = base / "raw"
    (out / "sandbox").mkdir(parents=True)

    shared = wasmtime.Engine()
    compiled = wasmtime.Module(shared, binary)
    artifact = bytes(wasmtime.Module(new_engine(fuel=False), binary).serialize())

    def raw_warm() -> None:
        assert raw_run(shared, compiled, out, epoch=False) == 0

    def raw_engine_per_run() -> None:
        engine = new_engine(fuel=False)
        module = wasmtime.Module.deserialize(engine, artifact)
        assert raw_run(engine, module, out, epoch=True) == 0

    def raw_cold() -> None:
        engine = wasmtime.Engine()
        assert raw_run(engine, wasmtime.Module(engine, binary), out, epoch=False) == 0

    executor = WasmExecutor(
        ExecutorSettings("bench", base / "work", extra={"wasm_allow_host_paths": True})
    )
    counter = iter(range(10**9))

    async def executor_run(cold: bool) -> float:
        if cold:
            executor.compiled.clear()
        request = ExecutionRequest(
            "bench", f"e{next(counter)}", SpecConfig("wasm", {"module": str(module_path)})
        )
        started = time.perf_counter()
        result = await executor.run(request)
        elapsed = time.perf_counter() - started
        assert result.exit_code == 0 and result.stdout == "hello\n", result
        await executor.remove(request.execution_id)
        return elapsed

    def timed(fn: Callable[[], None]) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            started = time.perf_counter()
            fn()
            return time.perf_counter() - started

        return run

    variants: dict[str, Callable[[], Awaitable[float]]] = {
        "raw warm": timed(raw_warm),
        "raw engine/run": timed(raw_engine_per_run),
        "raw cold": timed(raw_cold),
        "executor warm": lambda: executor_run(cold=False),
        "executor cold": lambda: executor_run(cold=True),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    load_before = loadavg()
    async with executor.open():
        for variant in variants.values():  # warm-up: imports, first thread, caches
            for _ in range(5):
                await variant()
        for _ in range(runs):
            for name, variant in variants.items():
                samples[name].append(await variant())

    p50 = {name: quantile(values, 0.5) * 1e6 for name, values in samples.items()}
    p90 = {name: quantile(values, 0.9) * 1e6 for name, values in samples.items()}
    print(
        f"\nWASM start-to-exit, trivial module (hello + proc_exit 0), {runs} interleaved runs"
        f" per variant; wasmtime {version('wasmtime')}, loadavg {load_before} -> {loadavg()}\n"
    )
    header = f"{'variant':<16} {'p50 us':>9} {'p90 us':>9}"
    print(header)
    print("-" * len(header))
    for name in variants:
        print(f"{name:<16} {p50[name]:>9.0f} {p90[name]:>9.0f}")
    print()
    for executor_name, raw_name in (("executor warm", "raw warm"), ("executor cold", "raw cold")):
        print(
            f"{executor_name} / {raw_name}: p50 {p50[executor_name] / p50[raw_name]:.2f}x,"
            f" p90 {p90[executor_name] / p90[raw_name]:.2f}x"
            f" (+{p50[executor_name] - p50[raw_name]:.0f} us at p50)"
        )
    engine_cost = p50["raw engine/run"] - p50["raw warm"]
    compile_cost = p50["raw cold"] - p50["raw warm"]
    print(
        f"engine per run + deserialize vs shared engine: +{engine_cost:.0f} us at p50;"
        f" compiling every run instead: +{compile_cost:.0f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-wasm-"))
    try:
        trio.run(bench, base, args.runs)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
