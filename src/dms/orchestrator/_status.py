"""The deployment status enum of the Go DMS (spec §8), as ints on the wire and in the store.

Go marshals ``DeploymentStatus`` as its int and prints it through ``DeploymentStatusString``;
``/dms/node/deployment/list`` and ``/status`` answer with those strings. ``Completed`` is also
where a deployment ends when its user shut it down (the reason says so): Go has no "stopped".
"""

from __future__ import annotations

from enum import IntEnum


class DeploymentStatus(IntEnum):
    """Where a deployment is in its life (Go's ``DeploymentStatus``)."""

    PREPARING = 0
    GENERATING = 1
    COMMITTING = 2
    PROVISIONING = 3
    RUNNING = 4
    FAILED = 5
    SHUTTING_DOWN = 6
    COMPLETED = 7

    @property
    def label(self) -> str:
        """Go's ``DeploymentStatusString``: ``Preparing`` ... ``ShuttingDown``, ``Completed``."""
        return _LABELS[self]

    @property
    def terminal(self) -> bool:
        """Whether nothing more will happen to the deployment."""
        return self in (DeploymentStatus.FAILED, DeploymentStatus.COMPLETED)

    @classmethod
    def parse(cls, text: str) -> DeploymentStatus:
        """The status named ``text`` (its Go label, case-insensitive) or given as its int."""
        wanted = text.strip().lower()
        for status in cls:
            if status.label.lower() == wanted or str(int(status)) == wanted:
                return status
        raise ValueError(f"unknown deployment status {text!r}")


_LABELS = {
    DeploymentStatus.PREPARING: "Preparing",
    DeploymentStatus.GENERATING: "Generating",
    DeploymentStatus.COMMITTING: "Committing",
    DeploymentStatus.PROVISIONING: "Provisioning",
    DeploymentStatus.RUNNING: "Running",
    DeploymentStatus.FAILED: "Failed",
    DeploymentStatus.SHUTTING_DOWN: "ShuttingDown",
    DeploymentStatus.COMPLETED: "Completed",
}
