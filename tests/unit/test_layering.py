"""The import rules of ``shared/design.md``, checked on the source itself.

Two rules, read from every module under ``src/dms`` with :mod:`ast` (so imports inside functions
and under ``TYPE_CHECKING`` count too: a lazy import is still a dependency):

1. **Small public surfaces**: a module never imports another package's ``_private`` module; it
   goes through that package's ``__init__`` (its curated API). A package's own modules, and its
   subpackages, may import its private modules.
2. **Layers**: a module imports only from lower layers (``LAYERS`` below, the table of "The
   shape"). Within a layer, the order the design gives (``errors`` < ``gojson`` < ``_files`` <
   ``config``; ``db`` < ``resources`` < ``executor``, ``storage``) or implies (``did`` is built on
   ``crypto``'s keys, ``contexts`` on ``ucan``'s tokens, ``actor`` sends through ``network``, which
   never imports it; the node creates orchestrators and allocations, the orchestrator places
   ``jobs``' ensembles) is the order of the second number; equal pairs may not import each other.

A known violation in a file that is being rewritten goes in ``ALLOWED`` with its reason; an entry
that no longer matches anything fails the test, so the list only ever shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "dms"

#: Top-level unit under ``dms`` -> (layer, order within the layer). Lower may be imported by
#: higher; equal may not import each other. ``dms`` itself (``__version__``) is below everything.
LAYERS: dict[str, tuple[int, int]] = {
    "dms": (-1, 0),
    # 0: one exception hierarchy, Go JSON, atomic files, configuration
    "errors": (0, 0),
    "gojson": (0, 1),
    "_files": (0, 2),
    "_lazy": (0, 2),  # standard library only, like _files
    "failpoints": (0, 2),  # not in design.md yet: standard library only, like _files
    "config": (0, 3),
    # 1: keys, did:key, keystore
    "crypto": (1, 0),
    "did": (1, 1),
    # 2: capability tokens, capability contexts
    "ucan": (2, 0),
    "contexts": (2, 1),
    # 3: the network, and the actors that send through it
    "network": (3, 0),
    "actor": (3, 1),
    # 4: store < resources < executors, storage
    "db": (4, 0),
    "resources": (4, 1),
    "executor": (4, 2),
    "storage": (4, 2),
    # 5: ensembles < subnets < orchestration, contracts < the node actor that hosts them
    # (the orchestrator plans an ensemble's subnet and speaks its wire payloads)
    "jobs": (5, 0),
    "subnet": (5, 1),
    "orchestrator": (5, 2),
    "tokenomics": (5, 2),
    "node": (5, 3),
    # 6: the edges and the wiring
    "observability": (6, 0),
    "api": (6, 1),
    "client": (6, 1),
    "daemon": (6, 2),
    "devnet": (6, 3),
    "cli": (6, 4),
}

#: (importing file relative to ``src/dms``, imported module) -> why it is tolerated for now.
#: The lead clears these; never add one for new code.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    file: str  # relative to src/dms
    line: int
    importer: str  # dotted module name
    target: str  # dotted module name, resolved to a module where the name is one

    def __str__(self) -> str:
        return f"src/dms/{self.file}:{self.line}: {self.importer} imports {self.target}"


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _is_module(dotted: str) -> bool:
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: resolve against the importing module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    for alias in node.names:
        # ``from dms.executor import _docker`` imports the module dms.executor._docker.
        candidate = f"{base}.{alias.name}"
        yield candidate if _is_module(candidate) else base


def dms_imports() -> list[Import]:
    """Every import of a ``dms`` module by a module under ``src/dms``."""
    found: list[Import] = []
    for path in sorted(ROOT.rglob("*.py")):
        module, is_package = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(node, module, is_package):
                if target == "dms" or target.startswith("dms."):
                    rel = path.relative_to(ROOT).as_posix()
                    found.append(Import(rel, node.lineno, module, target))
    return found


def _package_of(module: str, file: str) -> str:
    """The package a module belongs to: itself for an ``__init__``, else its parent."""
    return module if file.endswith("__init__.py") else module.rpartition(".")[0]


def private_owner(target: str) -> str | None:
    """The package that owns ``target``'s first ``_private`` part, or ``None`` if all public."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def private_violation(imp: Import) -> bool:
    owner = private_owner(imp.target)
    if owner is None:
        return False
    package = _package_of(imp.importer, imp.file)
    return not (package == owner or package.startswith(owner + "."))


