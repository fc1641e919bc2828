"""Go's persistent flags: ``nunet actor cmd --context user /dms/node/peers/list`` works.

Why: the Go CLI (cobra) declares ``--context``, ``--dest``, ``--timeout`` and ``--expiry`` as
*persistent* flags of ``nunet actor cmd`` (and ``deploy`` / ``get ...`` take them the same way),
and cobra reads a command's flags wherever they stand on the line, before or after the
sub-command's name. Click reads a group's options only before the sub-command's name and
only its own ones, so the seeds' own example was refused with "No such option: -c".

A :class:`PersistentFlagsGroup` declares which options it passes down (:attr:`persistent`,
each with whether it takes a value). When one of them stands before the sub-command's name,
it is moved (with its value) to just after that name, where the sub-command, or the next group
down, reads it. Nothing else changes: an option the sub-command does not have is still refused
there, with click's usual message, and the group's own options (``--help``, ``--config``) stay
where they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from typer import _click


def _option_name(token: str) -> str:
    """``--context=user`` → ``--context``; ``-cuser`` → ``-c``; ``-c`` → ``-c``."""
    if token.startswith("--"):
        return token.split("=", 1)[0]
    return token[:2]


def _value_attached(token: str) -> bool:
    """Whether the option's value is in the same token (``--context=user``, ``-cuser``)."""
    if token.startswith("--"):
        return "=" in token
    return len(token) > 2


def hoist(
    args: Sequence[str],
    persistent: Mapping[str, bool],
    own: Mapping[str, bool],
    *,
    only_for: frozenset[str] | None = None,
) -> list[str]:
    """``args`` with the persistent options found before the sub-command moved after its name.

    ``persistent`` and ``own`` map option names (``--context``, ``-c``) to whether the option
    takes a value: ``own`` are the group's own options, left in place (their values are
    skipped, so ``--config FILE`` is never taken for a sub-command's name). ``only_for``
    limits the move to these sub-commands. Without a sub-command name, or after ``--``,
    ``args`` come back unchanged, so click reports what is wrong as it always did.
    """
    kept: list[str] = []
    moved: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            break
        if token.startswith("-") and token != "-":
            name = _option_name(token)
            if name in persistent:
                takes_value = persistent[name] and not _value_attached(token)
                moved.extend(args[i : i + 2] if takes_value else args[i : i + 1])
                i += 2 if takes_value else 1
                continue
            kept.append(token)
            if own.get(name) and not _value_attached(token) and i + 1 < len(args):
                kept.append(args[i + 1])
                i += 1
            i += 1
            continue
        if not moved or (only_for is not None and token not in only_for):
            break
        return [*kept, token, *moved, *args[i + 1 :]]
    return list(args)


def option_arity(params: Sequence[_click.Parameter]) -> dict[str, bool]:
    """Each option name of ``params`` → whether it takes a value (flags do not)."""
    names: dict[str, bool] = {}
    for param in params:
        if param.param_type_name == "option":
            takes_value = not getattr(param, "is_flag", False) and not getattr(param, "count", 0)
            for name in (*param.opts, *param.secondary_opts):
                names[name] = takes_value
    return names


#: The message options of ``nunet actor cmd`` (Go's ``useMessageOptsFlags(cmd, true)``) and
#: ``--json``: name → whether it takes a value.
MESSAGE_FLAGS: Mapping[str, bool] = {
    "--context": True,
    "-c": True,
    "--dest": True,
    "-d": True,
    "--timeout": True,
    "-t": True,
    "--expiry": True,
    "-e": True,
    "--json": False,
}
#: What ``get`` and ``deployment`` pass down: the signing context, and ``--json``.
CONTEXT_JSON_FLAGS: Mapping[str, bool] = {"--context": True, "-c": True, "--json": False}
#: What the root passes down (Go's own example: ``nunet -c alice deploy -f foo.yaml``).
CONTEXT_FLAG: Mapping[str, bool] = {"--context": True, "-c": True}


class PersistentFlagsGroup(_click.Command):
    """A group that passes :attr:`persistent` options given before a sub-command down to it.

    Mixed in before :class:`typer.core.TyperGroup`; :attr:`persistent_for` (if set) limits
    the move to these sub-commands.
    """

    persistent: Mapping[str, bool] = {}
    persistent_for: frozenset[str] | None = None

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        if self.persistent:
            args = hoist(
                args,
                self.persistent,
                option_arity(self.get_params(ctx)),
                only_for=self.persistent_for,
            )
        return super().parse_args(ctx, args)


def persistent_group(
    flags: Mapping[str, bool], only_for: frozenset[str] | None = None
) -> type[Any]:
    """A :class:`typer.core.TyperGroup` class passing ``flags`` down (for ``typer.Typer(cls=)``)."""
    from typer.core import TyperGroup

    return type(
        "PersistentGroup",
        (PersistentFlagsGroup, TyperGroup),
        {"persistent": flags, "persistent_for": only_for},
    )
