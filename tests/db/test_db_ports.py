"""PortRepo: one lease per port (even across connections), all-or-none adds, release."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dms.db import (
    MIGRATIONS,
    SCHEMA_VERSION,
    ConflictError,
    Database,
    DatabaseError,
    Migration,
    PortLease,
    PortRepo,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "dms.sqlite3") as store:
        yield store


def test_add_look_up_and_release(db: Database) -> None:
    repo = PortRepo(db, clock=lambda: 7)
    assert repo.add("a1", [50001, 50002]) == [PortLease(50001, "a1", 7), PortLease(50002, "a1", 7)]
    repo.add("a2", [50003])
    assert repo.holder(50002) == "a1" and repo.holder(50004) is None
    assert repo.of("a1") == [50001, 50002]
    assert repo.taken(50002, 50004) == {50002: "a1", 50003: "a2"}
    assert repo.leases() == {"a1": [50001, 50002], "a2": [50003]}
    assert repo.release("a1", "nobody") == [50001, 50002]
    assert repo.release() == []
    assert repo.leases() == {"a2": [50003]}


def test_a_taken_port_fails_the_whole_add(db: Database) -> None:
    repo = PortRepo(db)
    repo.add("a1", [50001])
    with pytest.raises(ConflictError, match="port 50001 is already taken by allocation a1"):
        repo.add("a2", [50002, 50001])
    assert repo.of("a2") == []


def test_the_primary_key_guards_other_connections(tmp_path: Path) -> None:
    path = tmp_path / "dms.sqlite3"
    with Database.open(path) as one, Database.open(path) as two:
        PortRepo(one).add("a1", [50001])
        with pytest.raises(ConflictError):
            PortRepo(two).add("a2", [50001])
        # Even a raw insert that skips the repository's check is refused by the schema.
        with pytest.raises(DatabaseError, match="UNIQUE"), two.transaction() as conn:
            conn.execute("INSERT INTO ports VALUES (50001, 'a3', 0)")


def test_upgrade_from_schema_1_adds_the_ports_table(tmp_path: Path) -> None:
    path = tmp_path / "dms.sqlite3"
    v1: list[Migration] = [MIGRATIONS[0]]
    with Database.open(path, migrations=v1) as old, old.transaction() as conn:
        conn.execute("INSERT INTO onboarding VALUES (1, 1, ?, 5)", ('{"cpu":{"cores":1}}',))
    with Database.open(path) as db:
        assert db.schema_version == SCHEMA_VERSION
        PortRepo(db).add("a1", [50001])
        with db.read() as conn:
            assert conn.execute("SELECT is_onboarded FROM onboarding").fetchone()[0] == 1
