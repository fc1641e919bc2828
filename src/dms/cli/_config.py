"""``nunet config get|set|edit``: read and change ``dms_config.json``.

Thin wrappers over :mod:`dms.config`: every rule (search order, validation, atomic writes, restore
after a bad edit) lives there; these commands parse arguments and print. Output is plain so it
can be piped (JSON for objects and lists, bare text for scalars); when stdout is a terminal,
JSON is syntax-highlighted with rich.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

from dms.cli._common import config_path
from dms.config import config_to_json, edit_config, load_config, set_config_value

app = typer.Typer(
    no_args_is_help=True,
    help="Show and change the DMS configuration (dms_config.json).",
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file to use instead of searching ./, ~/.nunet/, ~/.config/nunet/, "
        "/etc/nunet/ for dms_config.json.",
        dir_okay=False,
    ),
]


def _to_text(value: Any) -> str:
    """Scalars bare (booleans as Go prints them), objects and lists as indented JSON."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2, ensure_ascii=False)
    if value is None:
        return ""
    return str(value)


def _print_json_or_text(text: str, is_json: bool) -> None:
    if is_json and sys.stdout.isatty():
        Console().print_json(text)
    else:
        typer.echo(text)


@app.command("get")
def get_command(
    key: Annotated[
        str | None,
        typer.Argument(help="Dotted key, e.g. rest.port (case-insensitive). Omit for all."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the effective configuration (file + DMS_* environment overrides), or one key."""
    cfg = load_config(config or config_path())
    if key is None:
        _print_json_or_text(json.dumps(config_to_json(cfg), indent=2, ensure_ascii=False), True)
        return
    value = cfg.get(key)
    is_json = isinstance(value, (BaseModel, dict, list))
    _print_json_or_text(_to_text(value), is_json)


@app.command("set")
def set_command(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. rest.port.")],
    value: Annotated[
        str,
        typer.Argument(help="New value; lists as JSON or comma-separated, objects as JSON."),
    ],
    config: ConfigOption = None,
) -> None:
    """Validate a new value and write it to the config file atomically.

    Without --config the file that would be read is changed; if none exists yet,
    ./dms_config.json is created.
    """
    path = set_config_value(config or config_path(), key, value)
    typer.echo(f"{key} set in {path}")


@app.command("edit")
def edit_command(config: ConfigOption = None) -> None:
    """Open the config file in $EDITOR (default vi), then validate it.

    A missing file is first created with the defaults. If the edited file is invalid, its
    previous content is restored and the reason is reported.
    """
    path = edit_config(config or config_path())
    typer.echo(f"{path} is valid")
