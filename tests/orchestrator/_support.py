"""Small builders for matcher tests: resources in whole units, demands and offers."""

from __future__ import annotations

from dms.orchestrator import NodeDemand, Offer
from dms.resources import CPU, GPU, RAM, Disk, Location, Resources

GIB = 1 << 30


def res(
    cores: float = 0, ram_gib: float = 0, disk_gib: float = 0, vram_gib: float = 0
) -> Resources:
    gpus = (GPU(index=0, vram=int(vram_gib * GIB)),) if vram_gib else ()
    return Resources(
        cpu=CPU(cores=cores),
        ram=RAM(size=int(ram_gib * GIB)),
        disk=Disk(size=int(disk_gib * GIB)),
        gpus=gpus,
    )


def demand(name: str, cores: float = 1, ram_gib: float = 1, **kw: object) -> NodeDemand:
    return NodeDemand(
        name=name,
        resources=res(cores, ram_gib),
        executors=frozenset({"docker"}),
        **kw,  # type: ignore[arg-type]
    )


def offer(
    peer: str,
    node: str,
    cores: float | None = 8,
    ram_gib: float = 16,
    location: Location | None = None,
    **kw: object,
) -> Offer:
    free = None if cores is None else res(cores, ram_gib, 100)
    return Offer(peer=peer, node=node, location=location or Location(), free=free, **kw)  # type: ignore[arg-type]
