"""Restart (close + reopen) returns everything; every repository query uses an index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dms.db
import dms.errors
from dms.db import (
    BidRepo,
    Database,
    DeploymentRecord,
    DeploymentRepo,
    OnboardingConfig,
    OnboardingRepo,
    ResourceRepo,
)

S = 1_000_000_000
NOW = 1_700_000_000 * S


def clock() -> int:
    return NOW


def _fill(db: Database) -> None:
    OnboardingRepo(db, clock=clock).set(OnboardingConfig(True, '{"cpu":{"cores":4}}'))
    resources = ResourceRepo(db, clock=clock)
    for name in ("a", "b", "c"):
        resources.commit(
            f"e_{name}",
            ensemble_id="e",
            allocation_name=name,
            resources='{"ram":{"size":1}}',
            ports='{"1":2}',
            expires_at=NOW + 60 * S,
        )
    resources.allocate("e_b")
    DeploymentRepo(db, clock=clock).save(
        DeploymentRecord("o", "e", "{}", "{}", 4, '{"x":1}', b"\x00key\xff", {"k": "v"})
    )
    BidRepo(db, clock=clock).add("e", '{"V1":{}}', expires_at=NOW + 300 * S)


def _dump(db: Database) -> tuple[object, ...]:
    resources = ResourceRepo(db, clock=clock)
    return (
        OnboardingRepo(db).get(),
        resources.committed(),
        resources.allocated(),
        DeploymentRepo(db).list(),
        BidRepo(db, clock=clock).get("e"),
    )


def test_restart_returns_everything_stored(tmp_path: Path) -> None:
    path = tmp_path / "dms.sqlite3"
    with Database.open(path) as db:
        _fill(db)
        before = _dump(db)
    assert not path.with_name("dms.sqlite3-wal").exists()  # clean close checkpoints the WAL
    with Database.open(path) as db:
        after = _dump(db)
    assert after == before
    onboarding, committed, allocated, deployments, bid = after
    assert onboarding is not None
    assert [c.allocation_id for c in committed] == ["e_a", "e_c"]  # type: ignore[attr-defined]
    assert [a.allocation_id for a in allocated] == ["e_b"]  # type: ignore[attr-defined]
    assert deployments[0].private_key == b"\x00key\xff"  # type: ignore[index]
    assert bid is not None


def test_every_repository_query_is_indexed(tmp_path: Path) -> None:
    """Run every repository call with a trace, then check no statement scans a whole table.

    Only an unfiltered ``DeploymentRepo.list()`` may scan (its output is the whole table), so it
    is not called here.
    """
    with Database.open(tmp_path / "dms.sqlite3") as db:
        statements: list[str] = []
        with db.read() as conn:
            conn.set_trace_callback(statements.append)
        _fill(db)
        resources = ResourceRepo(db, clock=clock)
        deployments = DeploymentRepo(db, clock=clock)
        bids = BidRepo(db, clock=clock)
        resources.committed()
        resources.expired()
        resources.delete_expired(NOW + 120 * S)
        resources.release_ensemble("e", committed_only=True)
        resources.release("e_b")
        resources.get_commitment("x")
        resources.get_allocated("x")
        deployments.get("o")
        deployments.get_by_ensemble("e")
        deployments.list(status=4)
        deployments.list(metadata={"k": "v"})
        deployments.update_status("o", 5)
        deployments.prune(NOW, statuses=[5])
        deployments.prune(NOW)
        deployments.delete("o")
        bids.get("e")
        bids.delete_expired()
        bids.delete("e")
        OnboardingRepo(db).get()
        OnboardingRepo(db).clear()
        with db.read() as conn:
            conn.set_trace_callback(None)
            scans: list[str] = []
            for sql in statements:
                if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
                    continue
                if "sqlite_master" in sql or "schema_version" in sql:
                    continue
                try:
                    plan = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                except sqlite3.Error:
                    continue
                for row in plan:
                    detail = str(row[3])
                    if detail.startswith("SCAN") and "USING" not in detail:
                        scans.append(f"{sql!r}: {detail}")
    assert len(statements) > 30
    assert scans == []


def test_public_api() -> None:
    for name in dms.db.__all__:
        assert not name.startswith("_")
        assert hasattr(dms.db, name), name
    assert sorted(dms.db.__all__) == sorted(set(dms.db.__all__))
    assert {
        "Database",
        "DatabaseError",
        "OnboardingRepo",
        "ResourceRepo",
        "DeploymentRepo",
        "BidRepo",
    } <= set(dms.db.__all__)
    assert issubclass(dms.db.DatabaseError, dms.errors.DMSError)
