"""``resources:`` of an allocation in human units → :class:`dms.resources.Resources`.

Units as the Go parser converts them (``ensemblev1/transform.go``): ``ram.size``,
``disk.size`` and GPU ``vram`` are GiB unless a unit is given (``512MiB``, ``2GB`` = 2e9),
clock speeds GHz unless given (``2400MHz``); cores may be fractional (rounded to 0.01 as Go's
float32). A top-level ``resources:`` map names reusable blocks: an allocation writes
``resources: small`` or ``resources: {name: small, ram: {size: 4}}`` (its keys override the
named block's, shallowly, as in Go).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dms.errors import InvalidInput
from dms.executor import InvalidSpec
from dms.jobs._fields import Reader
from dms.jobs._problems import Problems
from dms.jobs._yaml import child_path
from dms.resources import (
    CPU,
    GPU,
    RAM,
    Disk,
    GPUVendor,
    Resources,
    parse_clock,
    parse_size,
    round_cores,
)

_CPU_KEYS = ("cores", "clock_speed", "model", "vendor", "threads", "architecture", "cache_size")
_RAM_KEYS = ("size", "clock_speed", "type")
_DISK_KEYS = ("size", "model", "vendor", "type", "interface", "read_speed", "write_speed")
_GPU_KEYS = ("index", "vendor", "model", "vram", "pci_address", "uuid")
_KEYS = ("name", "cpu", "gpus", "ram", "disk")


def _unit_value(r: Reader, value: Any, path: str) -> bool:
    """Whether ``value`` can be a quantity (a number or text such as ``512MiB``)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        r.add(path, f"expected a number or a quantity such as 512MiB, got {value!r}")
        return False
    return True


def _size(r: Reader, value: Any, path: str) -> int:
    if value is None or not _unit_value(r, value, path):
        return 0
    try:
        return parse_size(value)
    except InvalidInput as exc:
        r.add(path, str(exc))
        return 0


def _clock(r: Reader, value: Any, path: str) -> float:
    if value is None or not _unit_value(r, value, path):
        return 0.0
    try:
        return parse_clock(value)
    except InvalidInput as exc:
        r.add(path, str(exc))
        return 0.0


def resolve_named(r: Reader, block: Any, path: str, named: Mapping[str, Any]) -> Any:
    """A string or ``{name: ...}`` reference to a top-level ``resources:`` entry, merged."""
    if isinstance(block, str):
        block = {"name": block}
    if not isinstance(block, Mapping) or "name" not in block:
        return block
    name = block["name"]
    base = named.get(name) if isinstance(name, str) else None
    if not isinstance(base, Mapping):
        r.add(child_path(path, "name"), f"no resources named {name!r} in the top-level 'resources'")
        return {k: v for k, v in block.items() if k != "name"}
    return {**base, **{k: v for k, v in block.items() if k != "name"}}


def parse_resources(r: Reader, block: Any, path: str) -> Resources:
    """Resources from a YAML block (problems recorded in ``r``)."""
    obj = r.mapping(block, path)
    r.only(obj, path, _KEYS)
    cpu_path, ram_path, disk_path = (child_path(path, k) for k in ("cpu", "ram", "disk"))
    cpu = r.mapping(obj.get("cpu"), cpu_path)
    r.only(cpu, cpu_path, _CPU_KEYS)
    ram = r.mapping(obj.get("ram"), ram_path)
    r.only(ram, ram_path, _RAM_KEYS)
    disk = r.mapping(obj.get("disk"), disk_path)
    r.only(disk, disk_path, _DISK_KEYS)
    gpus = []
    for i, item in enumerate(r.list(obj.get("gpus"), child_path(path, "gpus"))):
        gpath = f"{path}.gpus[{i}]"
        g = r.mapping(item, gpath)
        r.only(g, gpath, _GPU_KEYS)
        vendor = r.string(g.get("vendor"), f"{gpath}.vendor")
        gpus.append(
            GPU(
                index=r.integer(g.get("index", i), f"{gpath}.index"),
                vendor=GPUVendor.parse(vendor) if vendor else GPUVendor.UNKNOWN,
                model=r.string(g.get("model"), f"{gpath}.model"),
                vram=_size(r, g.get("vram"), f"{gpath}.vram"),
                pci_address=r.string(g.get("pci_address"), f"{gpath}.pci_address"),
                uuid=r.string(g.get("uuid"), f"{gpath}.uuid"),
            )
        )
    return Resources(
        cpu=CPU(
            cores=round_cores(r.number(cpu.get("cores"), f"{cpu_path}.cores")),
            clock_speed=_clock(r, cpu.get("clock_speed"), f"{cpu_path}.clock_speed"),
            model=r.string(cpu.get("model"), f"{cpu_path}.model"),
            vendor=r.string(cpu.get("vendor"), f"{cpu_path}.vendor"),
            threads=r.integer(cpu.get("threads"), f"{cpu_path}.threads"),
            architecture=r.string(cpu.get("architecture"), f"{cpu_path}.architecture"),
            cache_size=_size(r, cpu.get("cache_size"), f"{cpu_path}.cache_size"),
        ),
        gpus=tuple(gpus),
        ram=RAM(
            size=_size(r, ram.get("size"), f"{ram_path}.size"),
            clock_speed=int(_clock(r, ram.get("clock_speed"), f"{ram_path}.clock_speed")),
            type=r.string(ram.get("type"), f"{ram_path}.type"),
        ),
        disk=Disk(
            size=_size(r, disk.get("size"), f"{disk_path}.size"),
            model=r.string(disk.get("model"), f"{disk_path}.model"),
            vendor=r.string(disk.get("vendor"), f"{disk_path}.vendor"),
            type=r.string(disk.get("type"), f"{disk_path}.type"),
            interface=r.string(disk.get("interface"), f"{disk_path}.interface"),
            read_speed=r.integer(disk.get("read_speed"), f"{disk_path}.read_speed"),
            write_speed=r.integer(disk.get("write_speed"), f"{disk_path}.write_speed"),
        ),
    )


def resources_from_yaml(block: Any) -> Resources:
    """``resources:`` of one allocation (human units); raises :class:`InvalidSpec` naming the
    first problem (used by ``nunet executor run``, which reads a single allocation)."""
    problems = Problems()
    resources = parse_resources(Reader(problems), block, "resources")
    if problems:
        raise InvalidSpec(str(problems.items[0]))
    return resources
