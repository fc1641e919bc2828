"""Key paths of the config models: resolving dotted keys, checking raw JSON against the models.

Go reads ``dms_config.json`` through viper, which matches keys case-insensitively and (with
``UnmarshalExact``) rejects unknown ones. Pydantic can do neither with a useful message, so raw
JSON is first walked here against the model fields: every key is mapped to its canonical spelling
and an unknown key fails with its full dotted path. The same tables resolve ``config get/set``
keys and ``DMS_*`` environment variable names.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dms.config._models import Config
from dms.errors import ConfigError, NotFound

__all__ = [
    "KeyInfo",
    "UnknownConfigKey",
    "canonical_value",
    "canonicalize",
    "env_keys",
    "is_dict_type",
    "is_list_type",
    "leaf_keys",
    "resolve_key",
    "type_name",
]

ENV_PREFIX = "DMS_"


class UnknownConfigKey(ConfigError, NotFound):
    """A dotted key that names no config setting: both a config error and a not-found."""


@dataclass(frozen=True)
class KeyInfo:
    """One config key: its canonical JSON path, Python attribute path and declared type."""

    path: tuple[str, ...]
    attrs: tuple[str, ...]
    annotation: Any
    section: type[BaseModel] | None

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def env_name(self) -> str:
        """``DMS_`` + path joined by ``_``, upper-cased (viper's ``AutomaticEnv`` spelling)."""
        return ENV_PREFIX + "_".join(self.path).upper()


def _section_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _list_item(annotation: Any) -> Any | None:
    """The item type of ``list[X]``, or ``None`` when the annotation is not a list."""
    if typing.get_origin(annotation) is list:
        args = typing.get_args(annotation)
        return args[0] if args else Any
    return None


@cache
def _fields(model: type[BaseModel]) -> dict[str, tuple[str, str, FieldInfo]]:
    """Lower-cased JSON key → (canonical key, attribute name, field) for one model."""
    out: dict[str, tuple[str, str, FieldInfo]] = {}
    for attr, info in model.model_fields.items():
        key = info.alias or attr
        out[key.lower()] = (key, attr, info)
    return out


def _show(dotted: str) -> str:
    return dotted if dotted.strip() else repr(dotted)


def resolve_key(dotted: str, model: type[BaseModel] = Config) -> KeyInfo:
    """Resolve a dotted key case-insensitively; raise :class:`UnknownConfigKey` if it names
    nothing (the message carries the key as given)."""
    parts = [p for p in dotted.strip().split(".")]
    if not dotted.strip() or any(not p for p in parts):
        raise UnknownConfigKey(f"unknown config key {_show(dotted)}")
    path: list[str] = []
    attrs: list[str] = []
    current: type[BaseModel] | None = model
    annotation: Any = model
    for part in parts:
        if current is None:
            raise UnknownConfigKey(f"unknown config key {_show(dotted)}")
        entry = _fields(current).get(part.lower())
        if entry is None:
            raise UnknownConfigKey(f"unknown config key {_show(dotted)}")
        key, attr, info = entry
        path.append(key)
        attrs.append(attr)
        annotation = info.annotation
        current = _section_of(annotation)
    return KeyInfo(tuple(path), tuple(attrs), annotation, current)


@cache
def leaf_keys(model: type[BaseModel] = Config) -> tuple[KeyInfo, ...]:
    """Every settable leaf (anything that is not a section), depth first in field order."""
    out: list[KeyInfo] = []

    def walk(m: type[BaseModel], path: tuple[str, ...], attrs: tuple[str, ...]) -> None:
        for key, attr, info in _fields(m).values():
            section = _section_of(info.annotation)
            if section is not None:
                walk(section, (*path, key), (*attrs, attr))
            else:
                out.append(KeyInfo((*path, key), (*attrs, attr), info.annotation, None))

    walk(model, (), ())
    return tuple(out)


@cache
def env_keys() -> dict[str, KeyInfo]:
    """``DMS_*`` variable name → key. Key names contain underscores themselves, so variables
    are resolved against this table instead of by splitting on ``_``."""
    table: dict[str, KeyInfo] = {}
    for info in leaf_keys():
        if info.env_name in table:  # pragma: no cover - guarded by a test on the key set
            raise AssertionError(f"two config keys share {info.env_name}")
        table[info.env_name] = info
    return table


def canonicalize(raw: Any, model: type[BaseModel], where: str, prefix: tuple[str, ...] = ()) -> Any:
    """Return ``raw`` with every key in canonical spelling, checked against ``model``.

    ``where`` ends the error messages (``"in config file /x"``). Values that are not objects
    where a section is expected are returned as they are, for pydantic to report with the
    expected type. Free-form ``dict[str, Any]`` values are kept verbatim.
    """
    if not isinstance(raw, dict):
        return raw
    table = _fields(model)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        entry = table.get(str(key).lower())
        dotted = ".".join((*prefix, str(key)))
        if entry is None:
            raise UnknownConfigKey(f"unknown config key {dotted} {where}")
        canon, _attr, info = entry
        if canon in out:
            raise ConfigError(f"config key {'.'.join((*prefix, canon))} given twice {where}")
        out[canon] = canonical_value(value, info.annotation, where, (*prefix, canon))
    return out


def canonical_value(value: Any, annotation: Any, where: str, path: tuple[str, ...]) -> Any:
    section = _section_of(annotation)
    if section is not None:
        return canonicalize(value, section, where, path)
    item = _list_item(annotation)
    item_section = _section_of(item) if item is not None else None
    if item_section is not None and isinstance(value, list):
        return [
            canonicalize(v, item_section, where, (*path[:-1], f"{path[-1]}[{i}]"))
            for i, v in enumerate(value)
        ]
    return value


def is_dict_type(annotation: Any) -> bool:
    """Whether the annotation is a free-form mapping (``dict[str, Any]``)."""
    return annotation is dict or typing.get_origin(annotation) is dict


def is_list_type(annotation: Any) -> bool:
    """Whether the annotation is ``list[...]``."""
    return _list_item(annotation) is not None


def type_name(annotation: Any) -> str:
    """A short, user-facing name of a field type, for error messages."""
    if typing.get_origin(annotation) is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    item = _list_item(annotation)
    if item is not None:
        return f"list of {type_name(item)}s"
    origin = typing.get_origin(annotation)
    if is_dict_type(annotation):
        return "object"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    names: dict[Any, str] = {
        bool: "boolean", int: "integer", float: "number", str: "string", Path: "path",
    }  # fmt: skip
    if annotation in names:
        return names[annotation]
    if _section_of(annotation) is not None:
        return "object"
    return getattr(annotation, "__name__", str(annotation))
