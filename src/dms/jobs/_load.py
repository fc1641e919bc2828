"""Entry points from YAML text: a whole ensemble (:func:`load_ensemble`) or one allocation to
run on this machine (:func:`load_allocation`, for ``nunet executor run``).

Both read the text with the same loader (size and depth caps, duplicate keys refused, lines
kept). A ``wasm`` module named by a relative path is relative to the YAML file (``base_dir``),
as users expect; :func:`dms.jobs.inline_local_modules` later puts such modules inside the
deployment, since a provider never opens a path a deployer named.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

from dms.executor import InvalidSpec, SpecConfig
from dms.jobs._fields import Reader
from dms.jobs._json import default_executors
from dms.jobs._model import AllocationConfig, Ensemble
from dms.jobs._parse import parse_allocation, parse_document
from dms.jobs._problems import EnsembleInvalid, Problems
from dms.jobs._validate import validate
from dms.jobs._yaml import load_document
from dms.resources import Resources


def is_local_module(spec: SpecConfig) -> bool:
    """Whether ``spec`` is a wasm execution whose ``module`` is a path (not a URL, not inline)."""
    module = spec.params.get("module")
    return (
        spec.type == "wasm"
        and isinstance(module, str)
        and bool(module)
        and "://" not in module
        and "module_data" not in spec.params
    )


def resolve_module(spec: SpecConfig, base_dir: Path | None) -> SpecConfig:
    """A relative local module path made absolute against ``base_dir``."""
    if base_dir is None or not is_local_module(spec):
        return spec
    module = str(spec.params["module"])
    if Path(module).is_absolute():
        return spec
    return SpecConfig(spec.type, {**spec.params, "module": str((base_dir / module).resolve())})


def load_ensemble(
    text: str,
    *,
    base_dir: Path | None = None,
    known_executors: Collection[str] | None = None,
) -> Ensemble:
    """Parse and validate a v1 ensemble; raises :class:`EnsembleInvalid` listing every problem.

    ``known_executors`` defaults to the built-in executors plus ``firecracker``. With
    ``base_dir`` (the YAML file's directory), relative wasm module paths are resolved and a
    missing module file is a problem too.
    """
    doc = load_document(text)
    problems = Problems(doc.line)
    problems.extend(doc.problems)
    ensemble = parse_document(doc, Reader(problems))
    validate(
        ensemble, problems, default_executors() if known_executors is None else known_executors
    )
    if base_dir is not None:
        allocations = {}
        for name, alloc in ensemble.allocations.items():
            spec = resolve_module(alloc.execution, base_dir)
            if is_local_module(spec) and not Path(str(spec.params["module"])).is_file():
                problems.add(
                    f"allocations.{name}.execution.module",
                    f"module file {spec.params['module']} does not exist",
                )
            allocations[name] = replace(alloc, execution=spec)
        ensemble = replace(ensemble, allocations=allocations)
    problems.raise_if_any()
    return ensemble


@dataclass(frozen=True)
class LocalAllocation:
    """What an executor needs of one allocation."""

    name: str
    executor: str
    spec: SpecConfig
    resources: Resources

    @classmethod
    def of(cls, alloc: AllocationConfig) -> LocalAllocation:
        return cls(alloc.name, alloc.executor, alloc.execution, alloc.resources)


def _first(problems: Problems) -> InvalidSpec:
    first = sorted(problems.items, key=lambda p: p.line or 0)[0]
    more = len(problems.items) - 1
    return InvalidSpec(str(first) + (f" (and {more} more problem(s))" if more else ""))


def load_allocation(
    text: str, allocation: str | None = None, base_dir: Path | None = None
) -> LocalAllocation:
    """One allocation of YAML ``text``: an ``allocations.<name>`` block on its own, or an
    ensemble plus the allocation's name (optional when it has one allocation).

    Only what an executor needs is checked (placement is not this machine's business).
    Raises :class:`InvalidSpec` with one line naming the (first) problem.
    """
    try:
        doc = load_document(text)
    except EnsembleInvalid as exc:
        first = exc.problems[0]
        if not first.path and first.line and first.message.startswith("invalid YAML"):
            rest = first.message.removeprefix("invalid YAML")
            raise InvalidSpec(f"invalid YAML at line {first.line}{rest}") from None
        raise InvalidSpec(str(first)) from None
    top = doc.data
    name = allocation or "allocation"
    path = ""
    if "allocations" in top:
        allocations = top["allocations"]
        if not isinstance(allocations, dict):
            raise InvalidSpec(f"allocations (line {doc.line('allocations')}): expected a mapping")
        if allocation is None:
            if len(allocations) != 1:
                names = ", ".join(sorted(allocations)) or "none"
                raise InvalidSpec(f"the ensemble has several allocations ({names}); name one")
            name = next(iter(allocations))
        if name not in allocations:
            raise InvalidSpec(f"no allocation {name!r} in the ensemble")
        block, path = allocations[name], f"allocations.{name}"
        problems = Problems(doc.line)
        problems.extend(p for p in doc.problems if p.path.startswith(path))
    else:
        block = top
        problems = Problems(doc.line)
        problems.extend(doc.problems)
    reader = Reader(problems)
    if isinstance(block, dict) and "execution" not in block:
        raise InvalidSpec(f"{path or 'the allocation'}: has no 'execution' block")
    alloc = parse_allocation(reader, name, block, path, strict=False)
    if problems:
        raise _first(problems)
    if alloc.executor != alloc.execution.type:
        raise InvalidSpec(
            f"executor {alloc.executor!r} cannot run an execution of type {alloc.execution.type!r}"
        )
    return replace(LocalAllocation.of(alloc), spec=resolve_module(alloc.execution, base_dir))
