"""The onboarding config: whether this node is onboarded and what it offers (spec §9).

Go keeps ``OnboardingConfig`` as the single entity of clover's ``onboarding_config`` collection;
here it is the single row of ``onboarding``. ``onboarded_resources`` is ``types.Resources`` JSON,
kept as text because its shape belongs to ``dms.resources``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from dms.db._database import Database
from dms.db._json import Clock, check_json
from dms.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class OnboardingConfig:
    """``{"is_onboarded": bool, "onboarded_resources": Resources}`` with the resources as text."""

    is_onboarded: bool
    onboarded_resources: str
    updated_at: int = 0

    def to_json(self) -> str:
        """The Go JSON shape, resources embedded as an object (not a string)."""
        resources = json.loads(check_json(self.onboarded_resources, "onboarded_resources"))
        value = {"is_onboarded": self.is_onboarded, "onboarded_resources": resources}
        return json.dumps(value, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> OnboardingConfig:
        """Parse the Go JSON shape (keys matched case-insensitively, like Go's decoder)."""
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"onboarding config is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise InvalidInput("onboarding config must be a JSON object")
        fields = {str(k).lower(): v for k, v in value.items()}
        onboarded = fields.get("is_onboarded", False)
        if not isinstance(onboarded, bool):
            raise InvalidInput("onboarding config: is_onboarded must be a boolean")
        resources = json.dumps(fields.get("onboarded_resources", {}), separators=(",", ":"))
        return cls(is_onboarded=onboarded, onboarded_resources=resources)


class OnboardingRepo:
    """Get, set and clear the one onboarding config row."""

    def __init__(self, db: Database, *, clock: Clock = time.time_ns) -> None:
        """Use ``db``; ``clock`` stamps ``updated_at`` (injectable for tests)."""
        self._db = db
        self._clock = clock

    def get(self) -> OnboardingConfig | None:
        """The stored config, or ``None`` if the node was never onboarded (or was cleared)."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT is_onboarded, onboarded_resources, updated_at FROM onboarding WHERE id = 1"
            ).fetchone()
        if row is None:
            return None
        return OnboardingConfig(bool(row[0]), row[1], row[2])

    def set(self, config: OnboardingConfig) -> OnboardingConfig:
        """Replace the config; returns it with ``updated_at`` filled in."""
        check_json(config.onboarded_resources, "onboarded_resources")
        now = self._clock()
        with self._db.transaction() as conn:
            conn.execute(
                """INSERT INTO onboarding (id, is_onboarded, onboarded_resources, updated_at)
                   VALUES (1, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET is_onboarded = excluded.is_onboarded,
                       onboarded_resources = excluded.onboarded_resources,
                       updated_at = excluded.updated_at""",
                (int(config.is_onboarded), config.onboarded_resources, now),
            )
        return OnboardingConfig(config.is_onboarded, config.onboarded_resources, now)

    def clear(self) -> bool:
        """Forget the config (offboarding); returns whether there was one."""
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM onboarding WHERE id = 1").rowcount > 0
