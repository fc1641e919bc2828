"""Sub-commands loaded on first use, so ``nunet version`` does not pay for ``nunet run``.

Why: every ``nunet`` invocation is a new process. Importing every command module up front
loads the daemon, the actor layer, trio, libp2p and the executors (over half a second) even
for a command that prints one line. The root group therefore knows its sub-commands only by
name, module and one line of help (:class:`LazyCommand`); a command's module is imported when
that command is run, or its own ``--help`` is shown. ``nunet --help`` lists the one-line helps
without importing anything.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

from dms.cli._persistent import PersistentFlagsGroup


@dataclass(frozen=True)
class LazyCommand:
    """A sub-command of the root: where it lives and what ``nunet --help`` says about it.

    ``attr`` names either a :class:`typer.Typer` (a command group) or a function (a single
    command, registered the way ``app.command(name)(function)`` would).
    """

    name: str
    module: str
    attr: str
    help: str


def load(entry: LazyCommand) -> _click.Command:
    """Import ``entry``'s module and build its click command (typer's own conversion)."""
    target: Any = getattr(importlib.import_module(entry.module), entry.attr)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(entry.name)(target)
        command = typer.main.get_command(single)
    command.name = entry.name
    _lighten_tree(command)
    return command


def _lighten_tree(command: _click.Command) -> None:
    """Every command under ``command`` gets lightened parameters (``--help`` too)."""
    get_params = command.get_params
    setattr(command, "get_params", lambda ctx: lighten(get_params(ctx)))  # noqa: B010
    for sub in getattr(command, "commands", {}).values():
        _lighten_tree(sub)


class _Listed(TyperCommand):
    """Stands for a lazy command in the root's help listing: a name and one line of help."""

    def __init__(self, entry: LazyCommand) -> None:
        super().__init__(entry.name, help=entry.help, short_help=entry.help)


class _PlainCoercion:
    """Coerces a flag, a string or a path parameter as typer would, without pydantic.

    typer (0.2x) coerces every parameter, ``--help`` included, through a pydantic
    ``TypeAdapter`` built on first use even when the option was not given: importing pydantic
    and building adapters costs more than the whole of ``nunet version`` otherwise, and a
    command like ``key did`` that needs pydantic for its configuration still pays ~30 ms of
    adapters and plugin discovery. Flags, strings and paths need no validation, so
    :func:`lighten` coerces them here (typer calls
    ``param.get_runtime_param().coerce(value, param=..., ctx=...)``); other types (numbers
    with bounds, lists) keep typer's own coercion.
    """

    def __init__(self, kind: type) -> None:
        self.kind = kind

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        return None if value is None else self.kind(value)


#: Annotations coerced without pydantic, and how (typer's adapter would do the same for these).
_PLAIN: dict[Any, type] = {bool: bool, str: str, str | None: str, Path: Path, Path | None: Path}


def lighten(params: list[_click.Parameter]) -> list[_click.Parameter]:
    """``params`` with their bool, str and path parameters coerced without pydantic."""
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None:
            continue
        kind = _PLAIN.get(descriptor.annotation)
        if kind is not None:
            setattr(param, "get_runtime_param", lambda kind=kind: _PlainCoercion(kind))  # noqa: B010
    return params


class LightCommand(TyperCommand):
    """A command with flags and paths only, that starts without pydantic (see :func:`lighten`)."""

    def get_params(self, ctx: _click.Context) -> list[_click.Parameter]:
        return lighten(super().get_params(ctx))


class LazyGroup(PersistentFlagsGroup, TyperGroup):
    """The root group: eager commands (``version``) plus :attr:`lazy` ones, imported on use."""

    lazy: tuple[LazyCommand, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._entries = {entry.name: entry for entry in self.lazy}
        self._loaded: dict[str, _click.Command] = {}
        self._listing = False

    def get_params(self, ctx: _click.Context) -> list[_click.Parameter]:
        return lighten(super().get_params(ctx))

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return [*self._entries, *(n for n in self.commands if n not in self._entries)]

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        entry = self._entries.get(cmd_name)
        if entry is None:
            return self.commands.get(cmd_name)
        if self._listing:
            return _Listed(entry)
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = load(entry)
        return self._loaded[cmd_name]

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