def unit_of(module: str) -> str:
    """The top-level unit under ``dms`` (``dms.executor._docker`` -> ``executor``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "dms"


def layer_violation(imp: Import) -> str | None:
    """Why ``imp`` breaks the layering, or ``None`` if it does not."""
    src, dst = unit_of(imp.importer), unit_of(imp.target)
    if src == dst:
        return None
    for unit in (src, dst):
        if unit not in LAYERS:
            return f"{unit!r} is not in the layer table (add it, as in design.md)"
    if LAYERS[dst] < LAYERS[src]:
        return None
    return f"{src} {LAYERS[src]} may not import {dst} {LAYERS[dst]}"


def _allowed(imp: Import) -> bool:
    return (imp.file, imp.target) in ALLOWED


# -- the rules on the real tree -------------------------------------------------------------------


def test_the_scan_sees_the_tree() -> None:
    imports = dms_imports()
    assert len({imp.file for imp in imports}) > 50
    # Lazy (function-level) imports are seen, and private ones inside a package are allowed.
    assert any(imp.target == "dms.executor._wasm_engine" for imp in imports)


def test_every_unit_is_in_the_layer_table() -> None:
    units = {unit_of(_module_name(path)[0]) for path in ROOT.rglob("*.py")}
    assert units - LAYERS.keys() == set(), "place these in LAYERS as design.md does"


def test_no_module_imports_another_packages_private_module() -> None:
    bad = [str(imp) for imp in dms_imports() if private_violation(imp) and not _allowed(imp)]
    assert not bad, "import the owning package's public API instead:\n" + "\n".join(bad)


def test_every_import_respects_the_layers() -> None:
    bad = []
    for imp in dms_imports():
        why = layer_violation(imp)
        if why and not _allowed(imp):
            bad.append(f"{imp} ({why})")
    assert not bad, "imports against the layer table of design.md:\n" + "\n".join(bad)


def test_allowlist_entries_still_match() -> None:
    """An entry whose violation is gone is removed, so the allowlist cannot hide new ones."""
    live = {
        (imp.file, imp.target)
        for imp in dms_imports()
        if private_violation(imp) or layer_violation(imp)
    }
    stale = [f"{file} -> {target}" for file, target in ALLOWED if (file, target) not in live]
    assert not stale, "remove these ALLOWED entries, they are fixed:\n" + "\n".join(stale)


# -- the rules themselves ------------------------------------------------------------------------


def _imp(importer: str, target: str, *, package: bool = False) -> Import:
    file = importer.removeprefix("dms.").replace(".", "/")
    return Import(file + ("/__init__.py" if package else ".py"), 1, importer, target)


@pytest.mark.parametrize(
    ("importer", "target", "bad"),
    [
        ("dms.did._key", "dms.crypto._varint", True),  # another package's private module
        ("dms.did._key", "dms.crypto", False),  # its public surface
        ("dms.did._did", "dms.did._key", False),  # a sibling in the same package
        ("dms.ucan._store", "dms._files", False),  # dms's own private module, shared by all
        ("dms.cli._gpu", "dms.executor._docker_spec", True),
        ("dms.executor.sub._x", "dms.executor._types", False),  # a subpackage of the owner
        ("dms.executor._base", "dms.executor.sub._x", True),  # the parent into a child's private
    ],
)
def test_private_rule(importer: str, target: str, bad: bool) -> None:
    assert private_violation(_imp(importer, target)) is bad


def test_an_init_belongs_to_its_own_package() -> None:
    assert not private_violation(_imp("dms.crypto", "dms.crypto._der", package=True))
    assert private_violation(_imp("dms.did", "dms.crypto._der", package=True))


@pytest.mark.parametrize(
    ("importer", "target", "bad"),
    [
        ("dms.did._key", "dms.crypto", False),  # did is built on crypto
        ("dms.crypto._keys", "dms.did", True),  # never the other way
        ("dms.config._load", "dms._files", False),  # layer 0 in its order
        ("dms.errors", "dms.config", True),
        ("dms.executor._local", "dms.resources", False),  # db < resources < executor
        ("dms.db._bids", "dms.resources", True),
        ("dms.executor._docker", "dms.storage", True),  # peers in layer 4
        ("dms.network._libp2p", "dms.actor", True),  # the network never imports actors
        ("dms.orchestrator._match", "dms.jobs", False),
        ("dms.jobs._model", "dms.orchestrator", True),
        ("dms.node._deploy", "dms.orchestrator", False),
        ("dms.resources._manager", "dms.node", True),
        ("dms.cli._run", "dms.daemon", False),
        ("dms.daemon", "dms.cli", True),
        ("dms.cli.main", "dms", False),  # __version__
        ("dms.foo", "dms.errors", True),  # a unit missing from the table
    ],
)
def test_layer_rule(importer: str, target: str, bad: bool) -> None:
    assert (layer_violation(_imp(importer, target)) is not None) is bad
