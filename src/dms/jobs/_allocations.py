"""The allocation manager: a provider's allocations and the executors they run on.

It owns what used to be loose loops in the daemon: the node's open executors (Docker opened at
start so that what a previous run left can be reclaimed; WASM and null opened on first use) and
the allocation actors (children of the node actor). Allocation records (:class:`dms.db.
AllocationRepo`) are written before each step takes effect; they are also the ``claimed``
predicate of :func:`dms.executor.reclaim_leftovers`: a record that is pending or running claims
its execution, anything else labelled with our executor ID is removed.

``await nursery.start(manager.run)`` is all the daemon does with it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

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
from dms.jobs._allocation import Allocation
from dms.jobs._wire import AllocationDeploymentConfig, allocation_id
from dms.resources import ResourceManager

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: Executors whose work outlives the DMS: opened at start to reclaim what a previous run left.
PERSISTENT_EXECUTORS = ("docker",)


def record_config(config: AllocationDeploymentConfig, ports: Mapping[int, int]) -> str:
    """The JSON kept in an allocation record: its config and its public→private ports."""
    return gojson.marshal(
        gojson.Struct(Config=config, PortMapping={str(k): v for k, v in ports.items()})
    ).decode()


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

    @property
    def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise DMSError("the allocation manager is not running")
        return self._nursery

    # -- running ------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; persistent executors are opened (and reclaimed) in the
        background so that an engine that is slow to answer never delays start-up."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for name in PERSISTENT_EXECUTORS:
                    nursery.start_soon(self._open_persistent, name)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._allocations.clear()
            self._open.clear()

    async def _open_persistent(self, name: str) -> None:
        found = await trio.to_thread.run_sync(self.registry.probe, name)
        if not found.available:
            return
        try:
            executor = await self.executor(name)
        except DMSError as exc:
            log.warning("%s executor not started: %s", name, exc)
            return
        live = await trio.to_thread.run_sync(self.records.live_ids)
        # A manager cancelled while the thread ran has closed the executor already (its _hold
        # task ended): raise Cancelled here rather than use a closed executor.
        await trio.lowlevel.checkpoint()
        await reclaim_leftovers(executor, claimed=lambda info: self.claims(info, live))

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
    ) -> Allocation:
        """Record, allocate (commitment → allocation) and start the actor of one allocation.

        The record comes first, then the resource books, then the actor; a failure undoes what
        was done. Raises with a one-line reason.
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
            config=record_config(config, ports),
        )
        await trio.to_thread.run_sync(self.records.create, record)
        try:
            await trio.to_thread.run_sync(self.resources.allocate, alloc_id)
        except DMSError:
            await trio.to_thread.run_sync(self.records.delete, alloc_id)
            raise
        actor = self.parent.create_child(alloc_id)
        allocation = Allocation(
            self,
            actor,
            ensemble_id=ensemble_id,
            name=name,
            config=config,
            orchestrator=orchestrator,
            ports=ports,
        )
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
        async with self._lock:
            await trio.to_thread.run_sync(
                lambda: self.records.set_status(alloc_id, "stopped", finished=True)
            )
            allocation.status = "stopped"
            await allocation.stop()
            await self._forget(alloc_id)
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
