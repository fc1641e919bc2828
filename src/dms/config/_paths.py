"""Where ``dms_config.json`` is looked for, with the standard library only.

Kept apart from the loader (which builds the pydantic models) so that a command that only needs
a directory or the REST address can find out whether a config file is in play without paying
for the models: see :mod:`dms.config._client`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from dms.errors import ConfigError

__all__ = [
    "CONFIG_FILE_NAME",
    "config_search_paths",
    "expand_home",
    "find_config_file",
    "home_dir",
]

CONFIG_FILE_NAME = "dms_config.json"


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def expand_home(value: str, home: str) -> str:
    """Expand a leading ``~`` and every ``$HOME``/``${HOME}``, as a shell would for defaults."""
    if value == "~" or value.startswith("~/"):
        value = home + value[1:]
    return value.replace("${HOME}", home).replace("$HOME", home)


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$HOME`` of ``env`` if set, else the process' home: what ``$HOME`` in defaults means."""
    home = _environ(env).get("HOME")
    return Path(home) if home else Path.home()


def config_search_paths(
    env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> list[Path]:
    """Where Go's DMS looks for ``dms_config.json``, in order (spec §5).

    ``./``, ``$HOME/.nunet/``, ``os.UserConfigDir()/nunet/`` (``$XDG_CONFIG_HOME`` when set and
    absolute, else ``~/.config``), then ``/etc/nunet/`` except on Windows.
    """
    environ = _environ(env)
    home = home_dir(env)
    here = Path.cwd() if cwd is None else cwd
    xdg = environ.get("XDG_CONFIG_HOME", "")
    user_config = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".config"
    paths = [
        here / CONFIG_FILE_NAME,
        home / ".nunet" / CONFIG_FILE_NAME,
        user_config / "nunet" / CONFIG_FILE_NAME,
    ]
    if sys.platform != "win32":
        paths.append(Path("/etc/nunet") / CONFIG_FILE_NAME)
    return paths


def find_config_file(
    path: Path | None = None, *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path | None:
    """The config file to read: ``path`` if given (it must exist, as with Go's ``--config``),
    else the first existing file of :func:`config_search_paths`, else ``None`` (defaults)."""
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    for candidate in config_search_paths(env, cwd):
        if candidate.is_file():
            return candidate
    return None
