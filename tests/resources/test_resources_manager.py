"""ResourceManager: onboarding validation, the books, atomic commits and expiry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dms.db import ConflictError, Database, OnboardingConfig, OnboardingRepo
from dms.errors import InvalidInput
from dms.resources import (
    CPU,
    GPU,
    RAM,
    Disk,
    GPUUsage,
    GPUVendor,
    ResourceError,
    ResourceManager,
    Resources,
    Usage,
)

GIB = 1024**3
MACHINE = Resources(
    cpu=CPU(clock_speed=3e9, cores=8, architecture="amd64", model="Test CPU"),
    gpus=(GPU(index=0, vendor=GPUVendor.NVIDIA, model="T4", vram=16 * GIB),),
    ram=RAM(size=32 * GIB),
    disk=Disk(size=500 * GIB),
)
NOW = 1_000_000_000_000


def want(cores: float = 4, ram: int = 8, disk: int = 100, gpus: tuple[GPU, ...] = ()) -> Resources:
    return Resources(
        cpu=CPU(cores=cores), gpus=gpus, ram=RAM(size=ram * GIB), disk=Disk(size=disk * GIB)
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "dms.sqlite3") as db:
        yield db


@pytest.fixture
def manager(store: Database) -> ResourceManager:
    return ResourceManager(store, MACHINE)


def test_onboard_fills_descriptions_from_the_machine(manager: ResourceManager) -> None:
    assert manager.onboarded() is None and not manager.is_onboarded()
    offer = manager.onboard(want(gpus=(GPU(index=0, vram=4 * GIB),)))
    assert offer.cpu.clock_speed == 3e9 and offer.cpu.architecture == "amd64"
    assert offer.gpus[0].model == "T4" and offer.gpus[0].vram == 4 * GIB
    assert manager.onboarded() == offer
    assert manager.free() == offer
    assert manager.offboard() and manager.onboarded() is None
    assert not manager.offboard()


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (want(cores=0), "minimum is 1"),
        (want(cores=0.5), "minimum is 1"),
        (want(cores=9), "machine has 8"),
        (want(ram=3), "below the minimum"),  # 10 % of 32 GiB is 3.2 GiB
        (want(ram=29), "above the maximum"),  # 90 % is 28.8 GiB
        (want(disk=0), "disk must be more than 0"),
        (want(disk=501), "the machine has 500 GiB"),
        (want(gpus=(GPU(index=1, vram=4 * GIB),)), "no such GPU"),
        (want(gpus=(GPU(index=0, vram=1 * GIB),)), "GPU 0 VRAM"),
        (want(gpus=(GPU(index=0, vram=15 * GIB),)), "above the maximum"),
    ],
)
def test_onboard_validation(manager: ResourceManager, request_: Resources, match: str) -> None:
    previous = manager.onboard(want())
    with pytest.raises(InvalidInput, match=match) as info:
        manager.onboard(request_)
    assert "\n" not in str(info.value)
    assert manager.onboarded() == previous  # a refused onboarding leaves the previous one


def test_onboard_edges_are_accepted(manager: ResourceManager) -> None:
    manager.onboard(want(cores=1, ram=4, disk=1))
    manager.onboard(want(cores=8, ram=28, disk=500, gpus=(GPU(index=0, vram=14 * GIB),)))


def test_onboard_not_above_what_is_free_now(manager: ResourceManager) -> None:
    busy = Usage(ram_used=30 * GIB)
    busy_gpu = Usage(gpus=(GPUUsage(index=0, vram_used=14 * GIB),))
    with pytest.raises(InvalidInput, match="free now"):
        manager.onboard(want(ram=8), busy)
    with pytest.raises(InvalidInput, match=r"GPU 0 VRAM .* free now"):
        manager.onboard(want(ram=4, gpus=(GPU(index=0, vram=4 * GIB),)), busy_gpu)
    manager.onboard(want(ram=8), Usage(ram_used=8 * GIB))


def test_commit_allocate_release_and_free(manager: ResourceManager) -> None:
    with pytest.raises(ResourceError, match="not onboarded"):
        manager.commit("a1", "e1", "x", want(cores=1, ram=1, disk=1), 60, now=NOW)
    manager.onboard(want(cores=4, ram=8, disk=100))
    manager.commit("a1", "e1", "x", want(cores=1.5, ram=2, disk=10), 60, now=NOW)
    manager.commit("a2", "e1", "y", want(cores=1, ram=2, disk=10), 60, now=NOW)
    free = manager.free(now=NOW)
    assert (free.cpu.cores, free.ram.size, free.disk.size) == (1.5, 4 * GIB, 80 * GIB)
    with pytest.raises(ResourceError, match=r"CPU cores: 2 requested, 1\.5 available"):
        manager.commit("a3", "e1", "z", want(cores=2, ram=1, disk=1), 60, now=NOW)
    with pytest.raises(ConflictError):
        manager.commit("a1", "e1", "x", want(cores=0, ram=0, disk=0), 60, now=NOW)
    assert manager.allocate("a1", now=NOW + 1).cpu.cores == 1.5
    assert manager.allocated().cpu.cores == 1.5
    assert manager.committed(now=NOW).cpu.cores == 1
    assert manager.release("a1") and not manager.release("a1")
    assert manager.free(now=NOW).cpu.cores == 3


def test_free_is_never_negative(store: Database, manager: ResourceManager) -> None:
    manager.onboard(want(cores=8, ram=28, disk=500))
    manager.commit("a1", "e1", "x", want(cores=8, ram=28, disk=500), 60, now=NOW)
    manager.allocate("a1", now=NOW)
    # shrink the offer behind the manager's back (as a restart on a smaller machine could)
    smaller = want(cores=1, ram=4, disk=1).to_json().decode()
    OnboardingRepo(store).set(OnboardingConfig(True, smaller))
    free = manager.free()
    assert (free.cpu.cores, free.ram.size, free.disk.size) == (0, 0, 0)


def test_onboard_must_cover_what_is_reserved(manager: ResourceManager) -> None:
    manager.onboard(want(cores=4, ram=8, disk=100))
    manager.commit("a1", "e1", "x", want(cores=3, ram=1, disk=1), 60)
    with pytest.raises(InvalidInput, match="less than is committed"):
        manager.onboard(want(cores=2, ram=8, disk=100))


def test_concurrent_commits_never_over_commit(manager: ResourceManager) -> None:
    manager.onboard(want(cores=8, ram=16, disk=100))
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def worker(i: int) -> None:
        start.wait()
        try:
            manager.commit(f"a{i}", "e", f"n{i}", want(cores=1, ram=1, disk=1), 60)
            ok = True
        except ResourceError:
            ok = False
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 8
    assert manager.free().cpu.cores == 0


def test_expire_frees_lapsed_commitments(manager: ResourceManager) -> None:
    manager.onboard(want(cores=4, ram=8, disk=100))
    manager.commit("a1", "e1", "x", want(cores=4, ram=1, disk=1), 10, now=NOW)
    assert manager.free(now=NOW).cpu.cores == 0
    later = NOW + 11 * 10**9
    assert [c.allocation_id for c in manager.expire(later)] == ["a1"]
    assert manager.free(now=later).cpu.cores == 4
    assert manager.expire(later) == []


def test_check_stored(store: Database, manager: ResourceManager) -> None:
    assert manager.check_stored() is None
    manager.onboard(want(cores=8, ram=8, disk=100))
    assert manager.check_stored() is None
    smaller = ResourceManager(
        store, Resources(cpu=CPU(cores=4), ram=RAM(size=32 * GIB), disk=Disk(size=500 * GIB))
    )
    reason = smaller.check_stored()
    assert reason is not None and "machine has 4" in reason
