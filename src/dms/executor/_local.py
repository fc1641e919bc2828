"""An allocation block read from YAML, for running it on this machine (``nunet executor run``).

Accepts the ``allocations.<name>`` block of an ensemble (``executor``, ``resources``,
``execution``) on its own, or a whole ensemble plus the allocation's name. Units follow the
ensemble format (spec §7): ``ram.size`` and ``disk.size`` in GiB unless a unit is given
(``512MiB``), cores fractional. Only what an executor needs is read; placement fields
(``nodes``, constraints, ``depends_on``...) are the orchestrator's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dms.executor._errors import InvalidSpec
from dms.executor._types import SpecConfig
from dms.resources import CPU, RAM, Disk, Resources, parse_size
from dms.resources._types import round_cores

#: An ensemble is a page of YAML; anything this large is a mistake or an attack.
MAX_YAML_BYTES = 1 << 20


@dataclass(frozen=True)
class LocalAllocation:
    """What an executor needs of one allocation."""

    name: str
    executor: str
    spec: SpecConfig
    resources: Resources


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{what}: expected a mapping")
    return value


def _size(block: Mapping[str, Any], what: str) -> int:
    value = block.get("size", 0)
    try:
        size = parse_size(value)
    except Exception as exc:
        raise InvalidSpec(f"{what}.size: {exc}") from None
    if size < 0:
        raise InvalidSpec(f"{what}.size must not be negative")
    return size


def resources_from_yaml(block: Any) -> Resources:
    """``resources:`` of an allocation (cores, RAM and disk; GPUs are not handed out locally)."""
    resources = _mapping(block, "resources")
    cpu = _mapping(resources.get("cpu"), "resources.cpu")
    cores = cpu.get("cores", 0)
    if isinstance(cores, bool) or not isinstance(cores, int | float) or cores < 0:
        raise InvalidSpec("resources.cpu.cores must be a non-negative number")
    return Resources(
        cpu=CPU(cores=round_cores(float(cores))),
        ram=RAM(size=_size(_mapping(resources.get("ram"), "resources.ram"), "resources.ram")),
        disk=Disk(size=_size(_mapping(resources.get("disk"), "resources.disk"), "resources.disk")),
    )


def _resolve_module(spec: SpecConfig, base_dir: Path | None) -> SpecConfig:
    """A ``wasm`` module given as a relative path is relative to the YAML file, as users expect."""
    module = spec.params.get("module")
    if spec.type != "wasm" or base_dir is None or not isinstance(module, str) or not module:
        return spec
    if "://" in module or Path(module).is_absolute():
        return spec
    return SpecConfig(spec.type, {**spec.params, "module": str((base_dir / module).resolve())})


def load_allocation(
    text: str, allocation: str | None = None, base_dir: Path | None = None
) -> LocalAllocation:
    """Parse YAML ``text`` (an allocation block or an ensemble) into a :class:`LocalAllocation`.

    ``base_dir`` is the YAML file's directory (relative module paths resolve against it).
    Raises :class:`InvalidSpec` with one line naming what is wrong.
    """
    if len(text) > MAX_YAML_BYTES:
        raise InvalidSpec(f"the YAML is larger than {MAX_YAML_BYTES} bytes")
    try:
        doc = yaml.safe_load(text)
    except RecursionError:
        raise InvalidSpec("invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise InvalidSpec(f"invalid YAML{where}: {problem}") from None
    doc = _mapping(doc, "document")
    name = allocation or "allocation"
    if "allocations" in doc:
        allocations = _mapping(doc["allocations"], "allocations")
        if allocation is None:
            if len(allocations) != 1:
                names = ", ".join(sorted(map(str, allocations))) or "none"
                raise InvalidSpec(f"the ensemble has several allocations ({names}); name one")
            name = str(next(iter(allocations)))
        if name not in allocations:
            raise InvalidSpec(f"no allocation {name!r} in the ensemble")
        block = _mapping(allocations[name], f"allocations.{name}")
    else:
        block = doc
    if "execution" not in block:
        raise InvalidSpec("the allocation has no 'execution' block")
    spec = _resolve_module(SpecConfig.from_execution(block["execution"]), base_dir)
    if "executor" in block and block["executor"] is None:
        raise InvalidSpec("'executor' is YAML null; quote it (\"null\") for the null executor")
    executor = block.get("executor", spec.type)
    if not isinstance(executor, str) or not executor:
        raise InvalidSpec("'executor' must be a name such as docker or wasm")
    if executor != spec.type:
        raise InvalidSpec(f"executor {executor!r} cannot run an execution of type {spec.type!r}")
    return LocalAllocation(name, executor, spec, resources_from_yaml(block.get("resources")))
