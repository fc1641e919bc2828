"""The ``nunet`` command: one Typer app with a sub-app per Go DMS command group.

The CLI holds no business logic: each command parses its flags, calls the core, and prints. An
expected failure (:class:`dms.errors.DMSError`) becomes one ``error: ...`` line on stderr and a
non-zero exit; anything else is a bug and keeps its traceback.

Start-up is kept to what the command needs: sub-commands are imported on first use
(:mod:`dms.cli._lazy`), so ``nunet version`` and ``nunet --help`` load typer and nothing of the
DMS. Exit codes (README "Exit codes"): 0 ok, 1 refused or failed, 2 usage, 124 timed out,
130 interrupted; ``nunet executor run`` adds the execution's own.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dms import __version__
from dms.cli._lazy import LazyCommand, LazyGroup, LightCommand
from dms.cli._persistent import CONTEXT_FLAG
from dms.errors import DMSError, NetworkTimeout

#: Exit status of a command that timed out (as ``timeout(1)``) or was interrupted (128 + SIGINT).
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130

#: Every sub-command but ``version``, in the order ``nunet --help`` lists them. The one-line
#: helps are the modules' own (a test keeps them equal), so listing them imports nothing.
COMMANDS: tuple[LazyCommand, ...] = (
    LazyCommand(
        "key", "dms.cli._key", "app", "Manage cryptographic keys: each key is an identity (a DID)."
    ),
    LazyCommand(
        "cap",
        "dms.cli._cap",
        "app",
        "Manage capability contexts: trust anchors and capability tokens.",
    ),
    LazyCommand(
        "config",
        "dms.cli._config",
        "app",
        "Show and change the DMS configuration (dms_config.json).",
    ),
    LazyCommand(
        "run",
        "dms.cli._run",
        "run",
        "Run the Device Management Service in the foreground (Ctrl-C stops it).",
    ),
    LazyCommand(
        "actor",
        "dms.cli._actor",
        "app",
        "Send messages to actors through a running DMS (signed with your capability context).",
    ),
    LazyCommand(
        "devnet", "dms.cli._devnet", "app", "A local DMS network on loopback, for trying things."
    ),
    LazyCommand(
        "executor", "dms.cli._executor", "app", "Run allocations on this machine's executors."
    ),
    LazyCommand("gpu", "dms.cli._gpu", "app", "GPUs of this machine: list them, test them."),
    LazyCommand(
        "tap",
        "dms.cli._tap",
        "tap",
        "Create a TAP interface for VMs, with forwarding and NAT to the host's network.",
    ),
    LazyCommand(
        "deploy",
        "dms.cli._deploy",
        "deploy",
        "Deploy an ensemble through the local DMS and follow it until it runs or ends.",
    ),
    LazyCommand("get", "dms.cli._deploy", "get_app", "List deployments or allocations."),
    LazyCommand("deployment", "dms.cli._deploy", "deploy_app", "Inspect and control deployments."),
    LazyCommand(
        "validate",
        "dms.cli._validate",
        "validate",
        "Check an ensemble file and print every problem with its line.",
    ),
)


class NunetGroup(LazyGroup):
    """The root: lazy sub-commands; ``-c/--context`` before one that signs is passed down."""

    lazy = COMMANDS
    persistent = CONTEXT_FLAG
    persistent_for = frozenset({"actor", "deploy", "get", "deployment"})


app = typer.Typer(
    name="nunet",
    cls=NunetGroup,
    help="NuNet Device Management Service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Path to dms_config.json (default: the search path)."),
    ] = None,
) -> None:
    """NuNet Device Management Service."""
    from dms.cli._common import set_config_path

    set_config_path(config)


@app.command(cls=LightCommand)
def version() -> None:
    """Print the DMS version."""
    typer.echo(f"nunet-dms {__version__}")


def _exit_code(error: DMSError) -> int:
    return EXIT_TIMEOUT if isinstance(error, NetworkTimeout) else error.exit_code


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning DMSError into one line on stderr.

    Click's standalone mode already prints usage errors as one line and exits 2 (and typer
    turns Ctrl-C into 130); everything the core raises as :class:`DMSError` is printed here the
    same way, a timeout with status 124.
    """
    try:
        app(args=argv, prog_name="nunet")
    except DMSError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(_exit_code(exc))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except BaseExceptionGroup as group:
        # Trio wraps what fails inside a nursery (a daemon component that cannot start, an
        # executor that cannot run...) in a group, often beside the Cancelled its siblings got;
        # the user gets the first expected failure's line, as for a bare DMSError.
        first = _first_dms_error(group)
        if first is None:
            if group.subgroup(KeyboardInterrupt) is not None:
                sys.exit(EXIT_INTERRUPTED)
            raise
        typer.echo(f"error: {first}", err=True)
        sys.exit(_exit_code(first))


def _first_dms_error(error: BaseException) -> DMSError | None:
    if isinstance(error, DMSError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _first_dms_error(inner)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    main()
