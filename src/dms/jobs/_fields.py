"""Typed reads of plain YAML/JSON values that record a problem instead of raising.

Each reader returns a usable default after recording what was wrong, so parsing goes on and
the user hears about every mistake in one run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from dms import gojson
from dms.jobs._problems import Problems
from dms.jobs._yaml import child_path


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


class Reader:
    """Reads fields of ``Mapping`` values at dotted paths, recording problems in ``problems``.

    ``fold`` matches keys as Go's JSON decoder does (:func:`dms.gojson.folded`: case folded,
    the last repeated key wins); YAML keys are exact.
    """

    def __init__(self, problems: Problems, *, fold: bool = False) -> None:
        self.problems = problems
        self.fold = fold

    def add(self, path: str, message: str) -> None:
        self.problems.add(path, message)

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.add(path, f"expected a mapping, got {_kind(value)}")
            return {}
        if not self.fold:
            return {str(k): v for k, v in value.items()}
        return gojson.folded(value, path)  # look fields up by gojson.fold(name)

    def entries(self, value: Any, path: str) -> dict[str, Any]:
        """A mapping whose keys are data (allocation and node names, metadata...): kept exactly.

        Go folds the *field names* of a struct when it decodes JSON, never the keys of a map: an
        allocation named ``Web`` stays ``Web``.
        """
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.add(path, f"expected a mapping, got {_kind(value)}")
            return {}
        return {str(k): v for k, v in value.items()}

    def only(self, obj: Mapping[str, Any], path: str, allowed: Iterable[str]) -> None:
        """Refuse keys not in ``allowed``: a typo must not silently drop a constraint."""
        if self.fold:
            return  # Go's decoder ignores unknown JSON fields; so do we for peers' JSON
        known = set(allowed)
        for key in obj:
            if key not in known:
                self.add(
                    child_path(path, key),
                    f"unknown key {key!r} (known: {', '.join(sorted(known))})",
                )

    def list(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.add(path, f"expected a list, got {_kind(value)}")
            return []
        return list(value)

    def string(self, value: Any, path: str, *, required: bool = False) -> str:
        if value is None:
            if required:
                self.add(path, "is required")
            return ""
        if not isinstance(value, str):
            hint = " (quote it)" if value is None or isinstance(value, bool | int | float) else ""
            self.add(path, f"expected a string, got {_kind(value)}{hint}")
            return ""
        if required and not value:
            self.add(path, "must not be empty")
        return str(value)

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        out = []
        for i, item in enumerate(self.list(value, path)):
            text = self.string(item, f"{path}[{i}]")
            if text:
                out.append(text)
            elif isinstance(item, str):
                self.add(f"{path}[{i}]", "must not be empty")
        return tuple(out)

    def integer(
        self, value: Any, path: str, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        if value is None:
            return 0
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"expected a whole number, got {_kind(value)}")
            return 0
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            self.add(path, f"must be {bound}, got {value}")
            return 0
        return value

    def number(self, value: Any, path: str) -> float:
        if value is None:
            return 0.0
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.add(path, f"expected a number, got {_kind(value)}")
            return 0.0
        if value < 0:
            self.add(path, f"must not be negative, got {value}")
            return 0.0
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.add(path, f"expected true or false, got {_kind(value)}")
            return False
        return value

    def choice(self, value: Any, path: str, choices: Iterable[str]) -> str:
        text = self.string(value, path)
        options = tuple(choices)
        if text and text not in options:
            self.add(path, f"{text!r} is not one of {', '.join(options)}")
            return ""
        return text
