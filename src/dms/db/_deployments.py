"""The orchestrator's persistent view of each deployment (Go: clover ``deployments``, spec §8).

Go persists ``OrchestratorView{OrchestratorID, Cfg, Manifest, Status, DeploymentSnapshot,
PrivKey}`` so that orchestrators are restored after a restart. The config, manifest and snapshot
are JSON text (their models belong to the orchestrator layer); the status is the Go enum's int
(0 Preparing ... 7 Completed); the private key is the orchestrator actor's marshalled key.
String metadata (e.g. manifest labels) sits in an indexed side table so that filtering by a
key/value pair does not parse every manifest.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dms.db._database import Database
from dms.db._json import Clock, check_json
from dms.errors import InvalidInput, NotFound

_COLUMNS = (
    "orchestrator_id, ensemble_id, config, manifest, status, snapshot, private_key, "
    "created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """One orchestrator's state; timestamps are Unix ns, filled in by the repository."""

    orchestrator_id: str
    ensemble_id: str
    config: str
    manifest: str
    status: int
    snapshot: str = "{}"
    private_key: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0


def _statuses(status: int | Iterable[int]) -> list[int]:
    values = [status] if isinstance(status, int) else list(status)
    if not values or not all(isinstance(v, int) for v in values):
        raise InvalidInput("status filter must be an int or a non-empty list of ints")
    return values


def _check_metadata(metadata: Mapping[str, str]) -> None:
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInput("deployment metadata keys and values must be strings")


