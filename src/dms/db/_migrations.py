"""Versioned schema migrations and the ``schema_version`` table.

A migration is ``(version, statements)``. The table ``schema_version`` keeps one row per applied
migration; the schema's version is the largest one. At open, every pending migration runs inside
**one** ``BEGIN IMMEDIATE`` transaction together with its ``schema_version`` rows (SQLite DDL is
transactional), so a failure at any step rolls the file back to the version it had before the open:
no half-migrated schema can exist. Statements are executed one by one, never with
``executescript``, because ``executescript`` commits any open transaction first.

Rules for new migrations: append, never edit a released one; keep each statement a single SQL
statement; add columns with defaults so old rows stay valid.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from dms.db._errors import SchemaVersionError


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: after it runs, the schema is at ``version``."""

    version: int
    description: str
    statements: tuple[str, ...]


_V1 = Migration(
    1,
    "onboarding, allocations (committed/allocated), deployments, bids",
    (
        # The onboarding config is a single row: the CHECK makes a second row impossible.
        """CREATE TABLE onboarding (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            is_onboarded INTEGER NOT NULL CHECK (is_onboarded IN (0, 1)),
            onboarded_resources TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        # One row per allocation whatever its state, so "committed xor allocated" holds by
        # construction (primary key) rather than by code in two tables. Only commitments expire.
        """CREATE TABLE allocations (
            allocation_id TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('committed', 'allocated')),
            ensemble_id TEXT NOT NULL,
            allocation_name TEXT NOT NULL,
            resources TEXT NOT NULL,
            ports TEXT NOT NULL,
            committed_at INTEGER NOT NULL,
            expires_at INTEGER,
            allocated_at INTEGER,
            CHECK ((state = 'committed') = (expires_at IS NOT NULL)),
            CHECK ((state = 'allocated') = (allocated_at IS NOT NULL))
        )""",
        "CREATE INDEX allocations_state ON allocations (state)",
        """CREATE INDEX allocations_expires_at ON allocations (expires_at)
            WHERE expires_at IS NOT NULL""",
        "CREATE INDEX allocations_ensemble ON allocations (ensemble_id)",
        """CREATE TABLE deployments (
            orchestrator_id TEXT PRIMARY KEY,
            ensemble_id TEXT NOT NULL,
            config TEXT NOT NULL,
            manifest TEXT NOT NULL,
            status INTEGER NOT NULL,
            snapshot TEXT NOT NULL,
            private_key BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        "CREATE INDEX deployments_status ON deployments (status, updated_at)",
        "CREATE INDEX deployments_updated_at ON deployments (updated_at)",
        "CREATE INDEX deployments_ensemble ON deployments (ensemble_id)",
        # Metadata is a side table so that "key = value" filters use an index instead of
        # parsing every manifest.
        """CREATE TABLE deployment_metadata (
            orchestrator_id TEXT NOT NULL
                REFERENCES deployments (orchestrator_id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (orchestrator_id, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX deployment_metadata_kv ON deployment_metadata (key, value)",
        """CREATE TABLE bids (
            ensemble_id TEXT PRIMARY KEY,
            bid TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        )""",
        "CREATE INDEX bids_expires_at ON bids (expires_at)",
    ),
)

_V2 = Migration(
    2,
    "public ports handed out to allocations",
    (
        # One row per port: the primary key makes handing a port out twice impossible, even to
        # two processes (a second insert of the same port fails). Not tied to ``allocations`` by
        # a foreign key, because ports are chosen before the commitment row is written.
        """CREATE TABLE ports (
            port INTEGER PRIMARY KEY CHECK (port BETWEEN 1 AND 65535),
            allocation_id TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        "CREATE INDEX ports_allocation ON ports (allocation_id)",
    ),
)

_V3 = Migration(
    3,
    "allocation records (what a provider runs, for re-adoption after a restart)",
    (
        # Written before an allocation takes effect (created, started, stopped), so a restarted
        # DMS knows which containers are still claimed and by which orchestrator. Separate from
        # the resource books (``allocations``), which only hold reserved resources.
        """CREATE TABLE allocation_records (
            allocation_id TEXT PRIMARY KEY,
            ensemble_id TEXT NOT NULL,
            allocation_name TEXT NOT NULL,
            executor TEXT NOT NULL,
            orchestrator TEXT NOT NULL,
            config TEXT NOT NULL,
            status TEXT NOT NULL,
            exit_code INTEGER,
            error TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL,
            started_at INTEGER,
            finished_at INTEGER,
            updated_at INTEGER NOT NULL
        )""",
        "CREATE INDEX allocation_records_status ON allocation_records (status)",
        "CREATE INDEX allocation_records_ensemble ON allocation_records (ensemble_id)",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3)
"""Every migration of the real schema, oldest first."""

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The schema version this code writes."""

_CREATE_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)"""


def check_migrations(migrations: Sequence[Migration]) -> None:
    """Refuse a list that is not exactly versions 1, 2, ..., n: a gap would skip a step."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(f"migration #{expected} has version {migration.version}")
        if not migration.statements:
            raise ValueError(f"migration {migration.version} has no statements")


def read_version(conn: sqlite3.Connection, where: str) -> int:
    """Return the file's schema version without writing anything (0 for an empty file).

    A file with tables but no ``schema_version`` was not made by us (e.g. the Go DMS's own
    SQLite file); it is refused rather than adopted.
    """
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in names:
        if names:
            raise SchemaVersionError(
                f"database {where} was not created by nunet-dms (no schema_version table)"
            )
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def refuse_newer(version: int, latest: int, where: str) -> None:
    """Raise if the file was written by newer code; the message says what to do."""
    if version > latest:
        raise SchemaVersionError(
            f"database {where} has schema version {version}, newer than the {latest} this "
            f"nunet-dms supports; upgrade nunet-dms or use another work_dir"
        )


def apply_pending(
    conn: sqlite3.Connection, migrations: Sequence[Migration], where: str
) -> tuple[int, int]:
    """Bring the schema up to date inside the caller's write transaction.

    Returns ``(version before, version after)``. The caller commits or rolls back, which is what
    makes the whole upgrade atomic.
    """
    conn.execute(_CREATE_VERSION_TABLE)
    before = read_version(conn, where)
    latest = migrations[-1].version if migrations else 0
    refuse_newer(before, latest, where)
    for migration in migrations[before:]:
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, time.time_ns()),
        )
    return before, latest
