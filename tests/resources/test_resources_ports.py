"""PortAllocator: leases over a half-open range, host checks, persistence, concurrency."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dms.db import Database, PortRepo
from dms.errors import InvalidInput
from dms.resources import (
    CPU,
    RAM,
    Disk,
    PortAllocator,
    ResourceError,
    ResourceManager,
    Resources,
    port_is_free,
)

GIB = 1024**3
NOW = 1_000_000_000_000


def all_free(port: int) -> str | None:
    return None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "dms.sqlite3") as db:
        yield db


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP listener on 0.0.0.0 at a port the kernel picked (another program's port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_allocates_distinct_ports_inside_the_half_open_range(store: Database) -> None:
    ports = PortAllocator(store, 30000, 30005, probe=all_free)
    assert ports.allocate("a1", 3) == [30000, 30001, 30002]
    assert ports.allocate("a2", 2) == [30003, 30004]  # 30005 (the "to" bound) is never used
    with pytest.raises(ResourceError) as info:
        ports.allocate("a3")
    assert (
        str(info.value)
        == "port range 30000-30004 exhausted: 1 port requested for allocation a3, 0 free"
    )
    assert ports.leases() == {"a1": [30000, 30001, 30002], "a2": [30003, 30004]}


def test_exhaustion_is_all_or_nothing(store: Database) -> None:
    ports = PortAllocator(store, 30000, 30003, probe=all_free)
    ports.allocate("a1")
    with pytest.raises(ResourceError, match="3 ports requested for allocation a2, 2 free"):
        ports.allocate("a2", 3)
    assert ports.ports_of("a2") == []
    assert ports.allocate("a2", 2) == [30001, 30002]


def test_next_fit_does_not_reuse_a_just_released_port(store: Database) -> None:
    ports = PortAllocator(store, 30000, 30004, probe=all_free)
    assert ports.allocate("a1") == [30000]
    assert ports.release("a1") == [30000]
    assert ports.allocate("a2") == [30001]
    assert ports.allocate("a3", 2) == [30002, 30003]
    assert ports.allocate("a4") == [30000]  # wraps around once the range's end is reached


def test_specific_ports_taken_outside_range_or_twice(store: Database) -> None:
    ports = PortAllocator(store, 50000, 50100, probe=all_free)
    assert ports.reserve("nginx1", [50001]) == [50001]
    with pytest.raises(ResourceError) as info:
        ports.reserve("nginx2", [50002, 50001])
    assert str(info.value) == "port 50001 is already taken by allocation nginx1"
    assert ports.ports_of("nginx2") == []  # 50002 was not kept either
    with pytest.raises(ResourceError) as info:
        ports.reserve("nginx2", [80])
    assert str(info.value) == (
        "port 80 is outside the available range 50000-50099 (general.port_available_range_from/_to)"
    )
    with pytest.raises(ResourceError, match="outside"):
        ports.reserve("nginx2", [50100])  # the upper bound is excluded
    with pytest.raises(InvalidInput, match="port 50002 is requested twice"):
        ports.reserve("nginx2", [50002, 50002])
    with pytest.raises(InvalidInput, match="without an allocation id"):
        ports.allocate("")
    with pytest.raises(InvalidInput, match="cannot allocate -1 ports"):
        ports.allocate("x", -1)


def test_assign_mixes_static_and_dynamic_in_request_order(store: Database) -> None:
    ports = PortAllocator(store, 50000, 50010, probe=all_free)
    # 0 = dynamic; the static 50000 is reserved before any dynamic pick could take it.
    assert ports.assign("web", [0, 50000, 0]) == [50001, 50000, 50002]
    assert ports.ports_of("web") == [50000, 50001, 50002]
    assert ports.assign("more", []) == []


def test_a_port_bound_by_another_socket_is_skipped(store: Database, listener: int) -> None:
    assert not port_is_free(listener)
    ports = PortAllocator(store, listener, min(listener + 64, 65536))
    got = ports.allocate("a1", 2)
    assert listener not in got and all(listener < p < listener + 64 for p in got)
    with pytest.raises(ResourceError) as info:
        ports.reserve("a2", [listener])
    assert str(info.value).startswith(f"port {listener} is in use on this host (")
    only = PortAllocator(store, listener, listener + 1)
    with pytest.raises(ResourceError, match=f"port range {listener}-{listener} exhausted"):
        only.allocate("a3")


def test_check_availability_reserves_nothing(store: Database, listener: int) -> None:
    ports = PortAllocator(store, 50000, 50003, probe=all_free)
    ports.reserve("a1", [50000])
    assert ports.check_availability([50001], 1) is None
    assert ports.check_availability([50000]) == "port 50000 is already taken by allocation a1"
    assert ports.check_availability((), 3) == (
        "port range 50000-50002 exhausted: 3 ports requested, 2 free"
    )
    assert ports.leases() == {"a1": [50000]}
    real = PortAllocator(store, listener, listener + 1)
    assert "in use on this host" in (real.check_availability([listener]) or "")


def test_leases_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "dms.sqlite3"
    with Database.open(path) as db:
        first = PortAllocator(db, 30000, 30010, probe=all_free).allocate("a1", 3)
    with Database.open(path) as db:
        ports = PortAllocator(db, 30000, 30010, probe=all_free)  # a fresh cursor, as at start-up
        assert ports.leases() == {"a1": first}
        second = ports.allocate("a2", 3)
        assert not set(first) & set(second)
        with pytest.raises(ResourceError, match="taken by allocation a1"):
            ports.reserve("a3", [first[0]])
        assert ports.release("a1") == first
    with Database.open(path) as db:
        assert PortRepo(db).leases() == {"a2": second}


def test_threads_never_get_the_same_port(tmp_path: Path) -> None:
    """Real host checks, two store connections (as two processes), eight threads."""
    path = tmp_path / "dms.sqlite3"
    with Database.open(path) as db1, Database.open(path) as db2:
        allocators = [PortAllocator(db1, 21000, 23000), PortAllocator(db2, 21000, 23000)]
        results: dict[str, list[int]] = {}
        errors: list[BaseException] = []
        start = threading.Barrier(8)

        def work(n: int) -> None:
            start.wait()
            try:
                for i in range(15):
                    alloc = f"t{n}-{i}"
                    results[alloc] = allocators[n % 2].allocate(alloc, 2)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        handed_out = [p for ports in results.values() for p in ports]
        assert len(handed_out) == 8 * 15 * 2
        assert len(set(handed_out)) == len(handed_out)
        assert all(21000 <= p < 23000 for p in handed_out)
        assert PortRepo(db1).leases() == {k: sorted(v) for k, v in results.items()}


def test_resource_manager_frees_ports_with_the_allocation(store: Database) -> None:
    machine = Resources(cpu=CPU(cores=8), ram=RAM(size=32 * GIB), disk=Disk(size=500 * GIB))
    manager = ResourceManager(
        store, machine, ports=PortAllocator(store, 40000, 40010, probe=all_free)
    )
    manager.onboard(Resources(cpu=CPU(cores=4), ram=RAM(size=8 * GIB), disk=Disk(size=100 * GIB)))
    small = Resources(cpu=CPU(cores=1), ram=RAM(size=GIB), disk=Disk(size=GIB))
    manager.commit("short", "e1", "a", small, ttl_s=1, now=NOW)
    manager.commit("long", "e1", "b", small, ttl_s=60, now=NOW)
    assert manager.ports.assign("short", [0, 40005]) == [40000, 40005]
    assert manager.ports.allocate("long") == [40001]
    assert [c.allocation_id for c in manager.expire(now=NOW + 2 * 10**9)] == ["short"]
    assert manager.ports.leases() == {"long": [40001]}
    assert manager.release("long") is True
    assert manager.ports.leases() == {}


def test_default_range_is_gos(store: Database) -> None:
    ports = ResourceManager(store, Resources()).ports
    assert (ports.start, ports.end) == (16384, 65536)
    with pytest.raises(InvalidInput, match="invalid port range"):
        PortAllocator(store, 100, 100)
    with pytest.raises(InvalidInput, match="invalid port range"):
        PortAllocator(store, 1000, 65537)
