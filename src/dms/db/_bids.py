"""Bids this node made, one per ensemble, remembered until they expire (spec §8).

A provider ignores a bid request for an ensemble it already bid on, and
``/dms/deployment/commit`` fails without a live bid for the ensemble; Go keeps bids in memory
for 5 minutes. Storing them makes both rules survive a restart. The bid is ``Bid`` JSON text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dms.db._database import Database
from dms.db._json import Clock, check_json


@dataclass(frozen=True, slots=True)
class BidRecord:
    """The bid made for ``ensemble_id``; times are Unix ns."""

    ensemble_id: str
    bid: str
    created_at: int
    expires_at: int


class BidRepo:
    """Add (at most one live bid per ensemble), look up, delete and expire bids."""

    def __init__(self, db: Database, *, clock: Clock = time.time_ns) -> None:
        """Use ``db``; ``clock`` (Unix ns) decides liveness when ``now`` is not given."""
        self._db = db
        self._clock = clock

    def add(
        self, ensemble_id: str, bid: str, *, expires_at: int, now: int | None = None
    ) -> BidRecord | None:
        """Store a bid unless a live one exists for the ensemble; ``None`` means it did.

        Check and insert are one transaction, so two concurrent bid requests for the same
        ensemble cannot both win. An expired bid is replaced.
        """
        check_json(bid, "bid")
        now = self._clock() if now is None else now
        with self._db.transaction() as conn:
            conn.execute(
                "DELETE FROM bids WHERE ensemble_id = ? AND expires_at <= ?", (ensemble_id, now)
            )
            cursor = conn.execute(
                """INSERT INTO bids (ensemble_id, bid, created_at, expires_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (ensemble_id) DO NOTHING""",
                (ensemble_id, bid, now, expires_at),
            )
            if cursor.rowcount == 0:
                return None
        return BidRecord(ensemble_id, bid, now, expires_at)

    def get(self, ensemble_id: str, *, now: int | None = None) -> BidRecord | None:
        """The live bid for ``ensemble_id``, if any."""
        now = self._clock() if now is None else now
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT ensemble_id, bid, created_at, expires_at FROM bids "
                "WHERE ensemble_id = ? AND expires_at > ?",
                (ensemble_id, now),
            ).fetchone()
        return None if row is None else BidRecord(row[0], row[1], row[2], row[3])

    def delete(self, ensemble_id: str) -> bool:
        """Forget the bid for ``ensemble_id``; returns whether there was one."""
        with self._db.transaction() as conn:
            return (
                conn.execute("DELETE FROM bids WHERE ensemble_id = ?", (ensemble_id,)).rowcount > 0
            )

    def delete_expired(self, now: int | None = None) -> int:
        """Delete bids expired at ``now``; returns how many."""
        now = self._clock() if now is None else now
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM bids WHERE expires_at <= ?", (now,)).rowcount
