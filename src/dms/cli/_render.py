"""Printing behaviour replies: a readable view by default, raw JSON with ``--json``."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))


def render(payload: Any, *, as_json: bool, title: str | None = None) -> None:
    """Print a decoded reply payload (a dict becomes a two-column table on a terminal)."""
    if as_json or not sys.stdout.isatty():
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.console import Console  # only for a person at a terminal (start-up cost)
    from rich.table import Table

    console = Console(highlight=False, emoji=False)
    if isinstance(payload, dict) and payload:
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key, value in payload.items():
            table.add_row(str(key), _cell(value))
        console.print(table)
    else:
        if title:
            console.print(f"[bold]{title}[/bold]")
        console.print(json.dumps(payload, indent=2), markup=False)
