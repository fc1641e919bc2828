"""The resource manager: what this node offers (onboarded) and what is reserved of it (spec §9).

Go's ``dms/resources/resource_manager.go`` keeps onboarded, committed (per allocation, after
``/dms/deployment/commit``) and allocated resources; free = onboarded − Σcommitted − Σallocated.
Here the books live in the store (:mod:`dms.db`), so they survive a restart, and every decision
that reads the books and then writes them (commit) is one store transaction: the store's lock
serialises threads and ``BEGIN IMMEDIATE`` other processes, so concurrent commits can never
over-commit.

Onboarding validation follows ``dms/onboarding/onboarding.go``: cores in [1, machine cores];
RAM and each GPU's VRAM in [10 %, 90 %] of the machine's and not above what is free right now;
unlike Go, disk is checked too (> 0 and at most the machine's disk). The onboarded CPU/RAM/GPU
descriptions (clock, architecture, model...) are taken from the machine, so compute comparisons
work whatever the request carried.

Public ports leased to an allocation (:class:`PortAllocator`, same store) go with it: releasing
an allocation or expiring its commitment frees its ports in the same transaction.

Every method blocks (SQLite); from trio code call it through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import replace

import trio

from dms.db import Commitment, Database, OnboardingConfig, OnboardingRepo, ResourceRepo
from dms.errors import DMSError, InvalidInput
from dms.resources._arith import add
from dms.resources._detect import Usage
from dms.resources._errors import ResourceError
from dms.resources._ports import PortAllocator
from dms.resources._types import CPU, GPU, RAM, Disk, Resources, round_cores, to_float32
from dms.resources._units import format_size

log = logging.getLogger(__name__)

#: How often lapsed commitments are released (seconds).
EXPIRY_INTERVAL = 5.0
#: RAM and VRAM may be onboarded between these fractions of the machine's.
MIN_SHARE = 0.10
MAX_SHARE = 0.90


def _parse(text: str) -> Resources:
    return Resources.from_json(json.loads(text))


def _text(resources: Resources) -> str:
    return resources.to_json().decode()


def _total(items: list[str]) -> Resources:
    total = Resources()
    for text in items:
        total = add(total, _parse(text))
    return total


def _minus(a: Resources, b: Resources) -> Resources:
    """``a − b`` clamped at zero in every part (free resources are never negative)."""
    used_vram = {g.index: g.vram for g in b.gpus}
    return Resources(
        cpu=replace(a.cpu, cores=round_cores(to_float32(max(0.0, a.cpu.cores - b.cpu.cores)))),
        gpus=tuple(replace(g, vram=max(0, g.vram - used_vram.get(g.index, 0))) for g in a.gpus),
        ram=replace(a.ram, size=max(0, a.ram.size - b.ram.size)),
        disk=replace(a.disk, size=max(0, a.disk.size - b.disk.size)),
    )


def shortfall(available: Resources, wanted: Resources) -> str | None:
    """Why ``wanted`` does not fit in ``available`` (one line), or ``None`` when it fits.

    Parts are compared directly (cores, bytes, VRAM of the GPU with the same index), not by
    compute, so a request that leaves the CPU description empty still fits.
    """
    if wanted.cpu.cores > available.cpu.cores + 1e-6:
        return f"CPU cores: {wanted.cpu.cores:g} requested, {available.cpu.cores:g} available"
    if wanted.ram.size > available.ram.size:
        return (
            f"RAM: {format_size(wanted.ram.size)} requested, "
            f"{format_size(available.ram.size)} available"
        )
    if wanted.disk.size > available.disk.size:
        return (
            f"disk: {format_size(wanted.disk.size)} requested, "
            f"{format_size(available.disk.size)} available"
        )
    have = {g.index: g.vram for g in available.gpus}
    for gpu in wanted.gpus:
        if gpu.index not in have:
            return f"GPU {gpu.index}: not available"
        if gpu.vram > have[gpu.index]:
            return (
                f"GPU {gpu.index} VRAM: {format_size(gpu.vram)} requested, "
                f"{format_size(have[gpu.index])} available"
            )
    return None


def _share_error(what: str, wanted: int, total: int, free: int | None) -> str | None:
    low, high = int(total * MIN_SHARE), int(total * MAX_SHARE)
    if wanted < low:
        return (
            f"{what} {format_size(wanted)} is below the minimum of {format_size(low)} "
            f"(10 % of {format_size(total)})"
        )
    if wanted > high:
        return (
            f"{what} {format_size(wanted)} is above the maximum of {format_size(high)} "
            f"(90 % of {format_size(total)})"
        )
    if free is not None and wanted > free:
        return f"{what} {format_size(wanted)} is more than the {format_size(free)} free now"
    return None


def validate_onboarding(
    machine: Resources, wanted: Resources, usage: Usage | None = None
) -> Resources:
    """The resources to onboard, described from ``machine``; :class:`InvalidInput` if invalid.

    ``usage`` (what the machine uses right now) adds the "not above what is free now" checks
    for RAM and VRAM; without it only the capacity limits are checked (restart check).
    """
    cores = float(wanted.cpu.cores)
    if cores < 1:
        raise InvalidInput(f"cannot onboard {cores:g} CPU cores: the minimum is 1")
    if cores > machine.cpu.cores:
        raise InvalidInput(
            f"cannot onboard {cores:g} CPU cores: the machine has {machine.cpu.cores:g}"
        )
    free_ram = None if usage is None else max(0, machine.ram.size - usage.ram_used)
    problem = _share_error("RAM", wanted.ram.size, machine.ram.size, free_ram)
    if problem:
        raise InvalidInput(f"cannot onboard {problem}")
    if wanted.disk.size <= 0:
        raise InvalidInput("cannot onboard no disk: disk must be more than 0")
    if wanted.disk.size > machine.disk.size:
        raise InvalidInput(
            f"cannot onboard disk {format_size(wanted.disk.size)}: the machine has "
            f"{format_size(machine.disk.size)}"
        )
    by_index = {g.index: g for g in machine.gpus}
    used_vram: Mapping[int, int] = (
        {} if usage is None else {g.index: g.vram_used or 0 for g in usage.gpus}
    )
    gpus: list[GPU] = []
    seen: set[int] = set()
    for want in wanted.gpus:
        have = by_index.get(want.index)
        if have is None:
            raise InvalidInput(f"cannot onboard GPU {want.index}: the machine has no such GPU")
        if want.index in seen:
            raise InvalidInput(f"cannot onboard GPU {want.index} twice")
        seen.add(want.index)
        free = None if usage is None else max(0, have.vram - used_vram.get(want.index, 0))
        problem = _share_error(f"GPU {want.index} VRAM", want.vram, have.vram, free)
        if problem:
            raise InvalidInput(f"cannot onboard {problem}")
        gpus.append(replace(have, vram=want.vram))
    cpu = CPU(
        clock_speed=machine.cpu.clock_speed,
        cores=round_cores(cores),
        model=machine.cpu.model,
        vendor=machine.cpu.vendor,
        architecture=machine.cpu.architecture,
    )
    return Resources(
        cpu=cpu,
        gpus=tuple(gpus),
        ram=RAM(size=wanted.ram.size, clock_speed=machine.ram.clock_speed, type=machine.ram.type),
        disk=Disk(size=wanted.disk.size, type=machine.disk.type),
    )


class ResourceManager:
    """Onboarded, committed, allocated and free resources of this node, kept in ``store``."""

    def __init__(
        self, store: Database, machine: Resources, *, ports: PortAllocator | None = None
    ) -> None:
        """Keep the books in ``store``; ``machine`` is the detected hardware (validation).

        ``ports`` leases public ports from the configured range; by default Go's default range
        on the same store.
        """
        self._db = store
        self.machine = machine
        #: Public ports of allocations (freed with them by :meth:`release` and :meth:`expire`).
        self.ports = ports if ports is not None else PortAllocator(store)
        self._onboarding = OnboardingRepo(store)
        self._repo = ResourceRepo(store)

    # -- onboarding ----------------------------------------------------------------------------

    def onboarded(self) -> Resources | None:
        """The onboarded resources, or ``None`` when the node is not onboarded."""
        config = self._onboarding.get()
        if config is None or not config.is_onboarded:
            return None
        return _parse(config.onboarded_resources)

    def is_onboarded(self) -> bool:
        """Whether the node offers resources."""
        return self.onboarded() is not None

    def onboard(self, resources: Resources, usage: Usage | None = None) -> Resources:
        """Validate and store ``resources`` as this node's offer (replacing any previous one).

        Raises :class:`InvalidInput` with a one-line reason naming the limit; the previous
        onboarding is then left as it was. The new offer must also cover what is already
        committed and allocated.
        """
        offer = validate_onboarding(self.machine, resources, usage)
        with self._db.transaction():
            reserved = add(self.committed(), self.allocated())
            problem = shortfall(offer, reserved)
            if problem:
                raise InvalidInput(
                    f"cannot onboard less than is committed and allocated now ({problem})"
                )
            self._onboarding.set(OnboardingConfig(True, _text(offer)))
        return offer

    def offboard(self) -> bool:
        """Withdraw the offer; True if the node was onboarded."""
        return self._onboarding.clear()

    def check_stored(self) -> str | None:
        """Why the stored onboarding no longer fits this machine, or ``None`` (restart check)."""
        offer = self.onboarded()
        if offer is None:
            return None
        try:
            validate_onboarding(self.machine, offer)
        except InvalidInput as exc:
            return str(exc)
        return None

    # -- books ---------------------------------------------------------------------------------

    def committed(self, *, now: int | None = None) -> Resources:
        """Σ of live commitments."""
        return _total([c.resources for c in self._repo.committed(now=now)])

    def allocated(self) -> Resources:
        """Σ of allocated allocations."""
        return _total([a.resources for a in self._repo.allocated()])

    def free(self, *, now: int | None = None) -> Resources:
        """Onboarded − committed − allocated, never negative (empty when not onboarded)."""
        with self._db.read():
            offer = self.onboarded()
            return Resources() if offer is None else self._free_of(offer, now)

    def _free_of(self, offer: Resources, now: int | None) -> Resources:
        return _minus(_minus(offer, self.committed(now=now)), self.allocated())

    def commit(
        self,
        alloc_id: str,
        ensemble_id: str,
        name: str,
        resources: Resources,
        ttl_s: float,
        *,
        ports: str = "{}",
        now: int | None = None,
    ) -> Commitment:
        """Reserve ``resources`` for ``alloc_id`` for ``ttl_s`` seconds, or raise.

        Raises :class:`ResourceError` when the node is not onboarded or the request does not
        fit in what is free; :class:`dms.db.ConflictError` if ``alloc_id`` is already
        committed or allocated. Checking and writing happen in one transaction.
        """
        now = time.time_ns() if now is None else now
        with self._db.transaction():
            offer = self.onboarded()
            if offer is None:
                raise ResourceError("cannot commit resources: the node is not onboarded")
            problem = shortfall(self._free_of(offer, now), resources)
            if problem:
                raise ResourceError(f"cannot commit resources for {alloc_id}: {problem}")
            return self._repo.commit(
                alloc_id,
                ensemble_id=ensemble_id,
                allocation_name=name,
                resources=_text(resources),
                ports=ports,
                expires_at=now + int(ttl_s * 1e9),
                now=now,
            )

    def allocate(self, alloc_id: str, *, now: int | None = None) -> Resources:
        """Turn ``alloc_id``'s live commitment into an allocation; returns its resources."""
        return _parse(self._repo.allocate(alloc_id, now=now).resources)

    def release(self, alloc_id: str) -> bool:
        """Forget ``alloc_id`` (committed or allocated) and free its ports; True if it existed."""
        with self._db.transaction():
            self.ports.release(alloc_id)
            return self._repo.release(alloc_id)

    def commitment(self, alloc_id: str) -> Commitment | None:
        """The live-or-lapsed commitment of ``alloc_id`` (None once allocated or released)."""
        return self._repo.get_commitment(alloc_id)

    async def run_expiry(self, interval: float = EXPIRY_INTERVAL) -> None:
        """Release lapsed commitments every ``interval`` seconds until cancelled.

        A commitment nobody allocated (the orchestrator died, or chose another provider) must
        not hold this node's capacity past its TTL; this loop is what enforces it.
        """
        while True:
            await trio.sleep(interval)
            try:
                lapsed = await trio.to_thread.run_sync(self.expire)
            except DMSError as exc:
                log.warning("could not expire resource commitments: %s", exc)
                continue
            for commitment in lapsed:
                log.info(
                    "released expired commitment of allocation %s (ensemble %s)",
                    commitment.allocation_id,
                    commitment.ensemble_id,
                )

    def expire(self, now: int | None = None) -> list[Commitment]:
        """Delete commitments whose TTL has passed and free their ports; returns them."""
        with self._db.transaction():
            lapsed = self._repo.delete_expired(now)
            for commitment in lapsed:
                self.ports.release(commitment.allocation_id)
        return lapsed