class DeploymentRepo:
    """Save, look up, list, update and prune deployments."""

    def __init__(self, db: Database, *, clock: Clock = time.time_ns) -> None:
        """Use ``db``; ``clock`` (Unix ns) stamps ``created_at``/``updated_at``."""
        self._db = db
        self._clock = clock

    def save(self, record: DeploymentRecord) -> DeploymentRecord:
        """Insert or fully replace ``record``; ``created_at`` is kept from the first save."""
        check_json(record.config, "deployment config")
        check_json(record.manifest, "deployment manifest")
        check_json(record.snapshot, "deployment snapshot")
        _check_metadata(record.metadata)
        now = self._clock()
        with self._db.transaction() as conn:
            conn.execute(
                f"""INSERT INTO deployments ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (orchestrator_id) DO UPDATE SET
                       ensemble_id = excluded.ensemble_id, config = excluded.config,
                       manifest = excluded.manifest, status = excluded.status,
                       snapshot = excluded.snapshot, private_key = excluded.private_key,
                       updated_at = excluded.updated_at""",
                (
                    record.orchestrator_id,
                    record.ensemble_id,
                    record.config,
                    record.manifest,
                    record.status,
                    record.snapshot,
                    bytes(record.private_key),
                    now,
                    now,
                ),
            )
            self._write_metadata(conn, record.orchestrator_id, record.metadata)
            row = conn.execute(
                "SELECT created_at FROM deployments WHERE orchestrator_id = ?",
                (record.orchestrator_id,),
            ).fetchone()
        return DeploymentRecord(
            record.orchestrator_id,
            record.ensemble_id,
            record.config,
            record.manifest,
            record.status,
            record.snapshot,
            bytes(record.private_key),
            dict(record.metadata),
            row[0],
            now,
        )

    @staticmethod
    def _write_metadata(
        conn: sqlite3.Connection, orchestrator_id: str, metadata: Mapping[str, str]
    ) -> None:
        conn.execute(
            "DELETE FROM deployment_metadata WHERE orchestrator_id = ?", (orchestrator_id,)
        )
        conn.executemany(
            "INSERT INTO deployment_metadata (orchestrator_id, key, value) VALUES (?, ?, ?)",
            [(orchestrator_id, k, v) for k, v in metadata.items()],
        )

    def get(self, orchestrator_id: str) -> DeploymentRecord | None:
        """The deployment run by ``orchestrator_id``, if stored."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM deployments WHERE orchestrator_id = ?",
                (orchestrator_id,),
            ).fetchone()
            return None if row is None else self._record(conn, row)

    def get_by_ensemble(self, ensemble_id: str) -> DeploymentRecord | None:
        """The deployment of ``ensemble_id`` (the newest if several were stored)."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM deployments WHERE ensemble_id = ? "
                "ORDER BY created_at DESC LIMIT 1",
                (ensemble_id,),
            ).fetchone()
            return None if row is None else self._record(conn, row)

    @staticmethod
    def _record(conn: sqlite3.Connection, row: sqlite3.Row) -> DeploymentRecord:
        metadata = dict(
            conn.execute(
                "SELECT key, value FROM deployment_metadata WHERE orchestrator_id = ?",
                (row[0],),
            ).fetchall()
        )
        return DeploymentRecord(
            row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]), metadata, row[7], row[8]
        )

    def list(
        self,
        *,
        status: int | Iterable[int] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> list[DeploymentRecord]:
        """Deployments, oldest first, with the given status(es) and every given metadata pair."""
        where: list[str] = []
        params: list[object] = []
        if status is not None:
            values = _statuses(status)
            where.append(f"status IN ({', '.join('?' * len(values))})")
            params.extend(values)
        for key, value in (metadata or {}).items():
            where.append(
                "orchestrator_id IN (SELECT orchestrator_id FROM deployment_metadata "
                "WHERE key = ? AND value = ?)"
            )
            params.extend((key, value))
        sql = f"SELECT {_COLUMNS} FROM deployments"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, orchestrator_id"
        with self._db.read() as conn:
            rows = conn.execute(sql, params).fetchall()
            return [self._record(conn, row) for row in rows]

    def update(
        self,
        orchestrator_id: str,
        *,
        status: int | None = None,
        manifest: str | None = None,
        snapshot: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Change some fields of a stored deployment (e.g. on each status transition).

        Raises :class:`~dms.errors.NotFound` if it is not stored.
        """
        sets: list[str] = ["updated_at = ?"]
        params: list[object] = [self._clock()]
        if status is not None:
            sets.append("status = ?")
            params.append(int(status))
        if manifest is not None:
            sets.append("manifest = ?")
            params.append(check_json(manifest, "deployment manifest"))
        if snapshot is not None:
            sets.append("snapshot = ?")
            params.append(check_json(snapshot, "deployment snapshot"))
        if metadata is not None:
            _check_metadata(metadata)
        with self._db.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE deployments SET {', '.join(sets)} WHERE orchestrator_id = ?",
                [*params, orchestrator_id],
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no deployment for orchestrator {orchestrator_id}")
            if metadata is not None:
                self._write_metadata(conn, orchestrator_id, metadata)

    def update_status(self, orchestrator_id: str, status: int) -> None:
        """Record a status transition; raises :class:`~dms.errors.NotFound` if not stored."""
        self.update(orchestrator_id, status=status)

    def delete(self, orchestrator_id: str) -> bool:
        """Forget a deployment (its metadata goes with it); returns whether it existed."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM deployments WHERE orchestrator_id = ?", (orchestrator_id,)
            )
            return cursor.rowcount > 0

    def prune(self, older_than: int, *, statuses: int | Iterable[int] | None = None) -> int:
        """Delete deployments last updated before ``older_than`` (Unix ns); returns how many.

        Pass the terminal statuses (Failed, Completed) as ``statuses`` to keep old deployments
        that are still running; ``None`` prunes whatever the status.
        """
        sql = "DELETE FROM deployments WHERE updated_at < ?"
        params: list[object] = [older_than]
        if statuses is not None:
            values = _statuses(statuses)
            sql += f" AND status IN ({', '.join('?' * len(values))})"
            params.extend(values)
        with self._db.transaction() as conn:
            return conn.execute(sql, params).rowcount
