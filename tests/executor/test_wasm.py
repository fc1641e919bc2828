"""The WASM executor runs WASI modules through the executor contract: results, exit codes,
args/env, the sandbox, limits (fuel, timeout, memory), cancel, logs, concurrency, cleanup.

Modules are the WAT programs of ``wasm_fixtures`` written to files (wasmtime compiles WAT).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import wasmtime

from dms.executor import (
    ExecutionExists,
    ExecutionNotFound,
    ExecutionResult,
    ExecutionStatus,
    ExecutorRegistry,
    ExecutorSettings,
    ExecutorUnavailable,
    InvalidSpec,
    LogChunk,
    PortBinding,
    Termination,
    Unsupported,
)
from dms.executor._wasm import OUTPUT_LIMIT, WasmExecutor
from tests.executor import wasm_fixtures as wat
from tests.executor.wasm_fixtures.support import make_executor, module_file, wasm_request


def test_probe_and_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert WasmExecutor.probe() is None
    registry = ExecutorRegistry()
    assert registry.probe("wasm").available
    executor = registry.create("wasm", ExecutorSettings("x", tmp_path))
    assert isinstance(executor, WasmExecutor)

    def broken(*, fuel: bool) -> None:
        raise OSError("cannot map executable memory")

    monkeypatch.setattr("dms.executor._wasm_engine.new_engine", broken)
    # The probe stays cheap (no engine: nodes probe to advertise); opening the executor checks.
    assert WasmExecutor.probe() is None
    with pytest.raises(ExecutorUnavailable, match="wasmtime cannot run here: cannot map"):
        trio.run(_open_once, tmp_path)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert WasmExecutor.probe() == "wasm: the wasmtime package is not installed"


async def _open_once(tmp_path: Path) -> None:
    async with make_executor(tmp_path).open():
        pass


async def test_hello_exit_code_and_output(tmp_path: Path) -> None:
    exits3 = module_file(tmp_path, "hello3.wat", wat.hello(3))
    returns = module_file(tmp_path, "hello.wasm", wasmtime.wat2wasm(wat.hello()))
    async with make_executor(tmp_path).open() as ex:
        result = await ex.run(wasm_request(exits3))
        assert result == ExecutionResult(exit_code=3, stdout="hello\n", stderr="warn\n")
        assert result.status is ExecutionStatus.FAILED  # non-zero exit, but no error
        ok = await ex.run(wasm_request(returns, "e2"))  # _start returns: exit code 0
        assert (ok.exit_code, ok.stdout, ok.status) == (0, "hello\n", ExecutionStatus.SUCCESS)
        # Output is also kept in files in the execution directory, with the sandbox.
        directory = ex.executions_dir / "e1"
        assert (directory / "stdout.log").read_text() == "hello\n"
        assert (directory / "stderr.log").read_text() == "warn\n"
        assert (directory / "sandbox").is_dir()
        marker = json.loads((directory / ".nunet-executor").read_text())
        assert marker["executor_id"] == "test-wasm" and marker["execution_id"] == "e1"


async def test_trap_is_a_crash_with_its_reason(tmp_path: Path) -> None:
    trap = module_file(tmp_path, "trap.wat", wat.TRAP)
    async with make_executor(tmp_path).open() as ex:
        result = await ex.run(wasm_request(trap, ram=64 << 20))
    assert result.exit_code == 134 and result.termination is Termination.EXITED
    # One page used of a 64 MiB cap: not called OOM, but the memory in use is stated.
    assert result.error == "wasm trap: integer divide by zero (linear memory 64 KiB of 64 MiB)"
    assert result.status is ExecutionStatus.FAILED


async def test_args_and_env_reach_the_module_and_nothing_else(tmp_path: Path) -> None:
    module = module_file(tmp_path, "args_env.wat", wat.ARGS_ENV)
    async with make_executor(tmp_path).open() as ex:
        result = await ex.run(
            wasm_request(module, args=["a b", "--n", 5], env={"K": "V", "X": "y=z"})
        )
        listed = await ex.run(wasm_request(module, "e2", env=["A=1", "B="]))
    assert result.stdout == "args_env.wat\0a b\0--n\x005\0"  # argv[0] = the module's name
    assert result.stderr == "K=V\0X=y=z\0"  # exactly the spec's env: no host variables
    assert listed.stdout == "args_env.wat\0" and listed.stderr == "A=1\0B=\0"


async def test_sandbox_is_the_only_filesystem(tmp_path: Path) -> None:
    module = module_file(tmp_path, "sandbox.wat", wat.SANDBOX)
    async with make_executor(tmp_path).open() as ex:
        result = await ex.run(wasm_request(module))
        sandbox = ex.executions_dir / "e1" / "sandbox"
        assert (sandbox / "note.txt").read_text() == "written in the sandbox"
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["preopen"] == "/sandbox"
    # errno 0 = success; everything that leaves the preopen must fail.
    assert lines["escape"] != "0"  # ../../etc/passwd
    assert lines["absolute"] != "0"  # /etc/passwd
    assert lines["open-link"] != "0"  # a symlink the module made, pointing out
    assert lines["write"] == "0"
    assert lines["read"] == "0 written in the sandbox"
    assert "root:" not in result.stdout


async def test_fuel_budget_ends_an_infinite_loop(tmp_path: Path) -> None:
    loop = module_file(tmp_path, "loop.wat", wat.LOOP)
    async with make_executor(tmp_path).open() as ex:
        result = await ex.run(wasm_request(loop, fuel=200_000))
    assert result.termination is Termination.CPU_LIMIT
    assert result.error == "fuel budget of 200000 instructions spent"


async def test_timeout_ends_an_infinite_loop(tmp_path: Path) -> None:
    loop = module_file(tmp_path, "loop.wat", wat.LOOP)
    async with make_executor(tmp_path).open() as ex:
        started = time.monotonic()
        result = await ex.run(wasm_request(loop, timeout=0.2))
        elapsed = time.monotonic() - started
    assert result.termination is Termination.CPU_LIMIT
    assert result.error == "wall-clock timeout of 0.2 s reached"
    assert 0.2 <= elapsed < 1.5


async def test_cancel_stops_an_infinite_loop_promptly(tmp_path: Path) -> None:
    loop = module_file(tmp_path, "loop.wat", wat.LOOP)
    async with make_executor(tmp_path).open() as ex:
        await ex.start(wasm_request(loop))
        assert await ex.status("e1") is ExecutionStatus.RUNNING
        [info] = await ex.list_executions()
        assert (info.executor, info.status, info.detail) == ("wasm", "running", str(loop))
        await trio.sleep(0.05)  # let it spin
        started = time.monotonic()
        await ex.cancel("e1")
        elapsed = time.monotonic() - started
        result = await ex.wait("e1")
        await ex.cancel("e1")  # a no-op once ended
    assert elapsed < 1.0, elapsed
    assert result.termination is Termination.CANCELLED and result.error == "cancelled"
    assert result.status is ExecutionStatus.FAILED


async def test_cancel_abandons_a_module_blocked_in_a_host_call(tmp_path: Path) -> None:
    sleeper = module_file(tmp_path, "sleeper.wat", wat.ticker(2, 3000))  # tick, sleep 3 s
    async with make_executor(tmp_path).open() as ex:
        ex.cancel_grace = 0.2
        await ex.start(wasm_request(sleeper))
        await trio.sleep(0.1)
        started = time.monotonic()
        await ex.cancel("e1")
        elapsed = time.monotonic() - started
        result = await ex.wait("e1")
    assert 0.2 <= elapsed < 1.0
    assert result.termination is Termination.CANCELLED
    assert "abandoned" in result.error and result.stdout == "tick 0\n"


async def test_memory_cap_reports_oom(tmp_path: Path) -> None:
    grow = module_file(tmp_path, "grow.wat", wat.GROW)
    big = module_file(tmp_path, "big.wat", wat.BIG_MEMORY)
    async with make_executor(tmp_path).open() as ex:
        result = await ex.run(wasm_request(grow, ram=4 << 20))
        at_start = await ex.run(wasm_request(big, "e2", ram=1 << 20))
        uncapped = await ex.run(wasm_request(big, "e3"))
    # memory.grow was refused at the cap; the module aborted (as Rust's allocator does).
    assert result.termination is Termination.OOM_KILLED
    assert result.stderr == "memory.grow refused\n"
    assert "of its 4 MiB cap" in result.error and "unreachable" in result.error
    # Declaring more initial memory than the cap: cannot start at all.
    assert at_start.termination is Termination.OOM_KILLED and at_start.exit_code == -1
    assert "initial linear memory is above its 1 MiB cap" in at_start.error
    assert uncapped.status is ExecutionStatus.SUCCESS


async def test_logs_tail_and_follow(tmp_path: Path) -> None:
    ticker = module_file(tmp_path, "ticker.wat", wat.ticker(5, 60))
    async with make_executor(tmp_path).open() as ex:
        await ex.start(wasm_request(ticker))
        chunks: list[tuple[LogChunk, ExecutionStatus]] = []
        async for chunk in ex.logs("e1", follow=True):
            chunks.append((chunk, await ex.status("e1")))
        stdout = b"".join(c.data for c, _ in chunks if c.stream == "stdout")
        assert stdout == b"".join(b"tick %d\n" % i for i in range(5))
        assert b"".join(c.data for c, _ in chunks if c.stream == "stderr") == b"done\n"
        assert chunks[0][1] is ExecutionStatus.RUNNING  # streamed while it ran
        assert (await ex.wait("e1")).status is ExecutionStatus.SUCCESS

        async def collect(**kwargs: object) -> dict[str, bytes]:
            out = {"stdout": b"", "stderr": b""}
            async for chunk in ex.logs("e1", **kwargs):  # type: ignore[arg-type]
                out[chunk.stream] += chunk.data
            return out

        assert await collect(tail=2) == {"stdout": b"tick 3\ntick 4\n", "stderr": b"done\n"}
        assert await collect(tail=0) == {"stdout": b"", "stderr": b""}
        assert (await collect())["stdout"] == stdout
        assert (await collect(tail=1, follow=True))["stdout"] == b"tick 4\n"  # ended: returns
        with pytest.raises(ExecutionNotFound):
            async for _ in ex.logs("nope"):
                pass


async def test_result_output_is_bounded_but_files_keep_everything(tmp_path: Path) -> None:
    spew = module_file(tmp_path, "spew.wat", wat.spew(300))  # 1.2 MB
    async with make_executor(tmp_path).open() as ex:
        result = await ex.run(wasm_request(spew))
        assert len(result.stdout) == OUTPUT_LIMIT and set(result.stdout) == {"x"}
        assert (ex.executions_dir / "e1" / "stdout.log").stat().st_size == 300 * 4096


async def test_concurrent_executions_all_complete(tmp_path: Path) -> None:
    modules = [module_file(tmp_path, f"exit{code}.wat", wat.hello(code)) for code in range(3)]
    results: dict[str, ExecutionResult] = {}
    async with make_executor(tmp_path).open() as ex:  # 20 worker threads at once

        async def one(i: int) -> None:
            await ex.start(wasm_request(modules[i % 3], f"e{i}"))
            results[f"e{i}"] = await ex.wait(f"e{i}")

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(one, i)
    assert len(results) == 20
    for i in range(20):
        assert results[f"e{i}"] == ExecutionResult(i % 3, "hello\n", "warn\n")
    assert ex.compiled.misses <= 20 and ex.compiled.hits + ex.compiled.misses == 20


async def test_executions_beyond_the_thread_limit_wait_pending(tmp_path: Path) -> None:
    loop = module_file(tmp_path, "loop.wat", wat.LOOP)
    async with make_executor(tmp_path, wasm_max_concurrent=2).open() as ex:
        for i in range(4):
            await ex.start(wasm_request(loop, f"e{i}"))  # returns at once even when queued
        await trio.sleep(0.02)
        statuses = [await ex.status(f"e{i}") for i in range(4)]
        assert statuses == [ExecutionStatus.RUNNING] * 2 + [ExecutionStatus.PENDING] * 2
        started = time.monotonic()
        await ex.cancel("e3")  # queued: dropped without ever getting a thread
        await ex.cancel("e0")  # frees a thread: e2 runs
        await trio.sleep(0.02)
        assert await ex.status("e2") is ExecutionStatus.RUNNING
        for i in (1, 2):
            await ex.cancel(f"e{i}")
        assert time.monotonic() - started < 1.0
        results = [await ex.wait(f"e{i}") for i in range(4)]
    assert all(r.termination is Termination.CANCELLED for r in results)


async def test_ids_remove_and_unsupported_operations(tmp_path: Path) -> None:
    hello = module_file(tmp_path, "hello.wat", wat.hello())
    loop = module_file(tmp_path, "loop.wat", wat.LOOP)
    async with make_executor(tmp_path).open() as ex:
        await ex.run(wasm_request(hello))
        with pytest.raises(ExecutionExists):
            await ex.start(wasm_request(hello))
        refused: list[str] = []

        async def start_twin() -> None:
            try:
                await ex.start(wasm_request(hello, "twin"))
            except ExecutionExists:
                refused.append("twin")

        async with trio.open_nursery() as nursery:  # both prepare at once: one wins
            nursery.start_soon(start_twin)
            nursery.start_soon(start_twin)
        assert refused == ["twin"] and (await ex.wait("twin")).exit_code == 0
        await ex.remove("twin")
        with pytest.raises(InvalidSpec, match="provision scripts need a shell"):
            await ex.start(replace(wasm_request(hello, "p"), provision_scripts=[("a.sh", b"")]))
        with pytest.raises(InvalidSpec, match="ports are refused"):
            await ex.start(replace(wasm_request(hello, "p"), ports=[PortBinding(8080, 80)]))
        for operation in (ex.exec("e1", ["sh"]), ex.pause("e1"), ex.resume("e1")):
            with pytest.raises(Unsupported):
                await operation
        await ex.remove("e1")
        assert not (ex.executions_dir / "e1").exists()
        with pytest.raises(ExecutionNotFound):
            await ex.wait("e1")
        # An ID that is not a safe file name still gets a directory inside executions/.
        await ex.run(wasm_request(hello, "../../escape"))
        [directory] = ex.executions_dir.iterdir()
        assert directory.name.startswith("_.._escape-")
        # Removing a running execution cancels it first.
        await ex.start(wasm_request(loop, "spin"))
        await ex.remove("spin")
        assert [e.execution_id for e in await ex.list_executions()] == ["../../escape"]


async def test_cleanup_removes_only_this_executors_work(tmp_path: Path) -> None:
    loop = module_file(tmp_path, "loop.wat", wat.LOOP)
    hello = module_file(tmp_path, "hello.wat", wat.hello())
    ex = make_executor(tmp_path)
    foreign = ex.executions_dir / "someone-else"
    foreign.mkdir(parents=True)
    (foreign / ".nunet-executor").write_text('{"executor": "wasm", "executor_id": "other"}')
    async with ex.open():
        await ex.run(wasm_request(hello, "done"))
        await ex.start(wasm_request(loop, "spinning"))
        results: list[ExecutionResult] = []
        async with trio.open_nursery() as nursery:

            async def waiter() -> None:
                results.append(await ex.wait("spinning"))

            nursery.start_soon(waiter)
            await trio.sleep(0.02)
            await ex.cleanup()
        assert results[0].termination is Termination.CANCELLED
        assert await ex.list_executions() == []
        assert await ex.recover() == []
    assert [p.name for p in ex.executions_dir.iterdir()] == ["someone-else"]


async def test_leaving_the_block_cancels_running_modules(tmp_path: Path) -> None:
    loop = module_file(tmp_path, "loop.wat", wat.LOOP)
    ex = make_executor(tmp_path)
    started = time.monotonic()
    async with ex.open():
        await ex.start(wasm_request(loop))
    assert time.monotonic() - started < 1.0
    result = ex.executions.get("e1").result
    assert result is not None and result.termination is Termination.CANCELLED
    assert result.error == "cancelled: the executor shut down"
    # Files stay for post-mortems; a new executor adopts nothing.
    assert (ex.executions_dir / "e1" / "stdout.log").exists()
    async with make_executor(tmp_path).open() as again:
        assert await again.recover() == []
