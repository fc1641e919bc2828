"""``nunet validate FILE``: check an ensemble before deploying it, every problem at once.

Prints ``FILE: valid (N allocations on M nodes)``, or one line per problem
(``FILE: path (line N): message``) and exits 1. ``--json`` prints
``{"file", "valid", "allocations", "nodes", "problems": [{"path", "line", "message"}]}``.
Local WASM modules are read as ``nunet deploy`` would send them (size cap, pinned hash).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dms import gojson

if TYPE_CHECKING:
    from dms.jobs import Ensemble, Problem


def check_ensemble(file: Path) -> tuple[Ensemble | None, list[Problem]]:
    """The ensemble in ``file`` as ``nunet deploy`` sends it, or None and every problem; an
    unreadable file raises :class:`~dms.errors.InvalidInput`."""
    from dms.jobs import EnsembleInvalid, load_ensemble_file  # loaded only when used

    try:
        return load_ensemble_file(file), []
    except EnsembleInvalid as exc:
        return None, exc.problems


def validate(
    file: Annotated[Path, typer.Argument(help="The ensemble YAML to check.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check an ensemble file and print every problem with its line."""
    ensemble, problems = check_ensemble(file)
    if json_out:
        typer.echo(
            gojson.marshal(
                gojson.Struct(
                    file=str(file),
                    valid=ensemble is not None,
                    allocations=len(ensemble.allocations) if ensemble else 0,
                    nodes=len(ensemble.nodes) if ensemble else 0,
                    problems=[
                        gojson.Struct(path=p.path, line=p.line, message=p.message) for p in problems
                    ],
                )
            ).decode()
        )
    elif ensemble is not None:
        typer.echo(
            f"{file}: valid ({len(ensemble.allocations)} allocations "
            f"on {len(ensemble.nodes)} nodes)"
        )
    else:
        for problem in problems:
            typer.echo(f"{file}: {problem}")
    if ensemble is None:
        raise typer.Exit(1)
