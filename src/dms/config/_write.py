"""Changing ``dms_config.json``: ``config set``, ``config edit`` and saving a whole config.

Every write validates first and then replaces the file atomically (``dms_config.tmp.json`` in the
same directory, fsync, rename, as the Go DMS does), so a crash or a bad value never leaves a
half-written or invalid config behind. ``set`` rewrites only the file's own content, with keys in
canonical spelling, and does not dump every default into it: a short file stays loadable by
Go DMS versions whose key sets differ from ours.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dms._files import atomic_write
from dms.config._load import (
    _set_in,
    config_to_json,
    parse_value_text,
    read_config_file,
    validate_config_data,
)
from dms.config._models import Config
from dms.config._paths import CONFIG_FILE_NAME, _environ, find_config_file, home_dir
from dms.config._schema import resolve_key
from dms.errors import ConfigError

__all__ = [
    "TEMP_FILE_NAME",
    "atomic_write_json",
    "default_config",
    "edit_config",
    "save_config",
    "set_config_value",
    "validate_config_file",
    "writable_config_path",
]

TEMP_FILE_NAME = "dms_config.tmp.json"


def _dump(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def atomic_write_bytes(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content`` via ``dms_config.tmp.json`` + fsync + rename.

    A new file is created ``0600`` (it may hold API keys); an existing file keeps its mode.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, content, tmp_name=TEMP_FILE_NAME, keep_mode=True)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc.strerror or exc}") from None


def atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON indented by 2 spaces, atomically."""
    atomic_write_bytes(path, _dump(data))


def writable_config_path(
    path: Path | None = None, *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path:
    """The file a write goes to: ``path``, else the file that would be read, else
    ``./dms_config.json`` (Go's first-write location)."""
    if path is not None:
        return path
    found = find_config_file(None, env=env, cwd=cwd)
    return found if found is not None else (Path.cwd() if cwd is None else cwd) / CONFIG_FILE_NAME


def default_config(env: Mapping[str, str] | None = None) -> Config:
    """The defaults, with ``$HOME`` expanded against ``env``'s home."""
    return validate_config_data({}, home=home_dir(env))


def set_config_value(
    path: Path | None,
    dotted_key: str,
    value_text: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path:
    """Set one key in the config file and return the file written.

    The value text is converted to the key's type (lists: JSON or comma-separated; objects:
    JSON), the whole resulting file is validated, and only then is it written. On any error the
    file is untouched and :class:`ConfigError` names the key. Environment overrides play no part:
    they change what a process sees, not what the file says.
    """
    info = resolve_key(dotted_key)
    target = writable_config_path(path, env=env, cwd=cwd)
    data: dict[str, Any] = read_config_file(target) if target.exists() else {}
    where = "given to config set"
    _set_in(data, info.path, parse_value_text(info, value_text, where))
    sources = {(): f"in config file {target}", info.path: where}
    config = validate_config_data(data, home=home_dir(env), where=sources)
    # Store the converted value ("9999" → 9999), in its JSON form.
    value: Any = config_to_json(config)
    for key in info.path:
        value = value[key]
    _set_in(data, info.path, value)
    atomic_write_json(target, data)
    return target


def save_config(config: Config, path: Path) -> Path:
    """Write a whole config (every key, canonical spelling) to ``path`` atomically."""
    atomic_write_json(path, config_to_json(config))
    return path


def validate_config_file(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Load one file on top of the defaults, without env overrides; raise on any problem."""
    return validate_config_data(
        read_config_file(path), home=home_dir(env), where=f"in config file {path}"
    )


def edit_config(
    path: Path | None = None,
    *,
    editor: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path:
    """Open the config file in an editor, then validate it; restore it if the edit is invalid.

    The editor is ``editor``, else ``$EDITOR``, else ``vi`` (split like a shell command line, so
    ``EDITOR="code --wait"`` works). A missing file is first created with the defaults, so there
    is something to edit. Returns the file edited.
    """
    environ = _environ(env)
    target = writable_config_path(path, env=environ, cwd=cwd)
    if not target.exists():
        save_config(default_config(environ), target)
    before = target.read_bytes()
    command = shlex.split(editor or environ.get("EDITOR", "") or "vi")
    try:
        result = subprocess.run([*command, str(target)], check=False)
    except OSError as exc:
        raise ConfigError(f"cannot run editor {command[0]!r}: {exc.strerror or exc}") from None
    problem: str | None = None
    if result.returncode != 0:
        problem = f"editor {command[0]!r} exited with status {result.returncode}"
    else:
        try:
            validate_config_file(target, environ)
        except ConfigError as exc:
            problem = str(exc)
    if problem is not None:
        if not target.exists() or target.read_bytes() != before:
            atomic_write_bytes(target, before)
        raise ConfigError(f"{problem}; {target} restored to its previous content")
    return target
