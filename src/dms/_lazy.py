"""Names of a package loaded on first use (PEP 562), so importing the package stays cheap.

``dms.actor`` (its runtime imports trio) and ``dms.config`` (its models import pydantic) expose
some names this way: the CLI's cheap commands import the package without paying for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def lazy_names(
    package: str, namespace: MutableMapping[str, Any], table: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for ``table`` (module -> names it provides);
    a loaded name is stored in ``namespace`` so later lookups skip ``__getattr__``."""
    owner = {name: module for module, names in table.items() for name in names}

    def getattr_(name: str) -> Any:
        module = owner.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(owner))

    return getattr_, dir_
