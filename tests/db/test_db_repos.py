"""The repositories: onboarding, resources (commit/allocate), deployments, bids."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dms.db import (
    Allocated,
    BidRepo,
    Commitment,
    ConflictError,
    Database,
    DeploymentRecord,
    DeploymentRepo,
    OnboardingConfig,
    OnboardingRepo,
    ResourceRepo,
)
from dms.errors import InvalidInput, NotFound

S = 1_000_000_000  # one second in ns
RES = '{"cpu":{"cores":2,"clock_speed":3e9},"ram":{"size":4000000000},"disk":{"size":1}}'


class FakeClock:
    def __init__(self, now: int = 1_700_000_000 * S) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "dms.sqlite3") as database:
        yield database


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- onboarding --------------------------------------------------------------------------------


def test_onboarding_get_set_clear(db: Database, clock: FakeClock) -> None:
    repo = OnboardingRepo(db, clock=clock)
    assert repo.get() is None
    stored = repo.set(OnboardingConfig(True, RES))
    assert stored.updated_at == clock.now
    assert repo.get() == stored
    clock.now += S
    repo.set(OnboardingConfig(False, "{}"))
    assert repo.get() == OnboardingConfig(False, "{}", clock.now)
    with db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM onboarding").fetchone()[0] == 1
    assert repo.clear() is True
    assert repo.get() is None
    assert repo.clear() is False


def test_onboarding_json_round_trip_and_validation(db: Database) -> None:
    config = OnboardingConfig(True, RES)
    text = config.to_json()
    assert json.loads(text) == {"is_onboarded": True, "onboarded_resources": json.loads(RES)}
    parsed = OnboardingConfig.from_json('{"IS_ONBOARDED": true, "Onboarded_Resources": {"a": 1}}')
    assert parsed == OnboardingConfig(True, '{"a":1}')
    with pytest.raises(InvalidInput):
        OnboardingConfig.from_json('{"is_onboarded": "yes"}')
    with pytest.raises(InvalidInput):
        OnboardingConfig.from_json("[1]")
    with pytest.raises(InvalidInput):
        OnboardingRepo(db).set(OnboardingConfig(True, "{not json"))


# -- resources ---------------------------------------------------------------------------------


def _commit(
    repo: ResourceRepo, clock: FakeClock, alloc: str, ttl: int = 60 * S, ensemble: str = "ens1"
) -> Commitment:
    return repo.commit(
        alloc,
        ensemble_id=ensemble,
        allocation_name=alloc.rsplit("_", maxsplit=1)[-1],
        resources=RES,
        ports='{"8080":80}',
        expires_at=clock.now + ttl,
    )


def test_commit_then_allocate_moves_the_allocation(db: Database, clock: FakeClock) -> None:
    repo = ResourceRepo(db, clock=clock)
    commitment = _commit(repo, clock, "ens1_web")
    assert repo.committed() == [commitment]
    assert repo.get_commitment("ens1_web") == commitment
    assert repo.allocated() == []
    clock.now += S
    allocated = repo.allocate("ens1_web")
    assert allocated == Allocated(
        "ens1_web", "ens1", "web", RES, '{"8080":80}', clock.now, commitment.created_at
    )
    assert repo.committed() == []
    assert repo.get_commitment("ens1_web") is None
    assert repo.allocated() == [allocated]
    assert repo.get_allocated("ens1_web") == allocated
    # Allocations never expire.
    clock.now += 3600 * S
    assert repo.expired() == []
    assert repo.allocated() == [allocated]


def test_allocation_is_never_both_committed_and_allocated(db: Database, clock: FakeClock) -> None:
    repo = ResourceRepo(db, clock=clock)
    _commit(repo, clock, "a")
    with pytest.raises(ConflictError, match="already committed"):
        _commit(repo, clock, "a")
    repo.allocate("a")
    with pytest.raises(ConflictError, match="already allocated"):
        _commit(repo, clock, "a")
    with pytest.raises(ConflictError, match="already allocated"):
        repo.allocate("a")
    with pytest.raises(NotFound):
        repo.allocate("never-committed")
    with db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM allocations").fetchone()[0] == 1
    # The schema itself refuses a half-state row.
    with pytest.raises(Exception, match="CHECK"), db.transaction() as conn:
        conn.execute("INSERT INTO allocations VALUES ('x','allocated','e','n','{}','{}',1,5,NULL)")


def test_commitments_expire(db: Database, clock: FakeClock) -> None:
    repo = ResourceRepo(db, clock=clock)
    short = _commit(repo, clock, "short", ttl=10 * S)
    long = _commit(repo, clock, "long", ttl=100 * S)
    assert repo.expired() == []
    clock.now += 10 * S  # expires_at is exclusive: at that instant it has expired
    assert repo.expired() == [short]
    assert repo.committed() == [long]
    with pytest.raises(NotFound, match="expired"):
        repo.allocate("short")
    # An expired commitment can be replaced by a new one.
    again = _commit(repo, clock, "short", ttl=5 * S)
    assert repo.get_commitment("short") == again
    clock.now += 200 * S
    assert {c.allocation_id for c in repo.delete_expired()} == {"short", "long"}
    assert repo.expired() == []
    assert repo.delete_expired() == []


def test_commit_rejects_past_expiry_and_bad_json(db: Database, clock: FakeClock) -> None:
    repo = ResourceRepo(db, clock=clock)
    with pytest.raises(ConflictError):
        _commit(repo, clock, "a", ttl=0)
    with pytest.raises(InvalidInput):
        repo.commit(
            "a", ensemble_id="e", allocation_name="a", resources="{", expires_at=clock.now + S
        )
    with pytest.raises(InvalidInput):
        repo.commit(
            "a",
            ensemble_id="e",
            allocation_name="a",
            resources="{}",
            ports="x",
            expires_at=clock.now + S,
        )


def test_release_and_release_ensemble(db: Database, clock: FakeClock) -> None:
    repo = ResourceRepo(db, clock=clock)
    _commit(repo, clock, "e1_a", ensemble="e1")
    _commit(repo, clock, "e1_b", ensemble="e1")
    _commit(repo, clock, "e2_a", ensemble="e2")
    repo.allocate("e1_b")
    assert repo.release_ensemble("e1", committed_only=True) == ["e1_a"]
    assert repo.get_allocated("e1_b") is not None
    assert repo.release_ensemble("e1") == ["e1_b"]
    assert repo.release("e2_a") is True
    assert repo.release("e2_a") is False
    assert repo.committed() == [] and repo.allocated() == []


def test_concurrent_allocate_has_one_winner(db: Database, clock: FakeClock) -> None:
    repo = ResourceRepo(db, clock=clock)
    _commit(repo, clock, "a")
    outcomes: list[str] = []

    def work() -> None:
        try:
            repo.allocate("a")
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]


# -- deployments -------------------------------------------------------------------------------


def _deployment(oid: str, status: int = 0, **metadata: str) -> DeploymentRecord:
    return DeploymentRecord(
        orchestrator_id=oid,
        ensemble_id=f"ens-{oid}",
        config='{"V1":{"Allocations":{}}}',
        manifest='{"id":"' + oid + '"}',
        status=status,
        snapshot="{}",
        private_key=b"\x08\x01\x12\x40" + bytes(range(64)),
        metadata=metadata,
    )


def test_deployment_save_get_update_delete(db: Database, clock: FakeClock) -> None:
    repo = DeploymentRepo(db, clock=clock)
    saved = repo.save(_deployment("o1", team="a"))
    assert saved.created_at == saved.updated_at == clock.now
    assert repo.get("o1") == saved
    assert repo.get_by_ensemble("ens-o1") == saved
    assert repo.get("missing") is None
    clock.now += S
    repo.update_status("o1", 4)
    repo.update("o1", manifest='{"id":"o1","v":2}', snapshot='{"s":1}', metadata={"team": "b"})
    got = repo.get("o1")
    assert got is not None
    assert (got.status, got.manifest, got.snapshot, dict(got.metadata)) == (
        4,
        '{"id":"o1","v":2}',
        '{"s":1}',
        {"team": "b"},
    )
    assert (got.created_at, got.updated_at) == (saved.created_at, clock.now)
    assert got.private_key == saved.private_key
    # A full save keeps created_at.
    clock.now += S
    resaved = repo.save(_deployment("o1", status=5))
    assert resaved.created_at == saved.created_at and resaved.updated_at == clock.now
    assert repo.get("o1") == resaved
    with pytest.raises(NotFound):
        repo.update_status("missing", 1)
    with pytest.raises(InvalidInput):
        repo.update("o1", manifest="{")
    assert repo.delete("o1") is True
    assert repo.delete("o1") is False
    with db.read() as conn:  # metadata went with it (foreign key cascade)
        assert conn.execute("SELECT COUNT(*) FROM deployment_metadata").fetchone()[0] == 0


def test_deployment_list_filters(db: Database, clock: FakeClock) -> None:
    repo = DeploymentRepo(db, clock=clock)
    for i, (status, team, env) in enumerate([(4, "a", "prod"), (4, "b", "prod"), (5, "a", "dev")]):
        clock.now += S
        repo.save(_deployment(f"o{i}", status=status, team=team, env=env))

    def ids(records: list[DeploymentRecord]) -> list[str]:
        return [r.orchestrator_id for r in records]

    assert ids(repo.list()) == ["o0", "o1", "o2"]
    assert ids(repo.list(status=4)) == ["o0", "o1"]
    assert ids(repo.list(status=[5, 7])) == ["o2"]
    assert ids(repo.list(metadata={"team": "a"})) == ["o0", "o2"]
    assert ids(repo.list(metadata={"team": "a", "env": "prod"})) == ["o0"]
    assert ids(repo.list(status=5, metadata={"env": "prod"})) == []
    assert repo.list(metadata={"team": "a"})[0].metadata == {"team": "a", "env": "prod"}
    with pytest.raises(InvalidInput):
        repo.list(status=[])


def test_deployment_prune(db: Database, clock: FakeClock) -> None:
    repo = DeploymentRepo(db, clock=clock)
    repo.save(_deployment("old-running", status=4))
    repo.save(_deployment("old-failed", status=5))
    clock.now += 100 * S
    repo.save(_deployment("new-failed", status=5))
    cutoff = clock.now - 50 * S
    assert repo.prune(cutoff, statuses=[5, 7]) == 1
    assert [r.orchestrator_id for r in repo.list()] == ["old-running", "new-failed"]
    assert repo.prune(cutoff) == 1
    assert [r.orchestrator_id for r in repo.list()] == ["new-failed"]


# -- bids --------------------------------------------------------------------------------------


def test_one_live_bid_per_ensemble(db: Database, clock: FakeClock) -> None:
    repo = BidRepo(db, clock=clock)
    first = repo.add("ens", '{"V1":{"NodeID":"n1"}}', expires_at=clock.now + 300 * S)
    assert first is not None
    assert repo.add("ens", '{"V1":{"NodeID":"n2"}}', expires_at=clock.now + 300 * S) is None
    assert repo.get("ens") == first
    clock.now += 300 * S
    assert repo.get("ens") is None
    second = repo.add("ens", '{"V1":{"NodeID":"n3"}}', expires_at=clock.now + 10 * S)
    assert second is not None and repo.get("ens") == second
    assert repo.delete("ens") is True
    assert repo.delete("ens") is False
    with pytest.raises(InvalidInput):
        repo.add("x", "nope", expires_at=clock.now + S)


def test_bid_cleanup(db: Database, clock: FakeClock) -> None:
    repo = BidRepo(db, clock=clock)
    for i, ttl in enumerate([1, 2, 10]):
        repo.add(f"e{i}", "{}", expires_at=clock.now + ttl * S)
    assert repo.delete_expired(clock.now + 2 * S) == 2
    assert repo.get("e2") is not None
    assert repo.delete_expired() == 0
