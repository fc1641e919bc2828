"""Schema migrations: atomic upgrades, preserved data, refusal of newer schemas."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dms.db import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Database,
    DatabaseError,
    Migration,
    OnboardingConfig,
    OnboardingRepo,
    SchemaVersionError,
)

V1 = Migration(1, "notes", ("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",))
V2 = Migration(
    2,
    "note authors",
    (
        "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT 'unknown'",
        "CREATE INDEX notes_author ON notes (author)",
    ),
)
V3_BROKEN = Migration(
    3,
    "half-broken",
    (
        "CREATE TABLE tags (note INTEGER, tag TEXT)",
        "ALTER TABLE notes ADD COLUMN author TEXT",  # duplicate column: fails
    ),
)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(db: Database) -> set[str]:
    with db.read() as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_fresh_database_gets_the_whole_schema(tmp_path: Path) -> None:
    with Database.open(tmp_path / "db") as db:
        assert db.schema_version == SCHEMA_VERSION == MIGRATIONS[-1].version
        assert {"onboarding", "allocations", "deployments", "bids", "schema_version"} <= _tables(db)
        with db.read() as conn:
            rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]
    # Reopening applies nothing twice.
    with Database.open(tmp_path / "db") as db, db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


def test_upgrade_from_an_older_version_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Database.open(path, migrations=[V1]) as db:
        assert db.schema_version == 1
        with db.transaction() as conn:
            conn.executemany("INSERT INTO notes (text) VALUES (?)", [("a",), ("b",)])
    with Database.open(path, migrations=[V1, V2]) as db:
        assert db.schema_version == 2
        with db.read() as conn:
            rows = conn.execute("SELECT text, author FROM notes ORDER BY id").fetchall()
        assert [tuple(r) for r in rows] == [("a", "unknown"), ("b", "unknown")]


def test_failed_migration_leaves_the_previous_version_intact(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Database.open(path, migrations=[V1]) as db, db.transaction() as conn:
        conn.execute("INSERT INTO notes (text) VALUES ('kept')")
    # Two pending migrations; the second fails after the first succeeded: both are undone.
    with pytest.raises(DatabaseError) as info:
        Database.open(path, migrations=[V1, V2, V3_BROKEN])
    assert "\n" not in str(info.value)
    assert "duplicate column" in str(info.value)
    with Database.open(path, migrations=[V1]) as db:
        assert db.schema_version == 1
        assert "tags" not in _tables(db)
        with db.read() as conn:
            assert [tuple(r) for r in conn.execute("SELECT * FROM notes")] == [(1, "kept")]
            columns = [r[1] for r in conn.execute("PRAGMA table_info(notes)")]
        assert columns == ["id", "text"]


def test_newer_database_is_refused_in_one_line_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Database.open(path, migrations=[V1, V2]) as db, db.transaction() as conn:
        conn.execute("INSERT INTO notes (text) VALUES ('from the future')")
    digest, mtime = _digest(path), path.stat().st_mtime_ns
    siblings = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SchemaVersionError) as info:
        Database.open(path, migrations=[V1])
    message = str(info.value)
    assert "\n" not in message
    assert "schema version 2" in message and "supports" in message and str(path) in message
    assert _digest(path) == digest
    assert path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings
    # And the refusal did not damage it for the code that understands it.
    with Database.open(path, migrations=[V1, V2]) as db, db.read() as conn:
        assert conn.execute("SELECT text FROM notes").fetchone()[0] == "from the future"


def test_real_schema_newer_than_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    future = Migration(SCHEMA_VERSION + 1, "future", ("CREATE TABLE future (x)",))
    Database.open(path, migrations=[*MIGRATIONS, future]).close()
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Database.open(path)


def test_real_schema_data_survives_a_later_migration(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Database.open(path) as db:
        OnboardingRepo(db).set(OnboardingConfig(True, '{"cpu":{"cores":2}}'))
    later = Migration(SCHEMA_VERSION + 1, "extra", ("CREATE TABLE extra (x)",))
    with Database.open(path, migrations=[*MIGRATIONS, later]) as db:
        assert db.schema_version == SCHEMA_VERSION + 1
        config = OnboardingRepo(db).get()
    assert config is not None and config.onboarded_resources == '{"cpu":{"cores":2}}'


@pytest.mark.parametrize(
    "migrations",
    [
        [Migration(2, "gap", ("SELECT 1",))],
        [V1, Migration(3, "gap", ("SELECT 1",))],
        [V1, Migration(2, "empty", ())],
    ],
)
def test_malformed_migration_lists_are_rejected(
    tmp_path: Path, migrations: list[Migration]
) -> None:
    with pytest.raises(ValueError):
        Database.open(tmp_path / "db", migrations=migrations)
    assert not (tmp_path / "db").exists()
