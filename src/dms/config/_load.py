"""Finding, reading and validating ``dms_config.json``, then applying ``DMS_*`` overrides.

Precedence, lowest first: model defaults, the first config file found, ``DMS_*`` variables,
``BOOTSTRAP_PEERS``. Every failure is a one-line :class:`~dms.errors.ConfigError` that names the
key and where the bad value came from (file or variable), because "config invalid" alone sends
the user hunting through three search paths and the environment.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dms.config._models import Config
from dms.config._paths import (
    CONFIG_FILE_NAME,
    _environ,
    config_search_paths,
    find_config_file,
    home_dir,
)
from dms.config._schema import (
    KeyInfo,
    _list_item,
    _section_of,
    canonical_value,
    canonicalize,
    env_keys,
    is_dict_type,
    is_list_type,
    resolve_key,
    type_name,
)
from dms.errors import ConfigError

__all__ = [
    "CONFIG_FILE_NAME",
    "config_search_paths",
    "config_to_json",
    "find_config_file",
    "load_config",
    "override_config",
    "parse_value_text",
    "read_config_file",
    "validate_config_data",
]

BOOTSTRAP_PEERS_ENV = "BOOTSTRAP_PEERS"


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse ``path`` as JSON and return it with keys in canonical spelling.

    Unknown keys (at any depth) and non-JSON content raise :class:`ConfigError` naming the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid JSON: {exc.msg} "
            f"at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    result: dict[str, Any] = canonicalize(raw, Config, f"in config file {path}")
    return result


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _short(value: Any) -> str:
    plain = isinstance(value, (str, int, float, bool, list, dict))
    text = json.dumps(value) if plain else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validation_message(exc: ValidationError, where: str | Mapping[tuple[str, ...], str]) -> str:
    """One line for the first pydantic error: key, expected type, offending value and source.

    ``where`` is a phrase (``"in config file /x"``) or, when values came from several places, a
    map from key path to phrase; the phrase of the longest path prefixing the error wins, and a
    section-level error (e.g. a port range) takes the first source inside that section.
    """
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    dotted = _dotted(loc) or "(top level)"
    str_loc = tuple(p for p in loc if isinstance(p, str))
    if isinstance(where, str):
        source = where
    else:
        source = where.get((), "")
        best = -1
        for path, phrase in where.items():
            if path and str_loc[: len(path)] == path and len(path) > best:
                source, best = phrase, len(path)
        if best < 0:
            for path, phrase in where.items():
                if path and path[: len(str_loc)] == str_loc:
                    source = phrase
                    break
    source = f" {source}" if source else ""
    msg = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    try:
        info: KeyInfo | None = resolve_key(".".join(str_loc)) if str_loc else None
    except ConfigError:
        info = None
    if info is None or first["type"] == "value_error":
        return f"invalid {dotted}{source}: {msg}{more}"
    expected = "object" if info.section is not None else type_name(info.annotation)
    if len(loc) > len(str_loc):  # inside a list: name the item type
        item = _list_item(info.annotation)
        if item is not None and _section_of(item) is None:
            expected = type_name(item)
    return (
        f"invalid value for {dotted}{source}: expected {expected}, "
        f"got {_short(first.get('input'))} ({msg}){more}"
    )


def validate_config_data(
    data: Mapping[str, Any],
    *,
    home: Path | None = None,
    where: str | Mapping[tuple[str, ...], str] = "",
) -> Config:
    """Build a :class:`Config` from canonical raw data, expanding ``$HOME`` against ``home``."""
    try:
        return Config.model_validate(data, context={"home": str(home or Path.home())})
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, where)) from None


def parse_value_text(info: KeyInfo, text: str, where: str) -> Any:
    """Turn the text of an env variable or ``config set`` argument into a raw JSON value.

    Lists take a JSON array or a comma-separated list; objects take JSON; scalars are left as
    text (pydantic converts ``"9999"``, ``"true"``, ...), trimmed unless the key is a string.
    ``where`` ends error messages (``"from environment variable DMS_REST_PORT"``).
    """
    annotation = info.annotation
    is_list = is_list_type(annotation)
    stripped = text.strip()
    if is_list and not stripped.startswith("["):
        return [part.strip() for part in stripped.split(",") if part.strip()]
    if is_list or info.section is not None or is_dict_type(annotation):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            kind = "a JSON array or comma-separated list" if is_list else "a JSON object"
            raise ConfigError(
                f"invalid value for {info.dotted} {where}: expected {kind} ({exc.msg})"
            ) from None
        return canonical_value(value, annotation, where, info.path)
    return text if annotation is str else stripped


def _set_in(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def env_overrides(env: Mapping[str, str]) -> list[tuple[str, KeyInfo, Any]]:
    """``(variable, key, raw value)`` for every ``DMS_*`` variable naming a key, in name order,
    then ``BOOTSTRAP_PEERS``. Other ``DMS_*`` variables (``DMS_CONN_LOGS``, ...) are ignored."""
    table = env_keys()
    out: list[tuple[str, KeyInfo, Any]] = []
    for name in sorted(env):
        info = table.get(name.upper())
        if info is not None:
            where = f"from environment variable {name}"
            out.append((name, info, parse_value_text(info, env[name], where)))
    peers = env.get(BOOTSTRAP_PEERS_ENV, "")
    if peers.strip():
        info = resolve_key("p2p.bootstrap_peers")
        value = [p.strip() for p in peers.split(",") if p.strip()]
        out.append((BOOTSTRAP_PEERS_ENV, info, value))
    return out


def apply_legacy_observability(config: Config) -> Config:
    """Copy the flat ``observability`` log keys into ``observability.logging`` where the nested
    value is empty (Go's loader does the same); the flat elasticsearch keys are left alone."""
    obs = config.observability
    logging = obs.logging
    if not logging.level:
        logging.level = obs.log_level
    if not logging.file:
        logging.file = obs.log_file
    rotation = logging.rotation
    if not rotation.max_size:
        rotation.max_size = obs.max_size
    if not rotation.max_backups:
        rotation.max_backups = obs.max_backups
    if not rotation.max_age:
        rotation.max_age = obs.max_age
    return config


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
) -> Config:
    """The effective configuration: defaults, the config file found, then env overrides.

    ``path`` is ``--config`` (must exist); ``env`` defaults to ``os.environ`` and also supplies
    ``HOME``/``XDG_CONFIG_HOME`` for the search; ``cwd`` defaults to the process' directory.
    """
    environ = _environ(env)
    home = home_dir(environ)
    file = find_config_file(path, env=environ, cwd=cwd)
    data: dict[str, Any] = {}
    file_where = "in defaults"
    if file is not None:
        data = read_config_file(file)
        file_where = f"in config file {file}"
        validate_config_data(data, home=home, where=file_where)
    overrides = env_overrides(environ)
    if overrides:
        data = copy.deepcopy(data)
        sources: dict[tuple[str, ...], str] = {(): file_where}
        for name, info, value in overrides:
            _set_in(data, info.path, value)
            sources[info.path] = f"from environment variable {name}"
        config = validate_config_data(data, home=home, where=sources)
    else:
        config = validate_config_data(data, home=home, where=file_where)
    return apply_legacy_observability(config)


def override_config(
    config: Config, values: Mapping[str, Any], *, where: str = "given on the command line"
) -> Config:
    """A new config with ``values`` (dotted key → value) applied and everything re-validated.

    For ``nunet run --rest-port ...`` style flags: string values are converted like env
    variables (lists comma-separated or JSON), other values are taken as they are.
    """
    data = config_to_json(config)
    for key, value in values.items():
        info = resolve_key(key)
        raw = parse_value_text(info, value, where) if isinstance(value, str) else value
        _set_in(data, info.path, raw)
    return validate_config_data(data, where=where)


def config_to_json(config: Config) -> dict[str, Any]:
    """The config as a JSON object with the canonical (Go) key spelling."""
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True)
    return data
