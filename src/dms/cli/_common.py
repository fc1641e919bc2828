"""What every ``nunet`` command shares: the config path, the user dir, passphrases, output.

The root command stores ``--config`` here (:func:`set_config_path`) so sub-commands resolve the
same configuration the way the Go CLI's persistent flag does. The root runs this module for
every command, so it imports the configuration and key modules only when they are used.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from dms.errors import InvalidInput

if TYPE_CHECKING:
    from dms.config import ClientSettings

_state: dict[str, Path | None] = {"config_path": None}


def set_config_path(path: Path | None) -> None:
    """Remember the root ``--config`` flag for this invocation."""
    _state["config_path"] = path


def config_path() -> Path | None:
    """The root ``--config`` flag, if given."""
    return _state["config_path"]


def settings() -> ClientSettings:
    """``general.user_dir``, ``rest.addr`` and ``rest.port`` of the effective configuration
    (read without building the config models when the inputs are the usual ones)."""
    from dms.config import client_settings  # loaded by the commands that need it

    return client_settings(config_path())


def user_dir() -> Path:
    """``general.user_dir`` of the effective configuration (keys and contexts live there)."""
    return settings().user_dir


def passphrase_reader(name: str) -> Callable[[bool], str]:
    """A ``reader(confirm)`` for key ``name``: ``DMS_PASSPHRASE`` or a prompt on the terminal."""

    def read(confirm: bool) -> str:
        from dms.crypto import read_passphrase

        return read_passphrase(confirm=confirm, name=name)

    return read


def info(message: str) -> None:
    """Progress for a person, on stderr, so stdout stays clean for scripts."""
    typer.echo(message, err=True)


def print_json(value: Any) -> None:
    """Pretty JSON on stdout."""
    typer.echo(json.dumps(value, indent=2))


def confirm_overwrite(what: str, force: bool) -> None:
    """Ask before replacing ``what``; without a terminal, ``--force`` is required."""
    if force:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(f"{what} already exists; pass --force to overwrite it")
    if not typer.confirm(f"{what} already exists. Overwrite it?", default=False, err=True):
        raise InvalidInput("operation cancelled by user")


def read_json_arg(text: str) -> str:
    """A JSON argument as text: ``-`` reads standard input, ``@FILE`` a file, else as is."""
    if text == "-":
        return sys.stdin.read()
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_text()
        except OSError as exc:
            raise InvalidInput(f"cannot read {text[1:]}: {exc.strerror}") from None
    return text
