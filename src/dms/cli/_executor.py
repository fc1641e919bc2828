"""``nunet executor list|run|cleanup``: the executors of this machine, used directly.

``list`` answers "can this machine run docker / wasm allocations, and if not, why?". ``run``
runs one allocation block of an ensemble here, through the very executor a deployment would
use (same limits, labels, logs), so a user can check that an allocation works before
deploying it. Output streams live; the last line on stderr says how it ended, and the exit
status is the execution's (137 when killed for memory, 124 when stopped by a CPU or time limit,
130 when interrupted), as ``docker run`` and ``timeout`` do.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import trio
import typer
from rich.console import Console
from rich.table import Table

from dms import gojson
from dms.cli._common import config_path
from dms.cli._timeparse import parse_duration_ns
from dms.config import load_config
from dms.errors import InvalidInput
from dms.executor import (
    ExecutionRequest,
    ExecutionResult,
    Executor,
    ExecutorRegistry,
    ExecutorSettings,
    Termination,
)
from dms.executor._local import LocalAllocation, load_allocation

app = typer.Typer(no_args_is_help=True, help="Run allocations on this machine's executors.")

#: Executor ID of runs started from the CLI; ``nunet executor cleanup`` removes their leftovers.
CLI_EXECUTOR_ID = "nunet-cli"

_EXIT_CODES = {
    Termination.OOM_KILLED: 137,
    Termination.CPU_LIMIT: 124,
    Termination.CANCELLED: 130,
    Termination.ERROR: 1,
}


def _settings() -> ExecutorSettings:
    config = load_config(config_path())
    return ExecutorSettings(
        executor_id=CLI_EXECUTOR_ID,
        work_dir=config.general.work_dir / "cli-executions",
        allow_privileged=config.job.allow_privileged_docker,
        # The user runs their own spec on their own machine: their LAN is theirs to fetch from.
        extra={"wasm_fetch_private_addresses": True},
    )


@app.command("list")
def list_executors(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show which executors can run on this machine, and why the others cannot."""
    found = ExecutorRegistry().probe_all()
    if json_out:
        typer.echo(
            gojson.marshal(
                [
                    gojson.Struct(
                        [("name", f.name), ("available", f.available), ("reason", f.reason)]
                    )
                    for f in found
                ]
            ).decode()
        )
        return
    table = Table("executor", "available", "why not")
    for f in found:
        table.add_row(f.name, "yes" if f.available else "no", f.reason)
    Console().print(table)


def _describe(alloc: LocalAllocation, result: ExecutionResult, seconds: float) -> str:
    head = f"allocation {alloc.name!r} ({alloc.executor})"
    match result.termination:
        case Termination.EXITED:
            return f"{head} exited with code {result.exit_code} in {seconds:.2f} s"
        case Termination.OOM_KILLED:
            return f"{head} was killed: out of memory ({result.error or 'memory limit reached'})"
        case Termination.CPU_LIMIT:
            return f"{head} was stopped by its limit: {result.error or 'CPU budget spent'}"
        case Termination.CANCELLED:
            return f"{head} was interrupted"
        case _:
            return f"{head} failed: {result.error or 'unknown error'}"


def exit_status(result: ExecutionResult) -> int:
    """The process exit status that reports ``result`` (see the module docstring)."""
    if result.termination is Termination.EXITED:
        return result.exit_code if 0 <= result.exit_code <= 255 else 1
    return _EXIT_CODES[result.termination]


async def _stream_logs(executor: Executor, execution_id: str) -> None:
    async for chunk in executor.logs(execution_id, follow=True):
        out = sys.stdout if chunk.stream == "stdout" else sys.stderr
        out.buffer.write(chunk.data)
        out.flush()


async def _run(
    alloc: LocalAllocation, settings: ExecutorSettings, timeout: float | None, stream: bool
) -> tuple[ExecutionResult, float]:
    executor = ExecutorRegistry().create(alloc.executor, settings)
    executor.validate(alloc.spec)
    request = ExecutionRequest(
        job_id=alloc.name,
        execution_id=f"{alloc.name}-{uuid.uuid4().hex[:8]}",
        spec=alloc.spec,
        resources=alloc.resources,
    )
    started = time.monotonic()
    timed_out: list[bool] = []
    async with executor.open():
        await executor.start(request)
        try:
            async with trio.open_nursery() as nursery:

                async def on_signal() -> None:
                    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            await executor.cancel(request.execution_id)
                            return

                async def on_timeout() -> None:
                    if timeout is None:
                        return
                    await trio.sleep(timeout)
                    timed_out.append(True)
                    await executor.cancel(request.execution_id)

                nursery.start_soon(on_signal)
                nursery.start_soon(on_timeout)
                if stream:
                    await _stream_logs(executor, request.execution_id)
                result = await executor.wait(request.execution_id)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await executor.cancel(request.execution_id)
                await executor.remove(request.execution_id)
    if timed_out and result.termination is Termination.CANCELLED:
        result = replace(
            result, termination=Termination.CPU_LIMIT, error=f"--timeout of {timeout:g} s reached"
        )
    return result, time.monotonic() - started


@app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="YAML: an allocation block, or an ensemble.")],
    allocation: Annotated[
        str | None,
        typer.Option("--allocation", "-a", help="Which allocation of the ensemble to run."),
    ] = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", "-t", help="Stop it after this long (e.g. 30s).")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON instead of streaming.")
    ] = False,
) -> None:
    """Run one allocation here, with its resource limits, and stream its output."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}") from None
    alloc = load_allocation(text, allocation, base_dir=file.resolve().parent)
    limit = parse_duration_ns(timeout) / 1e9 if timeout else None
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("dms.executor").setLevel(logging.INFO)  # image pull progress
    result, seconds = trio.run(_run, alloc, _settings(), limit, not json_out)
    if json_out:
        typer.echo(gojson.marshal(result).decode())
    typer.echo(_describe(alloc, result, seconds), err=True)
    raise typer.Exit(exit_status(result))


@app.command("cleanup")
def cleanup(
    executor: Annotated[
        list[str] | None, typer.Option("--executor", "-e", help="Only these executors.")
    ] = None,
) -> None:
    """Remove everything ``nunet executor run`` left behind (after a crash or a kill -9)."""
    registry = ExecutorRegistry()
    settings = _settings()
    names = executor or registry.available()

    async def clean() -> None:
        for name in names:
            ex = registry.create(name, settings)
            async with ex.open():
                await ex.cleanup()
            typer.echo(f"{name}: cleaned up", err=True)

    trio.run(clean)
