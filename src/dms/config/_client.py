"""The three settings a CLI command needs, read without building the config models.

``nunet key ...`` needs ``general.user_dir``; ``nunet actor ...`` also ``rest.addr`` and
``rest.port``. Building the pydantic models costs more than the rest of such a command (pydantic
~30 ms, the models ~30-60 ms; ``bench/bench_cli_startup.py``), so :func:`client_settings` first
tries a reading that covers the usual cases with the standard library only, and hands anything
else to :func:`~dms.config.load_config`, so the answer, and every error, is the full loader's.

The quick reading applies only when every input is one whose validation it can repeat exactly:

* no ``--config`` path (the file must exist, its errors belong to the loader);
* no config file on the search path, or one that holds nothing but ``general.user_dir``,
  ``rest.addr`` and ``rest.port`` (any spelling case), as a string, a string and an integer in
  1..65535;
* no ``DMS_*`` variable that may name a config key (``DMS_<SECTION>`` or ``DMS_<SECTION>_*``)
  other than ``DMS_GENERAL_USER_DIR``, ``DMS_REST_ADDR`` and ``DMS_REST_PORT`` spelled in upper
  case, with a non-empty directory and a port of plain decimal digits in range; no
  ``BOOTSTRAP_PEERS``.

Otherwise (another key, an odd value, unreadable or invalid JSON, a lone surrogate, ...) the full
loader runs. ``tests/config/test_config_client.py`` compares both on every such case, and checks
that the section names and defaults repeated here match the models.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dms.config._paths import _environ, expand_home, find_config_file, home_dir

__all__ = ["ClientSettings", "client_settings"]

#: Top-level sections of ``Config``; a ``DMS_*`` variable naming a key starts with one of them.
SECTIONS = ("PROFILER", "GENERAL", "REST", "P2P", "JOB", "OBSERVABILITY", "APM", "COINMARKETCAP")
#: The models' defaults for the three settings (``GeneralConfig.user_dir``, ``RestConfig``).
DEFAULT_USER_DIR = "$HOME/.nunet"
DEFAULT_REST_ADDR = "127.0.0.1"
DEFAULT_REST_PORT = 9999

_USER_DIR_ENV = "DMS_GENERAL_USER_DIR"
_REST_ADDR_ENV = "DMS_REST_ADDR"
_REST_PORT_ENV = "DMS_REST_PORT"
_KEY_PREFIXES = tuple(f"DMS_{section}" for section in SECTIONS)
_PORT_TEXT = re.compile(r"[1-9][0-9]{0,4}")  # ASCII digits only, no sign, no leading zero


@dataclass(frozen=True)
class ClientSettings:
    """What the CLI reads from the effective configuration."""

    user_dir: Path
    rest_addr: str
    rest_port: int


class _Unusual(Exception):
    """An input the quick reading does not cover: the full loader decides."""


def client_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
) -> ClientSettings:
    """``general.user_dir``, ``rest.addr`` and ``rest.port`` of ``load_config(path, env, cwd)``.

    Same arguments, same answer and same errors as the full loader, which it falls back to for
    anything but the usual inputs (see the module docstring).
    """
    environ = _environ(env)
    try:
        return _quick(path, environ, cwd)
    except _Unusual:
        pass
    from dms.config._load import load_config

    config = load_config(path, environ, cwd=cwd)
    return ClientSettings(config.general.user_dir, config.rest.addr, config.rest.port)


def _quick(path: Path | None, env: Mapping[str, str], cwd: Path | None) -> ClientSettings:
    if path is not None:
        raise _Unusual
    values: dict[str, Any] = {
        "user_dir": DEFAULT_USER_DIR,
        "addr": DEFAULT_REST_ADDR,
        "port": DEFAULT_REST_PORT,
    }
    file = find_config_file(None, env=env, cwd=cwd)
    if file is not None:
        values.update(_from_file(file))
    values.update(_from_env(env))
    user_dir = Path(expand_home(values["user_dir"], str(home_dir(env))))
    return ClientSettings(user_dir, values["addr"], values["port"])


def _text(value: Any) -> str:
    """A string pydantic takes as it is (a lone surrogate is not one)."""
    if not isinstance(value, str):
        raise _Unusual
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unusual from None
    return value


def _port(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= 65535:
        raise _Unusual
    return value


def _section(raw: Any, allowed: set[str]) -> dict[str, Any]:
    """A section object with only ``allowed`` keys (matched case-insensitively, once each)."""
    if not isinstance(raw, dict):
        raise _Unusual
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.lower()
        if name not in allowed or name in out:
            raise _Unusual
        out[name] = value
    return out


def _from_file(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
        raw = json.loads(text) if text.strip() else {}
    except (OSError, UnicodeDecodeError, ValueError):
        raise _Unusual from None
    top = _section(raw, {"general", "rest"})
    out: dict[str, Any] = {}
    if "general" in top:
        general = _section(top["general"], {"user_dir"})
        if "user_dir" in general:
            out["user_dir"] = _text(general["user_dir"])
            if not out["user_dir"]:
                raise _Unusual
    if "rest" in top:
        rest = _section(top["rest"], {"addr", "port"})
        if "addr" in rest:
            out["addr"] = _text(rest["addr"])
        if "port" in rest:
            out["port"] = _port(rest["port"])
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    if env.get("BOOTSTRAP_PEERS", "").strip():
        raise _Unusual
    out: dict[str, Any] = {}
    for name, value in env.items():
        upper = name.upper()
        if not any(upper == p or upper.startswith(p + "_") for p in _KEY_PREFIXES):
            continue  # DMS_PASSPHRASE and the like: not config keys
        if name == _USER_DIR_ENV:
            user_dir = _text(value).strip()  # a path is trimmed, as the loader does
            if not user_dir:
                raise _Unusual
            out["user_dir"] = user_dir
        elif name == _REST_ADDR_ENV:
            out["addr"] = _text(value)  # a string key is taken as it is
        elif name == _REST_PORT_ENV:
            text = _text(value).strip()
            if not _PORT_TEXT.fullmatch(text):
                raise _Unusual
            out["port"] = _port(int(text))
        else:
            raise _Unusual
    return out
