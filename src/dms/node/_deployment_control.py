"""Deployment control: ``/dms/node/deployment/{new,list,status,manifest,logs,shutdown,prune}``
and ``/dms/node/allocations/list`` (what this node runs as a provider).

What a user's CLI invokes on their own DMS (Go's ``behaviors_deployment.go``): ``new`` creates
an orchestrator (a child actor, see :mod:`dms.orchestrator`) and answers at once with the ensemble
ID, as Go does; the orchestrator then deploys until the request's expiry minus 15 s. The other
behaviours read the orchestrators this process runs and, for deployments of an earlier run, the
store. Any unambiguous prefix of an ensemble ID names it.

Payloads are Go's; our additions sit beside Go's keys (which a Go CLI ignores): ``status``
adds ``Explanation`` (why it could not be placed), ``Events`` and ``Allocations``; ``logs``
adds the output itself (``Stdout``/``Stderr``) to Go's ``LogsWrittenTo``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from dms import gojson
from dms.actor import Envelope
from dms.db import DeploymentRecord, DeploymentRepo
from dms.errors import DMSError, InvalidInput, NotFound
from dms.jobs import Ensemble
from dms.node._payloads import RequestError, request_object, string_field
from dms.node._reply import send_reply
from dms.orchestrator import (
    DEADLINE_MARGIN,
    MIN_REQUEST_LIFETIME,
    DeploymentStatus,
    EnsembleManifest,
    Event,
    Orchestrator,
    OrchestratorSettings,
    snapshot_fields,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from dms.node._node import Node
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

DEPLOYMENT_NEW = "/dms/node/deployment/new"
DEPLOYMENT_LIST = "/dms/node/deployment/list"
DEPLOYMENT_STATUS = "/dms/node/deployment/status"
DEPLOYMENT_MANIFEST = "/dms/node/deployment/manifest"
DEPLOYMENT_LOGS = "/dms/node/deployment/logs"
DEPLOYMENT_SHUTDOWN = "/dms/node/deployment/shutdown"
DEPLOYMENT_PRUNE = "/dms/node/deployment/prune"
DEPLOYMENT_EVENTS = "/dms/node/deployment/events"
ALLOCATIONS_LIST = "/dms/node/allocations/list"


def _id_field(obj: Mapping[str, Any], *keys: str) -> str:
    """The first of ``keys`` that is set (Go's request structs name the ID differently)."""
    for key in keys:
        value = string_field(obj, key)
        if value:
            return value
    return ""


class Deployments:
    """The orchestrators of this node, by ensemble ID, and the store's record of the rest."""

    def __init__(
        self, node: Node, repo: DeploymentRepo | None, settings: OrchestratorSettings | None = None
    ) -> None:
        self.node = node
        self.repo = repo
        self.settings = settings or OrchestratorSettings()
        self.live: dict[str, Orchestrator] = {}
        self._nursery: trio.Nursery | None = None
        # Saves run in worker threads; unserialised, two of them (a status change and an
        # allocation's report) could land in either order and leave an older state stored.
        self._save_lock = trio.Lock()

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the orchestrators' tasks until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._restore()
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def _restore(self) -> None:
        """Bring back the deployments that had not ended when this DMS stopped: a Running one
        is supervised again; one caught mid-placement is failed (and what it reserved freed)."""
        assert self._nursery is not None
        for record in await self._records():
            try:
                if DeploymentStatus(record.status).terminal:
                    continue
                orch = Orchestrator.restore(
                    self.node.actor,
                    record,
                    persist=self._persist,
                    candidates=self.node.provider_candidates,
                    handle_of=self.node.handle_of,
                    settings=self.settings,
                )
            except (DMSError, ValueError) as exc:
                log.warning("deployment %s not restored: %s", record.ensemble_id[:12], exc)
                continue
            self.live[orch.id] = orch
            log.info("restored deployment %s (%s)", orch.id[:12], orch.status.label)
            deadline = trio.current_time() + self.settings.redeploy_timeout
            await self._nursery.start(self._run, orch, deadline)

    # -- store ---------------------------------------------------------------------------

    async def _persist(self, orch: Orchestrator) -> None:
        """Store ``orch``'s state as it is when the previous save has finished (so the last
        save always holds the latest state)."""
        repo = self.repo
        if repo is None:
            return
        async with self._save_lock:
            record = DeploymentRecord(
                orchestrator_id=orch.id,
                ensemble_id=orch.ensemble_id,
                config=orch.config_json,
                manifest=orch.manifest.to_json().decode(),
                status=int(orch.status),
                snapshot=orch.snapshot(),
                private_key=orch.key_bytes,
                metadata=dict(orch.ensemble.metadata),
            )
            try:
                await trio.to_thread.run_sync(repo.save, record)
            except DMSError as exc:
                log.warning("deployment %s not saved: %s", orch.id[:12], exc)

    async def _records(self) -> list[DeploymentRecord]:
        if self.repo is None:
            return []
        repo = self.repo
        return await trio.to_thread.run_sync(repo.list)

    # -- lookups ---------------------------------------------------------------------------

    async def resolve(self, prefix: str) -> str:
        """The full ensemble ID that ``prefix`` names (live or stored)."""
        prefix = prefix.strip()
        if not prefix:
            raise InvalidInput("no deployment ID given")
        if prefix in self.live:
            return prefix  # a whole ID (every poll of `nunet deploy`): no store scan
        ids = set(self.live) | {r.ensemble_id for r in await self._records()}
        found = sorted(i for i in ids if i.startswith(prefix))
        if not found:
            raise NotFound(f"no deployment {prefix}")
        if len(found) > 1:
            raise InvalidInput(
                f"deployment ID {prefix} is ambiguous: it starts {len(found)} deployments"
            )
        return found[0]

    async def record(self, ensemble_id: str) -> DeploymentRecord | None:
        if self.repo is None:
            return None
        return await trio.to_thread.run_sync(self.repo.get_by_ensemble, ensemble_id)

    # -- actions ---------------------------------------------------------------------------

    async def new(self, ensemble: Ensemble, expire_ns: int) -> Orchestrator:
        """Create and start an orchestrator for ``ensemble`` (deploying until the expiry)."""
        if self._nursery is None:
            raise DMSError("the node is not running deployments")
        lifetime = (expire_ns - time.time_ns()) / 1e9
        if lifetime < MIN_REQUEST_LIFETIME:
            raise InvalidInput(
                f"the deployment request expires in {lifetime:.0f} s: give it at least "
                f"{MIN_REQUEST_LIFETIME:.0f} s (e.g. --timeout 5m)"
            )
        orch = Orchestrator(
            self.node.actor,
            ensemble,
            persist=self._persist,
            candidates=self.node.provider_candidates,
            handle_of=self.node.handle_of,
            settings=self.settings,
        )
        self.live[orch.id] = orch
        deadline = trio.current_time() + lifetime - DEADLINE_MARGIN
        await self._nursery.start(self._run, orch, deadline)
        return orch

    async def _run(
        self,
        orch: Orchestrator,
        deadline: float,
        *,
        task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run ``orch``; while it runs, it may drive its ensemble's subnet on this node (to
        join it: ``subnet: {join: true}``)."""
        self.node.subnets.allow(orch.id, orch.actor.handle)
        try:
            await orch.run(deadline, task_status=task_status)
        finally:
            self.node.subnets.release(orch.id)


#: At most this many events per ``/dms/node/deployment/events`` reply (a follower asks again
#: from ``Next``), so a long-lived deployment's history never makes one oversized message.
EVENTS_PAGE = 256


@dataclass(frozen=True)
class EventPage:
    """Events ``[after, next)`` of a deployment, with its status as of the same instant."""

    events: list[Event]
    next: int
    status: DeploymentStatus
    reason: str
    #: The deployment ended and no event follows ``next``: a follower can stop.
    ended: bool


async def events_page(deployments: Deployments, eid: str, after: int) -> EventPage:
    """The events of deployment ``eid`` after the first ``after``: from its live orchestrator,
    else from the stored snapshot (old records' ``{time, message}`` events decode too)."""
    orch = deployments.live.get(eid)
    if orch is not None:
        # Read without an await in between: the events and the status belong together.
        events, status, reason = list(orch.events), orch.status, orch.error
    else:
        record = await deployments.record(eid)
        if record is None:
            raise NotFound(f"no deployment {eid}")
        snap = snapshot_fields(record.snapshot)
        events = _stored_events(snap)
        status = DeploymentStatus(record.status)
        error = snap.get("error")
        reason = error if isinstance(error, str) else ""
    start = min(after, len(events))
    page = events[start : start + EVENTS_PAGE]
    end = start + len(page)
    return EventPage(page, end, status, reason, status.terminal and end == len(events))


def _stored_events(snap: Mapping[str, Any]) -> list[Event]:
    """The events of a stored snapshot, decoded leniently (old records: ``{time, message}``)."""
    stored = snap.get("events")
    return [Event.from_json(e) for e in stored] if isinstance(stored, list) else []


def _after_field(obj: Mapping[str, Any]) -> int:
    """The request's ``After`` (events already seen): a non-negative integer, default 0."""
    value: Any = None
    for key, item in obj.items():
        if str(key).lower() == "after":
            value = item
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RequestError("After must be a non-negative integer")
    return value


def _status_reply(status: str, error: str, extra: Mapping[str, Any] | None = None) -> Any:
    out = gojson.Struct(Status=status, Error=error)
    out.update(extra or {})
    return out


def install_deployment_control(node: Node, deployments: Deployments) -> None:
    """Register the ``/dms/node/deployment/*`` behaviours on ``node``."""

    async def new(env: Envelope) -> None:
        try:
            obj = request_object(env)
            folded = gojson.folded(obj, "request")
            ensemble = Ensemble.from_json(folded.get("ensemble"))
            orch = await deployments.new(ensemble, env.options.expire)
        except DMSError as exc:
            await send_reply(
                node, env, gojson.Struct(Status="ERROR", EnsembleID="", Error=str(exc))
            )
            return
        await send_reply(node, env, gojson.Struct(Status="OK", EnsembleID=orch.id, Error=""))

    async def list_(env: Envelope) -> None:
        try:
            obj = request_object(env) if env.message else {}
            folded = gojson.folded(obj, "request")
            wanted = folded.get("metadata") or {}
            if not isinstance(wanted, Mapping):
                raise RequestError("Metadata must be an object")
            out: dict[str, str] = {}
            for record in await deployments._records():
                if all(record.metadata.get(k) == v for k, v in wanted.items()):
                    out[record.ensemble_id] = DeploymentStatus(record.status).label
            for eid, orch in deployments.live.items():
                if all(orch.ensemble.metadata.get(k) == v for k, v in wanted.items()):
                    out[eid] = orch.status.label
        except DMSError as exc:
            await send_reply(node, env, gojson.Struct(Deployments={}, Error=str(exc)))
            return
        await send_reply(node, env, gojson.Struct(Deployments=out, Error=""))

    async def status(env: Envelope) -> None:
        try:
            eid = await deployments.resolve(_id_field(request_object(env), "ID", "EnsembleID"))
            orch = deployments.live.get(eid)
            if orch is not None:
                extra = {"EnsembleID": eid, "Reason": orch.error, **orch.status_payload()}
                await send_reply(node, env, _status_reply(orch.status.label, "", extra))
                return
            record = await deployments.record(eid)
            if record is None:
                raise NotFound(f"no deployment {eid}")
            snap = snapshot_fields(record.snapshot)
            extra = {
                "EnsembleID": eid,
                "Reason": snap.get("error", ""),
                "Explanation": snap.get("explanation") or [],
                "Events": _stored_events(snap),
            }
            label = DeploymentStatus(record.status).label
            await send_reply(node, env, _status_reply(label, "", extra))
        except DMSError as exc:
            await send_reply(node, env, _status_reply("", str(exc)))

    async def events(env: Envelope) -> None:
        try:
            obj = request_object(env)
            after = _after_field(obj)
            eid = await deployments.resolve(_id_field(obj, "ID", "EnsembleID"))
            page = await events_page(deployments, eid, after)
        except DMSError as exc:
            reply = gojson.Struct(Events=[], Next=0, Status="", Ended=False, Error=str(exc))
            await send_reply(node, env, reply)
            return
        reply = gojson.Struct(
            Events=page.events,
            Next=page.next,
            Status=page.status.label,
            Ended=page.ended,
            EnsembleID=eid,
            Reason=page.reason,
            Error="",
        )
        await send_reply(node, env, reply)

    async def manifest(env: Envelope) -> None:
        try:
            eid = await deployments.resolve(_id_field(request_object(env), "ID", "EnsembleID"))
            orch = deployments.live.get(eid)
            if orch is not None:
                found = orch.manifest
            else:
                record = await deployments.record(eid)
                if record is None:
                    raise NotFound(f"no deployment {eid}")
                found = EnsembleManifest.from_json(json.loads(record.manifest))
        except DMSError as exc:
            await send_reply(node, env, gojson.Struct(manifest=None, error=str(exc)))
            return
        await send_reply(node, env, gojson.Struct(manifest=found, error=""))

    async def logs(env: Envelope) -> None:
        try:
            obj = request_object(env)
            eid = await deployments.resolve(_id_field(obj, "EnsembleID", "ID"))
            name = _id_field(obj, "AllocationName")
            orch = deployments.live.get(eid)
            if orch is None:
                raise NotFound(f"deployment {eid[:12]} is not run by this DMS process any more")
            names = [name] if name else sorted(orch.manifest.allocations)
            base = Path(node.config.general.work_dir) / "deployments" / eid
            outputs: dict[str, Any] = {}
            for alloc in names:
                output = await orch.fetch_logs(alloc)
                folder = base / alloc
                await trio.to_thread.run_sync(_write_logs, folder, output.stdout, output.stderr)
                outputs[alloc] = gojson.Struct(Stdout=output.stdout, Stderr=output.stderr)
        except DMSError as exc:
            await send_reply(node, env, gojson.Struct(LogsWrittenTo="", Error=str(exc)))
            return
        written = str(base / name) if name else str(base)
        reply = gojson.Struct(LogsWrittenTo=written, Error="", Allocations=outputs)
        await send_reply(node, env, reply)

    async def shutdown(env: Envelope) -> None:
        try:
            eid = await deployments.resolve(_id_field(request_object(env), "ID", "EnsembleID"))
            orch = deployments.live.get(eid)
            if orch is None:
                raise NotFound(f"deployment {eid[:12]} is not run by this DMS process")
            if orch.status.terminal:
                raise InvalidInput(f"deployment {eid[:12]} has already ended ({orch.status.label})")
            orch.request_shutdown()
            with trio.move_on_at(_reply_deadline(env)):
                await orch.wait_ended()
            ok = orch.status.terminal
            error = "" if ok else "still shutting down"
        except DMSError as exc:
            ok, error = False, str(exc)
        await send_reply(node, env, gojson.Struct(OK=ok, Error=error))

    async def prune(env: Envelope) -> None:
        try:
            obj = request_object(env) if env.message else {}
            prefix = _id_field(obj, "ID")
            pruned = 0
            terminal = [int(DeploymentStatus.FAILED), int(DeploymentStatus.COMPLETED)]
            if prefix:
                eid = await deployments.resolve(prefix)
                orch = deployments.live.get(eid)
                if orch is not None and not orch.status.terminal:
                    raise InvalidInput(
                        f"deployment {eid[:12]} is {orch.status.label}: shut it down first"
                    )
                repo = deployments.repo
                if repo is not None:
                    record = await deployments.record(eid)
                    if record is not None and record.status not in terminal:
                        raise InvalidInput(f"deployment {eid[:12]} has not ended")
                    if record is not None:
                        pruned += await trio.to_thread.run_sync(repo.delete, record.orchestrator_id)
                deployments.live.pop(eid, None)
            else:
                for eid in [e for e, o in deployments.live.items() if o.status.terminal]:
                    del deployments.live[eid]
                repo = deployments.repo
                if repo is not None:
                    pruned = await trio.to_thread.run_sync(
                        lambda: repo.prune(time.time_ns() + 1, statuses=terminal)
                    )
        except DMSError as exc:
            await send_reply(node, env, gojson.Struct(Pruned=0, Error=str(exc)))
            return
        await send_reply(node, env, gojson.Struct(Pruned=int(pruned), Error=""))

    async def allocations(env: Envelope) -> None:
        manager = node.allocations
        rows = [
            gojson.Struct(
                id=a.id,
                ensemble_id=a.ensemble_id,
                name=a.name,
                executor=a.config.executor,
                status=a.status,
                orchestrator=a.orchestrator.address.host,
                ports={str(k): v for k, v in a.ports.items()},
            )
            for a in (manager.allocations() if manager is not None else [])
        ]
        error = "" if manager is not None else "this node runs no allocations"
        await send_reply(node, env, gojson.Struct(Allocations=rows, Error=error))

    node.actor.add_behavior(ALLOCATIONS_LIST, allocations)
    node.actor.add_behavior(DEPLOYMENT_NEW, new)
    node.actor.add_behavior(DEPLOYMENT_LIST, list_)
    node.actor.add_behavior(DEPLOYMENT_STATUS, status)
    node.actor.add_behavior(DEPLOYMENT_EVENTS, events)
    node.actor.add_behavior(DEPLOYMENT_MANIFEST, manifest)
    node.actor.add_behavior(DEPLOYMENT_LOGS, logs)
    node.actor.add_behavior(DEPLOYMENT_SHUTDOWN, shutdown)
    node.actor.add_behavior(DEPLOYMENT_PRUNE, prune)


def _reply_deadline(env: Envelope) -> float:
    remaining = (env.options.expire - time.time_ns()) / 1e9 - 1.0
    return trio.current_time() + max(0.0, remaining)


def _write_logs(folder: Path, stdout: bytes, stderr: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stdout.log").write_bytes(stdout)
    (folder / "stderr.log").write_bytes(stderr)
