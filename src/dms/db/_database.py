"""The SQLite file behind every repository: opening, pragmas, migrations, transactions.

Choices, and why:

- **WAL journal**: readers never block the writer and a crash (even ``SIGKILL`` in the middle of a
  commit) leaves the last committed state, because frames without a commit record are ignored
  when the WAL is replayed.
- **synchronous=NORMAL** (default): in WAL mode NORMAL never corrupts the file; it can only lose
  the last transactions on *power loss or OS crash*, never on a process crash. What the DMS
  stores describes live work on this machine (commitments with a TTL, allocations, running
  deployments) which a power loss ends anyway, so the extra fsync per commit of FULL buys little;
  pass ``synchronous="FULL"`` where it does (e.g. a tool writing its only copy of something).
- **One connection guarded by a re-entrant lock**, not one connection per thread: the daemon calls
  the store from ``trio.to_thread`` worker threads that come and go, so per-thread connections
  would be opened and leaked by threads we do not own, and ``close()`` could not reach them.
  SQLite admits one writer at a time anyway, and the DMS's statements take microseconds, so
  serialising them in-process costs nothing measurable. Because uncommitted writes on a shared
  connection would be visible to other threads, *every* access (reads included) takes the lock.
  Other processes (the CLI, a second daemon by mistake) are separate connections: for them the
  ``busy_timeout`` makes writers wait instead of failing at once.
- **BEGIN IMMEDIATE** for writes: the write lock is taken up front, so a transaction never
  starts as a reader and then fails to upgrade (``SQLITE_BUSY_SNAPSHOT``, which bypasses the
  busy handler).
- **0600 file in a 0700 directory** (when we create it): the deployments table holds orchestrator
  private keys. SQLite gives ``-wal``/``-shm`` the main file's mode.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

from dms.db._errors import DatabaseError
from dms.db._migrations import (
    MIGRATIONS,
    Migration,
    apply_pending,
    check_migrations,
    read_version,
    refuse_newer,
)

DEFAULT_FILE_NAME = "dms.sqlite3"
"""File name of the store inside ``work_dir`` (distinct from any file the Go DMS creates)."""

DEFAULT_BUSY_TIMEOUT = 5.0
"""Seconds another process's write lock is waited for before a write fails."""

MIN_SQLITE = (3, 35, 0)

Synchronous = Literal["NORMAL", "FULL"]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _make_parent(path: Path) -> None:
    """Create missing parent directories 0700; existing ones are left as they are."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # mkdir's mode is filtered through the umask


def _make_private(path: Path) -> None:
    """Create ``path`` 0600 if missing, and tighten it (and its WAL files) if others can read."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    os.close(fd)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(file.stat().st_mode) & 0o077:
                os.chmod(file, 0o600)


class Database:
    """An open store; share one instance between threads. Use :meth:`open` to make one."""

    def __init__(self, conn: sqlite3.Connection, path: Path, version: int) -> None:
        """Wrap an already configured connection; call :meth:`open` instead."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._version = version
        self._lock = threading.RLock()
        # Nesting state, only touched by the thread holding the lock.
        self._depth = 0
        self._reading = False

    # -- opening and closing -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> Database:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date.

        A file written by newer code, or not by nunet-dms at all, is refused with a
        :class:`~dms.db.SchemaVersionError` *before anything is written to it*. ``migrations``
        is a parameter only so tests can exercise upgrades; production uses the default.
        """
        check_migrations(migrations)
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            # The repositories use DELETE ... RETURNING (3.35) to delete and report atomically.
            raise DatabaseError(
                f"SQLite {sqlite3.sqlite_version} is too old; nunet-dms needs 3.35 or newer"
            )
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        file = Path(path)
        where = str(file)
        try:
            _make_parent(file)
            _make_private(file)
        except OSError as exc:
            raise DatabaseError(f"cannot create database {where}: {_one_line(exc)}") from exc
        try:
            conn = sqlite3.connect(
                file, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open database {where}: {_one_line(exc)}") from exc
        try:
            version = cls._prepare(conn, migrations, synchronous, busy_timeout, where)
        except BaseException:
            conn.close()
            raise
        return cls(conn, file, version)

    @staticmethod
    def _prepare(
        conn: sqlite3.Connection,
        migrations: Sequence[Migration],
        synchronous: Synchronous,
        busy_timeout: float,
        where: str,
    ) -> int:
        latest = migrations[-1].version if migrations else 0
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            # Look before touching: a refused file must stay byte-for-byte as it was, so no
            # pragma that writes (journal_mode) runs before this check.
            refuse_newer(read_version(conn, where), latest, where)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DatabaseError(f"database {where} cannot use WAL journaling (got {mode})")
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            # Keep a WAL inflated by one big transaction from staying large after checkpoints.
            conn.execute("PRAGMA journal_size_limit = 67108864")
            conn.row_factory = sqlite3.Row
            conn.execute("BEGIN IMMEDIATE")
            try:
                _, version = apply_pending(conn, migrations, where)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open database {where}: {_one_line(exc)}") from exc
        return version

    def close(self) -> None:
        """Close the file; later calls on this instance raise :class:`DatabaseError`.

        Waits for a transaction running in another thread to finish. Idempotent.
        """
        with self._lock:
            if self._conn is None:
                return
            if self._depth or self._reading:
                raise DatabaseError("cannot close the database inside a transaction")
            conn, self._conn = self._conn, None
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA optimize")
            conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- properties ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """Where the file is."""
        return self._path

    @property
    def schema_version(self) -> int:
        """The schema version after the migrations run at open."""
        return self._version

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn is None

    # -- transactions --------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise DatabaseError(f"database {self._path} is closed")
        return self._conn

    def _error(self, exc: sqlite3.Error) -> DatabaseError:
        return DatabaseError(f"database {self._path}: {_one_line(exc)}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block as one atomic write: ``BEGIN IMMEDIATE`` ... ``COMMIT``.

        Any exception rolls everything back and propagates (SQLite errors become
        :class:`DatabaseError`). Nested calls in the same thread become savepoints, so a
        repository method called inside a caller's transaction joins it, and an inner failure
        the caller catches undoes only the inner part.
        """
        with self._lock:
            conn = self._connection()
            if self._reading:
                raise RuntimeError("cannot write inside Database.read(); use transaction()")
            depth = self._depth
            savepoint = f"sp{depth}"
            try:
                conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            self._depth = depth + 1
            try:
                yield conn
            except BaseException as exc:
                self._depth = depth
                with contextlib.suppress(sqlite3.Error):
                    if depth == 0:
                        conn.execute("ROLLBACK")
                    else:
                        conn.execute(f"ROLLBACK TO {savepoint}")
                        conn.execute(f"RELEASE {savepoint}")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from exc
                raise
            self._depth = depth
            try:
                conn.execute("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
            except sqlite3.Error as exc:
                if depth == 0:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise self._error(exc) from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Run the block's queries against one consistent snapshot, writing nothing.

        Inside a :meth:`transaction` it simply joins it (the transaction already sees a
        consistent state, including its own writes).
        """
        with self._lock:
            conn = self._connection()
            if self._depth or self._reading:
                yield conn
                return
            try:
                conn.execute("BEGIN")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            self._reading = True
            try:
                yield conn
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            finally:
                self._reading = False
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("COMMIT")
