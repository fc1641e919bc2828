"""Add / subtract / compare with the Go DMS's rules, checked by example and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dms.resources import (
    CPU,
    GPU,
    RAM,
    Comparison,
    Disk,
    GPUVendor,
    ResourceError,
    Resources,
    add,
    compare,
    compare_gpus,
    subtract,
)
from dms.resources._types import to_float32

GIB = 1024**3


def res(
    cores: float = 0,
    ram: int = 0,
    disk: int = 0,
    gpus: tuple[int, ...] = (),
    *,
    clock: float = 2e9,
    arch: str = "amd64",
) -> Resources:
    return Resources(
        cpu=CPU(clock_speed=clock, cores=cores, architecture=arch),
        gpus=tuple(GPU(index=i, vendor=GPUVendor.NVIDIA, vram=v) for i, v in enumerate(gpus)),
        ram=RAM(size=ram),
        disk=Disk(size=disk),
    )


# -- Go's rules, by example ---------------------------------------------------------------------


def test_cores_are_rounded_to_hundredths_like_go() -> None:
    total = add(res(cores=0.1), res(cores=0.2))
    assert total.cpu.cores == to_float32(0.3)
    assert subtract(res(cores=1), res(cores=0.333)).cpu.cores == to_float32(0.67)


def test_subtract_underflow_names_the_part() -> None:
    with pytest.raises(ResourceError, match="CPU cores"):
        subtract(res(cores=1), res(cores=2))
    with pytest.raises(ResourceError, match="RAM: cannot subtract 2 GiB from 1 GiB"):
        subtract(res(ram=GIB), res(ram=2 * GIB))
    with pytest.raises(ResourceError, match="disk"):
        subtract(res(disk=1), res(disk=2))
    with pytest.raises(ResourceError, match="GPU 0 VRAM"):
        subtract(res(gpus=(GIB,)), res(gpus=(2 * GIB,)))
    with pytest.raises(ResourceError, match="GPU 1"):
        subtract(res(gpus=(GIB,)), res(gpus=(0, GIB)))


def test_add_keeps_clock_and_appends_new_gpus() -> None:
    total = add(Resources(), res(cores=2, gpus=(GIB,), clock=3e9))
    assert total.cpu.clock_speed == 3e9 and total.cpu.architecture == "amd64"
    assert total.gpus == res(gpus=(GIB,)).gpus


def test_gpus_add_and_subtract_by_index() -> None:
    a = res(gpus=(8 * GIB, 4 * GIB))
    b = Resources(gpus=(GPU(index=1, vram=GIB),))
    assert [g.vram for g in add(a, b).gpus] == [8 * GIB, 5 * GIB]
    assert [g.vram for g in subtract(a, b).gpus] == [8 * GIB, 3 * GIB]


def test_cpu_compare_uses_compute_within_one_architecture() -> None:
    # 2 cores at 3 GHz beat 4 cores at 1 GHz: compute, not core count, decides
    assert compare(res(cores=2, clock=3e9), res(cores=4, clock=1e9)) is Comparison.BETTER
    assert compare(res(cores=2, clock=2e9), res(cores=4, clock=1e9)) is Comparison.EQUAL
    assert compare(res(cores=8), res(cores=1, arch="arm64")) is Comparison.NONE


def test_compare_folds_parts_with_go_and() -> None:
    machine = res(cores=4, ram=8 * GIB, disk=100 * GIB)
    assert compare(machine, res(cores=2, ram=8 * GIB, disk=10 * GIB)) is Comparison.BETTER
    assert compare(machine, machine) is Comparison.EQUAL
    assert compare(machine, res(cores=2, ram=16 * GIB)) is Comparison.WORSE


def test_go_and_truth_table() -> None:
    b, w, e, n = Comparison.BETTER, Comparison.WORSE, Comparison.EQUAL, Comparison.NONE
    assert [b.and_(x) for x in (b, w, e, n)] == [b, w, b, n]
    assert [w.and_(x) for x in (b, w, e, n)] == [w, w, w, w]  # Go: case Worse: return Worse
    assert [e.and_(x) for x in (b, w, e, n)] == [b, w, e, n]
    assert [n.and_(x) for x in (b, w, e, n)] == [n, n, n, n]


def test_gpu_matching_prefers_equal_then_better() -> None:
    machine = res(gpus=(16 * GIB, 8 * GIB)).gpus
    # the 8 GiB requirement takes the equal 8 GiB card, leaving 16 GiB for the 12 GiB one
    assert compare_gpus(machine, res(gpus=(8 * GIB, 12 * GIB)).gpus) is Comparison.BETTER
    assert compare_gpus(machine, res(gpus=(16 * GIB, 8 * GIB)).gpus) is Comparison.EQUAL
    assert compare_gpus(machine, res(gpus=(12 * GIB, 12 * GIB)).gpus) is Comparison.WORSE
    assert compare_gpus(machine, ()) is Comparison.EQUAL
    # more GPUs required than present: not comparable (Go would say Better: a Go bug)
    assert compare_gpus(machine, res(gpus=(1, 1, 1)).gpus) is Comparison.NONE
    # Go stops half-way through the required list; we check the third GPU too
    three = res(gpus=(4 * GIB, 4 * GIB, 4 * GIB)).gpus
    assert compare_gpus(three, res(gpus=(4 * GIB, 4 * GIB, 8 * GIB)).gpus) is Comparison.WORSE


# -- properties -----------------------------------------------------------------------------------

cores = st.integers(min_value=0, max_value=100_000).map(lambda c: c / 100)
sizes = st.integers(min_value=0, max_value=2**50)
vrams = st.lists(st.integers(min_value=0, max_value=2**40), max_size=4)


@st.composite
def resources(draw: st.DrawFn, gpu_count: int | None = None) -> Resources:
    gpus = (
        draw(vrams)
        if gpu_count is None
        else draw(
            st.lists(
                st.integers(min_value=0, max_value=2**40), min_size=gpu_count, max_size=gpu_count
            )
        )
    )
    return res(cores=draw(cores), ram=draw(sizes), disk=draw(sizes), gpus=tuple(gpus))


@st.composite
def pairs(draw: st.DrawFn) -> tuple[Resources, Resources]:
    a = draw(resources())
    b = draw(resources(gpu_count=draw(st.integers(min_value=0, max_value=len(a.gpus)))))
    return a, b


@given(pairs())
def test_subtract_undoes_add(pair: tuple[Resources, Resources]) -> None:
    a, b = pair
    assert subtract(add(a, b), b) == a


@given(pairs())
def test_add_is_commutative_in_totals(pair: tuple[Resources, Resources]) -> None:
    a, b = pair
    ab, ba = add(a, b), add(b, a)
    assert (ab.cpu.cores, ab.ram.size, ab.disk.size) == (ba.cpu.cores, ba.ram.size, ba.disk.size)
    assert sorted(g.vram for g in ab.gpus) == sorted(g.vram for g in ba.gpus)


@given(pairs())
def test_compare_is_consistent_with_add(pair: tuple[Resources, Resources]) -> None:
    a, b = pair
    assert compare(a, a) is Comparison.EQUAL
    assert compare(add(a, b), a).fits
    if b == res(gpus=tuple(0 for _ in b.gpus)) and b.cpu.cores == 0:
        assert compare(add(a, b), a) is Comparison.EQUAL


@given(pairs())
def test_what_fits_can_be_subtracted(pair: tuple[Resources, Resources]) -> None:
    a, b = pair
    if compare(a, b).fits and all(g.vram <= a.gpus[g.index].vram for g in b.gpus):
        subtract(a, b)  # must not raise
