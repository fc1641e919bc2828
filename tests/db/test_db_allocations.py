"""Allocation records: written before each step, found again after a reopen, and the
migration that adds them keeps what older files hold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dms.db import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AllocationRecord,
    AllocationRepo,
    ConflictError,
    Database,
    PortRepo,
)
from dms.errors import InvalidInput, NotFound


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "dms.sqlite3") as store:
        yield store


def record(alloc_id: str = "e1_a", **changes: object) -> AllocationRecord:
    fields: dict[str, object] = {
        "allocation_id": alloc_id,
        "ensemble_id": alloc_id.split("_", maxsplit=1)[0],
        "allocation_name": alloc_id.split("_")[1],
        "executor": "wasm",
        "orchestrator": '{"id":{"pub":"AAAA"}}',
        "config": '{"Config":{}}',
    }
    fields.update(changes)
    return AllocationRecord(**fields)  # type: ignore[arg-type]


def test_lifecycle_of_a_record(db: Database) -> None:
    repo = AllocationRepo(db, clock=Clock())
    created = repo.create(record())
    assert created.status == "pending" and created.created_at == created.updated_at > 0
    assert created.live and repo.get("e1_a") == created
    with pytest.raises(ConflictError, match="already exists"):
        repo.create(record())
    running = repo.set_status("e1_a", "running", started=True)
    assert running.started_at is not None and running.finished_at is None
    done = repo.set_status("e1_a", "failed", exit_code=3, error="boom", finished=True)
    assert (done.status, done.exit_code, done.error) == ("failed", 3, "boom")
    assert done.started_at == running.started_at and done.finished_at is not None
    assert not done.live and repo.live_ids() == set()
    assert repo.delete("e1_a") and not repo.delete("e1_a")
    with pytest.raises(NotFound):
        repo.set_status("e1_a", "running")


def test_filters_and_validation(db: Database) -> None:
    repo = AllocationRepo(db, clock=Clock())
    for alloc_id in ("e1_a", "e1_b", "e2_a"):
        repo.create(record(alloc_id))
    repo.set_status("e1_b", "completed", exit_code=0, finished=True)
    assert [r.allocation_id for r in repo.list(ensemble_id="e1")] == ["e1_a", "e1_b"]
    assert [r.allocation_id for r in repo.list(status="completed")] == ["e1_b"]
    assert repo.live_ids() == {"e1_a", "e2_a"}
    with pytest.raises(InvalidInput, match="unknown allocation status"):
        repo.set_status("e1_a", "exploded")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        repo.create(record("e3_a", config="{"))


def test_records_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "dms.sqlite3"
    with Database.open(path) as store:
        AllocationRepo(store).create(record())
        AllocationRepo(store).set_status("e1_a", "running", started=True)
    with Database.open(path) as store:
        again = AllocationRepo(store).get("e1_a")
        assert again is not None and again.status == "running" and again.live


def test_upgrade_from_schema_2_adds_allocation_records(tmp_path: Path) -> None:
    path = tmp_path / "dms.sqlite3"
    with Database.open(path, migrations=MIGRATIONS[:2]) as old:
        PortRepo(old).add("e1_a", [50001])
    with Database.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert PortRepo(store).of("e1_a") == [50001]
        AllocationRepo(store).create(record())
        assert AllocationRepo(store).live_ids() == {"e1_a"}
