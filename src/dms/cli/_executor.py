"""``nunet executor list|run|cleanup``: the executors of this machine, used directly.

``list`` answers "can this machine run docker / wasm allocations, and if not, why?". ``run``
runs one allocation block of an ensemble here, through the very executor a deployment would
use (same limits, labels, logs), so a user can check that an allocation works before
deploying it. Loading and running live in :mod:`dms.jobs` (shared with deployments); this
module only parses flags and prints. Output streams live; the last line on stderr says how it
ended, and the exit status is the execution's (137 when killed for memory, 124 when stopped by
a CPU or time limit, 130 when interrupted), as ``docker run`` and ``timeout`` do.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    ExecutionResult,
    ExecutorRegistry,
    ExecutorSettings,
    LogChunk,
    Termination,
)

if TYPE_CHECKING:
    from dms.jobs import LocalAllocation

app = typer.Typer(no_args_is_help=True, help="Run allocations on this machine's executors.")

#: Executor ID of runs started from the CLI; ``nunet executor cleanup`` removes their leftovers.
CLI_EXECUTOR_ID = "nunet-cli"


def _settings() -> ExecutorSettings:
    config = load_config(config_path())
    return ExecutorSettings(
        executor_id=CLI_EXECUTOR_ID,
        work_dir=config.general.work_dir / "cli-executions",
        allow_privileged=config.job.allow_privileged_docker,
        # The user runs their own spec on their own machine: their LAN is theirs to fetch from,
        # and a module path in it names their own file.
        extra={"wasm_fetch_private_addresses": True, "wasm_allow_host_paths": True},
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
    from dms.subnet import subnet_capability  # only this command needs it (start-up cost)

    subnets = subnet_capability()
    typer.echo(  # one line, never wrapped to the terminal
        "subnets (a private network between an ensemble's allocations): "
        + ("yes" if subnets.available else f"no: {subnets.reason}")
    )


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


def _print_chunk(chunk: LogChunk) -> None:
    out = sys.stdout if chunk.stream == "stdout" else sys.stderr
    out.buffer.write(chunk.data)
    out.flush()


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
    from dms.jobs import exit_status, load_allocation, run_allocation  # only this command

    try:
        text = file.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}") from None
    alloc = load_allocation(text, allocation, base_dir=file.resolve().parent)
    limit = parse_duration_ns(timeout) / 1e9 if timeout else None
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("dms.executor").setLevel(logging.INFO)  # image pull progress
    done = trio.run(
        partial(
            run_allocation,
            alloc,
            _settings(),
            timeout=limit,
            on_output=None if json_out else _print_chunk,
            cancel_on_signals=True,
            on_started=lambda execution: typer.echo(
                f"allocation {alloc.name!r} ({alloc.executor}) started as {execution}", err=True
            ),
        )
    )
    if json_out:
        typer.echo(gojson.marshal(done.result).decode())
    typer.echo(_describe(alloc, done.result, done.seconds), err=True)
    raise typer.Exit(exit_status(done.result))


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
