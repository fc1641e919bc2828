"""Disk limits of docker executions: the storage driver's quota where it has one, else a watchdog.

``storage_opt size`` is enforced only by the storage drivers that can (overlay2 on xfs with
``pquota``, btrfs, zfs, devicemapper). Elsewhere (overlay2 on ext4) :class:`DiskLimits` polls
the writable-layer size (``SizeRw``) of this executor's running containers every
``disk_check_interval`` seconds, in one engine call, and kills a container that grew past its
limit; its result then says ``Termination.DISK_LIMIT`` and why. Enforcement there is
approximate: a fast writer can overshoot by what it writes in one interval.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from dms.executor._base import ExecutionTable
from dms.executor._docker_engine import Engine
from dms.executor._docker_watch import Container
from dms.executor._errors import ExecutorError
from dms.resources import format_size

log = logging.getLogger(__name__)

#: Storage drivers that can enforce ``storage_opt size`` (overlay2 only on xfs with pquota).
_QUOTA_DRIVERS = {"btrfs", "zfs", "devicemapper", "windowsfilter"}


class DiskLimits:
    """Which way this engine enforces disk limits, and the watchdog where it cannot."""

    def __init__(self, executions: ExecutionTable, label: str, *, interval: float) -> None:
        self._executions = executions
        self._label = label  # ``nunet-executor=<executor ID>``
        self._interval = interval
        #: Can the storage driver enforce disk limits? (``None`` until the engine was asked.)
        self.quota: bool | None = None
        self._note = ""  # the driver, for the log line
        self._logged = False
        self._watching = False
        self._closing = False
        self._engine: Engine | None = None
        self._nursery: trio.Nursery | None = None

    def detect(self, info: dict[str, Any]) -> None:
        """Read the storage driver from the engine's ``info``."""
        driver = str(info.get("Driver") or "")
        status = dict(info.get("DriverStatus") or [])
        backing = str(status.get("Backing Filesystem") or "")
        self.quota = driver in _QUOTA_DRIVERS or (driver == "overlay2" and backing == "xfs")
        self._note = f"{driver} on {backing}" if backing else driver

    def start(self, engine: Engine, nursery: trio.Nursery) -> None:
        """Start the watchdog unless the driver enforces quotas (call :meth:`detect` first)."""
        self._closing = False
        self._watching = False
        self._engine = engine
        self._nursery = nursery
        if not self.quota:
            self._start_watchdog()

    def stop(self) -> None:
        self._closing = True
        self._engine = None

    def quota_refused(self, reason: str) -> None:
        """The driver refused a size quota after all (e.g. xfs mounted without ``pquota``):
        from now on, watch instead."""
        self.quota = False
        self._note += f" ({reason})"
        self._start_watchdog()

    def watch(self, container: Container, limit: int) -> None:
        """Have the watchdog hold ``container`` to ``limit`` bytes (no driver quota)."""
        container.disk_limit = limit
        if not self._logged:
            self._logged = True
            log.warning(
                "docker: the storage driver (%s) cannot enforce disk limits; "
                "checking container sizes every %g s instead",
                self._note,
                self._interval,
            )

    def _start_watchdog(self) -> None:
        if not self._watching and self._nursery is not None:
            self._watching = True
            self._nursery.start_soon(self._watchdog)

    async def _watchdog(self) -> None:
        """Kill containers whose writable layer outgrew their disk limit."""
        while not self._closing:
            await trio.sleep(self._interval)
            engine = self._engine
            if engine is None:
                return
            watched = [
                e
                for e in self._executions.all()
                if e.result is None and e.handle is not None and e.handle.disk_limit and e.handle.id
            ]
            if not watched:
                continue
            try:
                rows = await engine.containers(
                    self._label, "container sizes", stopped_too=False, size=True
                )
            except ExecutorError as exc:
                log.warning("docker: disk check failed: %s", exc)
                continue
            sizes = {row["Id"]: int(row.get("SizeRw") or 0) for row in rows}
            for entry in watched:
                handle: Container = entry.handle
                size = sizes.get(handle.id, 0)
                if size > handle.disk_limit and not handle.disk_exceeded:
                    handle.disk_exceeded = (
                        f"killed: wrote {format_size(size)} to its filesystem, over its disk "
                        f"limit of {format_size(handle.disk_limit)}"
                    )
                    log.warning("docker: %s %s", entry.request.execution_id, handle.disk_exceeded)
                    await engine.kill(handle.id, "SIGKILL")
