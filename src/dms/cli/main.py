"""The ``nunet`` command: one Typer app with a sub-app per Go DMS command group.

The CLI holds no business logic: each command parses its flags, calls the core, and prints. An
expected failure (:class:`dms.errors.DMSError`) becomes one ``error: ...`` line on stderr and a
non-zero exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dms import __version__
from dms.cli import _actor, _cap, _config, _deploy, _devnet, _executor, _gpu, _key, _run, _validate
from dms.cli._common import set_config_path
from dms.errors import DMSError

app = typer.Typer(
    name="nunet",
    help="NuNet Device Management Service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(_key.app, name="key")
app.add_typer(_cap.app, name="cap")
app.add_typer(_config.app, name="config")
app.command("run")(_run.run)
app.add_typer(_actor.app, name="actor")
app.add_typer(_devnet.app, name="devnet")
app.add_typer(_executor.app, name="executor")
app.add_typer(_gpu.app, name="gpu")
app.command("deploy")(_deploy.deploy)
app.add_typer(_deploy.get_app, name="get")
app.add_typer(_deploy.deploy_app, name="deployment")
app.command("validate")(_validate.validate)


@app.callback()
def root(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Path to dms_config.json (default: the search path)."),
    ] = None,
) -> None:
    """NuNet Device Management Service."""
    set_config_path(config)


@app.command()
def version() -> None:
    """Print the DMS version."""
    typer.echo(f"nunet-dms {__version__}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning DMSError into one line on stderr.

    Click's standalone mode already prints usage errors as one line and exits 2; everything
    the core raises as :class:`DMSError` is printed here the same way.
    """
    try:
        app(args=argv, prog_name="nunet")
    except DMSError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BaseExceptionGroup as group:
        # Trio wraps what fails inside a nursery (a daemon component that cannot start, an
        # executor that cannot run...) in a group, often beside the Cancelled its siblings got;
        # the user gets the first expected failure's line, as for a bare DMSError.
        first = _first_dms_error(group)
        if first is None:
            raise
        typer.echo(f"error: {first}", err=True)
        sys.exit(first.exit_code)


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
