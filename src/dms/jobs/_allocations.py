"""The allocation manager: a provider's allocations and the executors they run on.

It owns what used to be loose loops in the daemon: the node's open executors (Docker opened at
start so that what a previous run left can be reclaimed; WASM and null opened on first use) and
the allocation actors (children of the node actor). Allocation records (:class:`dms.db.
AllocationRepo`) are written before each step takes effect; they are also the ``claimed``
predicate of :func:`dms.executor.reclaim_leftovers`: a record that is pending or running claims
its execution, anything else labelled with our executor ID is removed.

Re-adoption after a restart of the DMS (crash, kill -9, upgrade): :meth:`AllocationManager.run`
first opens the persistent executors and lets them ``recover()`` what they left (executions
claimed by a live record are kept, the rest removed), then recreates an allocation actor for
every record (same ID and inbox, a new key, so a new handle), re-grants its orchestrator and
hands it what survived (:meth:`Allocation.readopt`): an execution that runs on is watched
again; one that is gone (or ran on an executor whose work cannot outlive the process: null,
WASM) makes the allocation failed, "lost while the DMS was down", reported to the orchestrator.
Failed and completed allocations come back as they were, so their orchestrator can still
restart or stop them; a record caught half-way through a stop is finished (its resources
released). Each re-adopted allocation sends a heartbeat at once: that is how its orchestrator
learns the new handle. The resource books are SQLite (:class:`dms.resources.ResourceManager`),
so a re-adopted allocation still holds its resources and ports and a stop releases them.

``await nursery.start(manager.run)`` is all the daemon does with it; :attr:`AllocationManager.
recovered` is set once re-adoption is done.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import trio

from dms import gojson
from dms.actor import Actor, Handle
from dms.db import AllocationRecord, AllocationRepo, Database
from dms.errors import DMSError, NotFound
from dms.executor import (
    ExecutionInfo,
    Executor,
    ExecutorError,
    ExecutorRegistry,
    ExecutorSettings,
    reclaim_leftovers,
)
from dms.jobs._allocation import LOST_WHILE_DOWN, Allocation
from dms.jobs._heartbeat import liveness_interval
from dms.jobs._wire import AllocationDeploymentConfig, allocation_id
from dms.jobs._wire_supervision import DEFAULT_LIVENESS_INTERVAL
from dms.resources import ResourceManager

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: Executors whose work outlives the DMS (containers, QEMU processes): opened at start to
#: reclaim what a previous run left and re-adopt what records still name.
PERSISTENT_EXECUTORS = ("docker", "vm", "firecracker")


def record_config(
    config: AllocationDeploymentConfig, ports: Mapping[int, int], liveness_interval_ns: int = 0
) -> str:
    """The JSON kept in an allocation record: its config, its public→private ports and the
    heartbeat interval its orchestrator asked for (ns, omitted when 0)."""
    out = gojson.Struct(Config=config, PortMapping={str(k): v for k, v in ports.items()})
    if liveness_interval_ns:
        out["LivenessInterval"] = liveness_interval_ns
    return gojson.marshal(out).decode()


class AllocationHooks(Protocol):
    """What the node adds to every allocation (its subnet behaviours; :mod:`dms.node`)."""

    def created(self, allocation: Allocation) -> None:
        """A new (or re-adopted) allocation actor exists; it does not run yet."""

    async def stopped(self, allocation: Allocation) -> None:
        """The allocation was stopped and its execution removed."""

    async def readopted(self, allocation: Allocation, executor: Executor | None) -> None:
        """After a restart of the DMS: the allocation was re-adopted (its execution, if it
        still runs, is in ``executor``)."""


class AllocationManager:
    """Creates, runs, finds and stops this node's allocations; owns the open executors."""

    def __init__(
        self,
        parent: Actor,
        resources: ResourceManager,
        store: Database,
        executors: ExecutorRegistry,
        settings: ExecutorSettings,
    ) -> None:
        """``parent`` is the node actor (allocations are its children); ``settings`` are what
        every executor is created with (executor ID, work dir, privileged)."""
        self.parent = parent
        self.resources = resources
        self.store = store
        self.registry = executors
        self.settings = settings
        self.records = AllocationRepo(store)
        self._nursery: trio.Nursery | None = None
        self._open: dict[str, Executor] = {}
        self._opening: dict[str, trio.Event] = {}
        self._failed: dict[str, str] = {}
        self._allocations: dict[str, Allocation] = {}
        self._lock = trio.Lock()
        #: Set by the node: what every allocation gets beside its own behaviours.
        self.hooks: AllocationHooks | None = None
        #: Set once what a previous run left has been re-adopted (or found lost).
        self.recovered = trio.Event()

    @property
    def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise DMSError("the allocation manager is not running")
        return self._nursery

    # -- running ------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; persistent executors are opened (and reclaimed) and the
        allocations of a previous run re-adopted in the background, so that an engine that is
        slow to answer never delays start-up (:attr:`recovered` tells when that is done)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._recover)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._allocations.clear()
            self._open.clear()

    async def _recover(self) -> None:
        try:
            await self._recover_records()
        except DMSError as exc:  # the store failed: new allocations may still work
            log.error("could not re-adopt the allocations of the previous run: %s", exc)
        finally:
            self.recovered.set()

    async def _recover_records(self) -> None:
        """Open the persistent executors (reclaiming what nobody claims), then re-adopt
        every recorded allocation."""
        records = await trio.to_thread.run_sync(self.records.list)
        live = {r.allocation_id for r in records if r.live}
        problems: dict[str, str] = {}
        async with trio.open_nursery() as nursery:
            known = set(self.registry.names())
            for name in PERSISTENT_EXECUTORS:
                if name in known:  # (a registry may leave some out: tests, benches)
                    nursery.start_soon(self._open_persistent, name, live, problems)
                else:
                    problems[name] = f"the {name} executor is not in this node's registry"
        for record in records:
            if record.allocation_id in self._allocations:
                continue
            try:
                await self._readopt(record, problems)
            except DMSError as exc:
                log.warning("could not re-adopt allocation %s: %s", record.allocation_id, exc)

    async def _open_persistent(self, name: str, live: set[str], problems: dict[str, str]) -> None:
        """Open ``name`` and reclaim what a previous run left: executions of ``live`` records
        (or of allocations created since) are kept for re-adoption, the rest removed."""
        found = await trio.to_thread.run_sync(self.registry.probe, name)
        if not found.available:
            problems[name] = f"the {name} executor is unavailable: {found.reason}"
            return
        try:
            executor = await self.executor(name)
        except DMSError as exc:
            log.warning("%s executor not started: %s", name, exc)
            problems[name] = f"the {name} executor did not start: {exc}"
            return
        try:
            await reclaim_leftovers(
                executor,
                claimed=lambda info: (
                    self.claims(info, live) or info.execution_id in self._allocations
                ),
            )
        except DMSError as exc:
            log.warning("%s executor: could not recover what the previous run left: %s", name, exc)
            problems[name] = f"the {name} executor could not recover it: {exc}"

    async def _readopt(self, record: AllocationRecord, problems: Mapping[str, str]) -> None:
        """Recreate the allocation of ``record`` (see the module docstring)."""
        alloc_id = record.allocation_id
        if record.status in ("stopped", "terminated"):  # a stop the crash interrupted
            log.info("finishing the stop of allocation %s", alloc_id)
            await self._forget(alloc_id)
            return
        config, ports, interval_ns = parse_record_config(record)
        allocation = await self._spawn(
            alloc_id,
            record.ensemble_id,
            record.allocation_name,
            config,
            Handle.from_json(record.orchestrator) if record.orchestrator else Handle(),
            ports,
            interval_ns,
        )
        executor: Executor | None = None
        why = LOST_WHILE_DOWN
        if config.executor in PERSISTENT_EXECUTORS:
            if config.executor not in problems:
                executor = self._open.get(config.executor)
            if executor is None:
                problem = problems.get(config.executor, f"the {config.executor} executor is closed")
                why = f"{LOST_WHILE_DOWN} ({problem})"
        await allocation.readopt(record, executor, why)
        if self.hooks is not None:
            await self.hooks.readopted(allocation, executor)

    @staticmethod
    def claims(info: ExecutionInfo, live: set[str]) -> bool:
        """Whether a leftover execution belongs to a live allocation record (keep it)."""
        return info.execution_id in live

    async def executor(self, name: str) -> Executor:
        """The open executor ``name``, opened on first use; raises if it cannot run here."""
        if name in self._open:
            return self._open[name]
        if name in self._opening:
            await self._opening[name].wait()
            if name in self._open:
                return self._open[name]
            raise ExecutorError(self._failed.get(name, f"{name} executor did not open"))
        self._opening[name] = trio.Event()
        try:
            executor = await trio.to_thread.run_sync(self.registry.create, name, self.settings)
            await self.nursery.start(self._hold, name, executor)
        except DMSError as exc:
            self._failed[name] = str(exc)
            raise
        finally:
            self._opening.pop(name).set()
        return executor

    async def _hold(self, name: str, executor: Executor, *, task_status: TaskStatus[None]) -> None:
        try:
            async with executor.open():
                self._open[name] = executor
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._open.pop(name, None)

    # -- allocations --------------------------------------------------------------------------

    def get(self, alloc_id: str) -> Allocation | None:
        return self._allocations.get(alloc_id)

    def allocations(self) -> list[Allocation]:
        return list(self._allocations.values())

    async def create(
        self,
        ensemble_id: str,
        name: str,
        config: AllocationDeploymentConfig,
        orchestrator: Handle,
        ports: Mapping[int, int],
        *,
        liveness_interval_ns: int = 0,
    ) -> Allocation:
        """Record, allocate (commitment → allocation) and start the actor of one allocation.

        The record comes first, then the resource books, then the actor; a failure undoes what
        was done. ``liveness_interval_ns`` is how often it sends heartbeats to ``orchestrator``
        (0: :data:`DEFAULT_LIVENESS_INTERVAL`). Raises with a one-line reason.
        """
        alloc_id = allocation_id(ensemble_id, name)
        if alloc_id in self._allocations:
            raise DMSError(f"allocation {alloc_id} already exists on this node")
        record = AllocationRecord(
            allocation_id=alloc_id,
            ensemble_id=ensemble_id,
            allocation_name=name,
            executor=config.executor,
            orchestrator=orchestrator.to_json().decode(),
            config=record_config(config, ports, liveness_interval_ns),
        )
        await trio.to_thread.run_sync(self.records.create, record)
        try:
            await trio.to_thread.run_sync(self.resources.allocate, alloc_id)
        except DMSError:
            await trio.to_thread.run_sync(self.records.delete, alloc_id)
            raise
        return await self._spawn(
            alloc_id, ensemble_id, name, config, orchestrator, ports, liveness_interval_ns
        )

    async def _spawn(  # noqa: PLR0917 (private; every caller passes all of them)
        self,
        alloc_id: str,
        ensemble_id: str,
        name: str,
        config: AllocationDeploymentConfig,
        orchestrator: Handle,
        ports: Mapping[int, int],
        liveness_interval_ns: int,
    ) -> Allocation:
        """Create and run the actor of a recorded, allocated allocation (undone on failure)."""
        actor = self.parent.create_child(alloc_id)
        allocation = Allocation(
            self,
            actor,
            ensemble_id=ensemble_id,
            name=name,
            config=config,
            orchestrator=orchestrator,
            ports=ports,
            liveness_interval=liveness_interval(liveness_interval_ns, DEFAULT_LIVENESS_INTERVAL),
        )
        if self.hooks is not None:
            self.hooks.created(allocation)
        try:
            await self.nursery.start(allocation.run)
        except BaseException:
            await self._forget(alloc_id)
            raise
        self._allocations[alloc_id] = allocation
        return allocation

    async def set_status(self, alloc_id: str, status: str, **kwargs: object) -> None:
        """Write an allocation's new status to its record (before it takes effect)."""
        await trio.to_thread.run_sync(
            lambda: self.records.set_status(alloc_id, status, **kwargs)  # type: ignore[arg-type]
        )

    async def stop(self, alloc_id: str, *, close: bool = True) -> None:
        """Stop an allocation: record it, cancel and remove its execution, release its
        resources and ports, forget the record; ``close`` also ends its actor (a stop handler
        passes False and closes after replying). Raises :class:`NotFound` if unknown."""
        allocation = self._allocations.get(alloc_id)
        if allocation is None:
            raise NotFound(f"no allocation {alloc_id} on this node")
        async with self._lock, allocation.lock:
            await trio.to_thread.run_sync(
                lambda: self.records.set_status(alloc_id, "stopped", finished=True)
            )
            allocation.status = "stopped"
            await allocation.stop()
            await self._forget(alloc_id)
            if self.hooks is not None:
                await self.hooks.stopped(allocation)
        if close:
            allocation.close()

    async def stop_ensemble(self, ensemble_id: str) -> list[str]:
        """Stop every allocation of ``ensemble_id`` here; returns their IDs."""
        ids = [a.id for a in self._allocations.values() if a.ensemble_id == ensemble_id]
        for alloc_id in ids:
            await self.stop(alloc_id)
        return ids

    async def _forget(self, alloc_id: str) -> None:
        self._allocations.pop(alloc_id, None)

        def release() -> None:
            self.resources.release(alloc_id)
            self.records.delete(alloc_id)

        await trio.to_thread.run_sync(release)

    def record_of(self, alloc_id: str) -> AllocationRecord | None:
        """The stored record (blocking)."""
        return self.records.get(alloc_id)


def ports_of_record(record: AllocationRecord) -> dict[int, int]:
    """The public→private port map kept in a record's config."""
    data = json.loads(record.config)
    return {int(k): int(v) for k, v in (data.get("PortMapping") or {}).items()}


def parse_record_config(
    record: AllocationRecord,
) -> tuple[AllocationDeploymentConfig, dict[int, int], int]:
    """What :func:`record_config` wrote: config, public→private ports, heartbeat interval (ns).

    Raises :class:`DMSError` when the stored JSON is not that.
    """
    try:
        data = json.loads(record.config)
    except ValueError as exc:
        raise DMSError(f"allocation {record.allocation_id}: bad stored config: {exc}") from None
    if not isinstance(data, dict):
        raise DMSError(f"allocation {record.allocation_id}: bad stored config")
    config = AllocationDeploymentConfig.from_json(data.get("Config") or {})
    interval = data.get("LivenessInterval") or 0
    return config, ports_of_record(record), int(interval) if isinstance(interval, int) else 0
