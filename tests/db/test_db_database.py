"""Opening the store: pragmas, permissions, transactions, threads, closing."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest
import trio

from dms.db import Database, DatabaseError, SchemaVersionError
from dms.errors import DMSError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _counter_db(path: Path) -> Database:
    db = Database.open(path)
    with db.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.execute("INSERT OR IGNORE INTO counter VALUES (1, 0)")
    return db


def test_open_sets_pragmas(tmp_path: Path) -> None:
    with Database.open(tmp_path / "dms.sqlite3") as db, db.read() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    full = Database.open(tmp_path / "full.sqlite3", synchronous="FULL", busy_timeout=1.5)
    with full, full.read() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1500


def test_file_is_private_and_parents_are_created_0700(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "a" / "b" / "dms.sqlite3"
        with Database.open(path) as db:
            with db.transaction() as conn:
                conn.execute("CREATE TABLE t (x)")
            assert _mode(path) == 0o600
            assert _mode(path.with_name("dms.sqlite3-wal")) == 0o600
            assert _mode(path.with_name("dms.sqlite3-shm")) == 0o600
        assert _mode(tmp_path / "a") == 0o700
        assert _mode(tmp_path / "a" / "b") == 0o700
    finally:
        os.umask(old)


def test_existing_directory_mode_is_kept_and_loose_file_tightened(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    path = tmp_path / "dms.sqlite3"
    path.touch()
    path.chmod(0o644)
    Database.open(path).close()
    assert _mode(path) == 0o600
    assert _mode(tmp_path) == 0o755


def test_transaction_commits_and_rolls_back(tmp_path: Path) -> None:
    with _counter_db(tmp_path / "db") as db:
        with db.transaction() as conn:
            conn.execute("UPDATE counter SET n = 5")
        with pytest.raises(KeyError), db.transaction() as conn:
            conn.execute("UPDATE counter SET n = 6")
            raise KeyError("boom")
        with db.read() as conn:
            assert conn.execute("SELECT n FROM counter").fetchone()[0] == 5


def test_sqlite_errors_become_one_line_database_errors(tmp_path: Path) -> None:
    with _counter_db(tmp_path / "db") as db:
        with pytest.raises(DatabaseError) as info, db.transaction() as conn:
            conn.execute("UPDATE counter SET n = 9")
            conn.execute("INSERT INTO counter VALUES (1, 1)")  # primary key clash
        assert isinstance(info.value, DMSError)
        assert "\n" not in str(info.value)
        assert "UNIQUE" in str(info.value)
        with db.read() as conn:
            assert conn.execute("SELECT n FROM counter").fetchone()[0] == 0
        with pytest.raises(DatabaseError), db.read() as conn:
            conn.execute("SELECT * FROM missing")


def test_nested_transactions_are_savepoints(tmp_path: Path) -> None:
    with _counter_db(tmp_path / "db") as db:
        with db.transaction() as outer:
            outer.execute("UPDATE counter SET n = 1")
            with pytest.raises(ValueError), db.transaction() as inner:
                inner.execute("UPDATE counter SET n = 2")
                raise ValueError("inner only")
            assert outer.execute("SELECT n FROM counter").fetchone()[0] == 1
            with db.transaction() as inner:
                inner.execute("UPDATE counter SET n = n + 10")
            with db.read() as reader:  # a read inside a write joins it
                assert reader.execute("SELECT n FROM counter").fetchone()[0] == 11
        with db.read() as conn:
            assert conn.execute("SELECT n FROM counter").fetchone()[0] == 11
        # An outer failure undoes released savepoints too.
        with pytest.raises(ValueError), db.transaction() as outer:
            with db.transaction() as inner:
                inner.execute("UPDATE counter SET n = 99")
            raise ValueError("outer")
        with db.read() as conn:
            assert conn.execute("SELECT n FROM counter").fetchone()[0] == 11


def test_write_inside_read_is_a_bug(tmp_path: Path) -> None:
    db = _counter_db(tmp_path / "db")
    with db, db.read(), pytest.raises(RuntimeError), db.transaction():
        pass


def test_close_is_idempotent_and_later_use_fails(tmp_path: Path) -> None:
    db = _counter_db(tmp_path / "db")
    with db.transaction(), pytest.raises(DatabaseError, match="inside a transaction"):
        db.close()
    db.close()
    db.close()
    assert db.closed
    with pytest.raises(DatabaseError, match="closed"), db.read():
        pass


def test_concurrent_writers_on_one_instance_never_lose_updates(tmp_path: Path) -> None:
    db = _counter_db(tmp_path / "db")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                with db.transaction() as conn:
                    n = conn.execute("SELECT n FROM counter").fetchone()[0]
                    conn.execute("UPDATE counter SET n = ?", (n + 1,))  # read-modify-write
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as conn:
        assert conn.execute("SELECT n FROM counter").fetchone()[0] == 8 * 200
    db.close()


def test_concurrent_connections_wait_for_each_other(tmp_path: Path) -> None:
    """Separate instances behave like separate processes: the busy timeout serialises them."""
    path = tmp_path / "db"
    _counter_db(path).close()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with Database.open(path) as db:
                for _ in range(100):
                    with db.transaction() as conn:
                        n = conn.execute("SELECT n FROM counter").fetchone()[0]
                        conn.execute("UPDATE counter SET n = ?", (n + 1,))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Database.open(path) as db, db.read() as conn:
        assert conn.execute("SELECT n FROM counter").fetchone()[0] == 400


def test_garbage_file_is_a_database_error(tmp_path: Path) -> None:
    path = tmp_path / "db"
    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(DatabaseError) as info:
        Database.open(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE machines (id)")
    conn.commit()
    conn.close()
    path.chmod(0o600)
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError, match="not created by nunet-dms"):
        Database.open(path)
    assert path.read_bytes() == before


def test_directory_in_the_way_is_a_database_error(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    with pytest.raises(DatabaseError, match="cannot create database"):
        Database.open(tmp_path / "db")


async def test_use_from_trio_worker_threads(tmp_path: Path) -> None:
    """How the daemon calls the store: each call in ``trio.to_thread``, many at once."""
    db = _counter_db(tmp_path / "db")

    def increment() -> None:
        with db.transaction() as conn:
            conn.execute("UPDATE counter SET n = n + 1")

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(trio.to_thread.run_sync, increment)
    with db.read() as conn:
        assert conn.execute("SELECT n FROM counter").fetchone()[0] == 50
    await trio.to_thread.run_sync(db.close)
