"""Crash safety: a writer SIGKILLed mid-transaction, or at random, loses nothing committed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dms.db import Database

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

_SETUP = """
import sys, time
from dms.db import Database
db = Database.open(sys.argv[1])
with db.transaction() as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, payload BLOB)")
    conn.execute("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER)")
    conn.execute("INSERT OR IGNORE INTO counter VALUES (1, 0)")
"""

_MID_TRANSACTION = (
    _SETUP
    + """
with db.read() as conn:
    conn.execute("PRAGMA cache_size = 8")  # tiny cache: uncommitted pages spill to the WAL
with db.transaction() as conn:
    for i in range(5000):
        conn.execute("INSERT INTO rows (payload) VALUES (randomblob(512))")
    conn.execute("UPDATE counter SET n = -1")
    print("ready", flush=True)
    time.sleep(60)
"""
)

_FOREVER = (
    _SETUP
    + """
print("ready", flush=True)
while True:
    with db.transaction() as conn:
        conn.execute("INSERT INTO rows (payload) VALUES (randomblob(2048))")
        conn.execute("UPDATE counter SET n = n + 1")
"""
)


def _start(script: str, path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    if proc.stdout is not None:
        proc.stdout.close()


def _check(path: Path) -> tuple[int, int]:
    with Database.open(path) as db, db.read() as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
        counter = conn.execute("SELECT n FROM counter").fetchone()[0]
    return rows, counter


def test_writer_killed_mid_transaction_leaves_the_previous_state(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Database.open(path) as db:
        with db.transaction() as conn:
            conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload BLOB)")
            conn.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)")
            conn.execute("INSERT INTO counter VALUES (1, 7)")
        with db.transaction() as conn:
            conn.executemany("INSERT INTO rows (payload) VALUES (?)", [(b"x",)] * 10)
    proc = _start(_MID_TRANSACTION, path)
    try:
        # The uncommitted transaction really reached the disk before the kill.
        assert path.with_name("db-wal").stat().st_size > 1_000_000
    finally:
        _kill(proc)
    assert _check(path) == (10, 7)
    # And the file is fully usable afterwards.
    with Database.open(path) as db, db.transaction() as conn:
        conn.execute("UPDATE counter SET n = n + 1")
    assert _check(path) == (10, 8)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_writer_killed_at_a_random_moment_keeps_every_commit_whole(
    tmp_path: Path, seed: int
) -> None:
    """Each commit adds one row and one increment: after any kill the two must agree."""
    path = tmp_path / "db"
    rng = random.Random(seed)
    total = 0
    for _ in range(3):
        proc = _start(_FOREVER, path)
        time.sleep(rng.uniform(0.05, 0.3))
        _kill(proc)
        rows, counter = _check(path)
        assert rows == counter
        assert counter >= total
        total = counter
    assert total > 0
