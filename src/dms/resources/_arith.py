"""Add, subtract and compare :class:`Resources`, with the Go DMS's rules.

Why these rules (``types/hardware.go``, ``types/resources.go``, ``types/utils.go``): a Python
provider must accept exactly the requests a Go provider accepts, and keep the same books.

* CPU: cores are added/subtracted and rounded to 0.01 (Go's float32 ``round``); comparison is on
  compute = cores × clock and only within one architecture (otherwise ``None``).
* RAM and disk: by ``size``.
* GPUs: add/subtract VRAM of GPUs with the same ``index``; compare by matching each required GPU
  to the best remaining machine GPU by VRAM (Equal first, else the first Better, else Worse).

Deliberate differences from Go, each a Go bug or TODO that would make the books wrong:

* ``add`` appends GPUs of ``other`` whose index ``self`` lacks (Go drops them: its TODO says to
  append), and fills empty descriptive fields (clock speed, architecture, model...) of ``self``
  from ``other``, so summing allocations from an empty :class:`Resources` keeps the clock speed.
* ``subtract`` of a GPU index that ``self`` lacks raises (Go silently ignores it).
* ``compare`` checks every required GPU (Go stops half-way through the list) and reports
  ``None`` when the machine has fewer GPUs than required (Go reports ``Better``).

Every negative result raises :class:`ResourceError` naming the part and the numbers.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import TypeVar

from dms.resources._comparison import Comparison, numeric
from dms.resources._errors import ResourceError
from dms.resources._types import CPU, GPU, RAM, Disk, Resources, round_cores, to_float32
from dms.resources._units import format_size

_T = TypeVar("_T", CPU, RAM, Disk)


def _fill(base: _T, other: _T, skip: str) -> _T:
    """``base`` with its empty fields (other than ``skip``) taken from ``other``."""
    changes = {
        f.name: getattr(other, f.name)
        for f in fields(base)
        if f.name != skip and not getattr(base, f.name) and getattr(other, f.name)
    }
    return replace(base, **changes) if changes else base


def _add_gpus(own: tuple[GPU, ...], other: tuple[GPU, ...]) -> tuple[GPU, ...]:
    by_index = {g.index: g for g in other}
    out = [
        replace(g, vram=g.vram + by_index[g.index].vram) if g.index in by_index else g for g in own
    ]
    have = {g.index for g in own}
    out.extend(g for g in other if g.index not in have)
    return tuple(out)


def _subtract_gpus(own: tuple[GPU, ...], other: tuple[GPU, ...]) -> tuple[GPU, ...]:
    own_index = {g.index for g in own}
    for g in other:
        if g.index not in own_index and g.vram:
            raise ResourceError(
                f"GPU {g.index}: cannot subtract {format_size(g.vram)} of VRAM "
                "from a GPU that is not there"
            )
    by_index = {g.index: g for g in other}
    out = []
    for g in own:
        sub = by_index.get(g.index)
        if sub is None:
            out.append(g)
            continue
        if g.vram < sub.vram:
            raise ResourceError(
                f"GPU {g.index} VRAM: cannot subtract {format_size(sub.vram)} "
                f"from {format_size(g.vram)}"
            )
        out.append(replace(g, vram=g.vram - sub.vram))
    return tuple(out)


def add(a: Resources, b: Resources) -> Resources:
    """``a + b`` (e.g. the total of several allocations)."""
    cpu = replace(
        _fill(a.cpu, b.cpu, "cores"), cores=round_cores(to_float32(a.cpu.cores + b.cpu.cores))
    )
    ram = replace(_fill(a.ram, b.ram, "size"), size=a.ram.size + b.ram.size)
    disk = replace(_fill(a.disk, b.disk, "size"), size=a.disk.size + b.disk.size)
    return Resources(cpu=cpu, gpus=_add_gpus(a.gpus, b.gpus), ram=ram, disk=disk)


def subtract(a: Resources, b: Resources) -> Resources:
    """``a - b`` (e.g. free = onboarded - allocated); raises :class:`ResourceError` if negative."""
    if a.cpu.cores < b.cpu.cores:
        raise ResourceError(f"CPU cores: cannot subtract {b.cpu.cores:g} from {a.cpu.cores:g}")
    if a.ram.size < b.ram.size:
        raise ResourceError(
            f"RAM: cannot subtract {format_size(b.ram.size)} from {format_size(a.ram.size)}"
        )
    if a.disk.size < b.disk.size:
        raise ResourceError(
            f"disk: cannot subtract {format_size(b.disk.size)} from {format_size(a.disk.size)}"
        )
    return Resources(
        cpu=replace(a.cpu, cores=round_cores(to_float32(a.cpu.cores - b.cpu.cores))),
        gpus=_subtract_gpus(a.gpus, b.gpus),
        ram=replace(a.ram, size=a.ram.size - b.ram.size),
        disk=replace(a.disk, size=a.disk.size - b.disk.size),
    )


def compare_cpu(machine: CPU, required: CPU) -> Comparison:
    """Compute (cores × clock) within one architecture, else ``None`` (Go's ``CPU.Compare``)."""
    if machine.architecture != required.architecture:
        return Comparison.NONE
    return numeric(machine.compute, required.compute)


def compare_gpus(machine: tuple[GPU, ...], required: tuple[GPU, ...]) -> Comparison:
    """Match each required GPU to the best remaining machine GPU by VRAM.

    Best is the first Equal, else the first Better, else the first Worse; a matched machine GPU
    is not reused. Worse if any required GPU only got a Worse match, None if one got no GPU at
    all, Equal if all matches are Equal (or nothing is required), else Better.
    """
    remaining = list(machine)
    results: list[Comparison] = []
    for want in required:
        best, best_at = Comparison.NONE, -1
        for at, have in enumerate(remaining):
            cmp = numeric(have.vram, want.vram)
            if cmp is Comparison.EQUAL:
                best, best_at = cmp, at
                break
            better_first = cmp is Comparison.BETTER and best is not Comparison.BETTER
            worse_only = cmp is Comparison.WORSE and best is Comparison.NONE
            if better_first or worse_only:
                best, best_at = cmp, at
        if best_at >= 0:
            del remaining[best_at]
        results.append(best)
    if Comparison.WORSE in results:
        return Comparison.WORSE
    if Comparison.NONE in results:
        return Comparison.NONE
    if all(r is Comparison.EQUAL for r in results):
        return Comparison.EQUAL
    return Comparison.BETTER


def compare(machine: Resources, required: Resources) -> Comparison:
    """Go's ``Resources.Compare``: CPU, RAM, disk, GPUs folded with ``And``.

    ``Better``/``Equal`` mean the machine can host ``required``; ``Worse``/``None`` mean not.
    """
    return (
        compare_cpu(machine.cpu, required.cpu)
        .and_(numeric(machine.ram.size, required.ram.size))
        .and_(numeric(machine.disk.size, required.disk.size))
        .and_(compare_gpus(machine.gpus, required.gpus))
    )
