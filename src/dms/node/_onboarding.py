"""Onboarding, resources and hardware behaviours (Go ``behaviors_onboarding.go`` and friends).

* ``/dms/node/onboarding/onboard``: request ``OnboardRequest{NoGPU, GPUs, Config}`` (spec §2.8)
  where ``Config`` is an ``OnboardingConfig`` (``{"is_onboarded", "onboarded_resources"}``) and
  ``GPUs`` is ``"index:vram,..."`` (VRAM in GiB unless a unit is given). The CLI's simple form
  ``{"cpu": 2, "ram": "4GiB", "disk": 20, "gpus": "0:4", "no_gpu": false}`` (sizes in GiB by
  default) is accepted too. ``NoGPU`` wins over ``GPUs``, which wins over the config's GPU
  list. Response ``{"success", "error", "config"}``; on failure ``config`` is the onboarding
  still in force (left intact), or an empty one.
* ``/dms/node/onboarding/offboard`` → ``{"success", "error"}``;
  ``/dms/node/onboarding/status`` → ``{"onboarded", "error"}``.
* ``/dms/node/resources/{onboarded,free,allocated}`` and ``/dms/node/hardware/{spec,usage}``
  answer ``{"Resources": types.Resources, "Error": str}``. (The spec does not record Go's
  response struct for these; the untagged Go naming convention is assumed.)

Every store or detection call is blocking, so it runs in a worker thread.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import trio

from dms import gojson
from dms.actor import Envelope
from dms.errors import DMSError, InvalidInput
from dms.node._payloads import ERR_UNMARSHAL, RequestError, request_object
from dms.node._reply import send_reply
from dms.resources import (
    CPU,
    RAM,
    Disk,
    ResourceManager,
    Resources,
    machine_usage,
    parse_gpu_list,
    parse_size,
)

if TYPE_CHECKING:
    from dms.node._node import Node

log = logging.getLogger(__name__)

ONBOARD = "/dms/node/onboarding/onboard"
OFFBOARD = "/dms/node/onboarding/offboard"
ONBOARDING_STATUS = "/dms/node/onboarding/status"
RESOURCES_ONBOARDED = "/dms/node/resources/onboarded"
RESOURCES_FREE = "/dms/node/resources/free"
RESOURCES_ALLOCATED = "/dms/node/resources/allocated"
HARDWARE_SPEC = "/dms/node/hardware/spec"
HARDWARE_USAGE = "/dms/node/hardware/usage"

NO_MANAGER = "resource manager is not available on this node"


def _size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(f"{what} must be a size such as 4 or 4GiB")
    return parse_size(value)


def _cores(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidInput(f"cpu must be a number of cores, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("cpu must be a number of cores")
    return float(value)


def onboard_payload(
    cpu: Any, ram: Any, disk: Any, gpus: str = "", no_gpu: bool = False
) -> dict[str, Any]:
    """Go's ``OnboardRequest`` for ``cpu`` cores, ``ram`` and ``disk`` (GiB unless a unit is
    given) and ``gpus`` (``index:vram,...``) unless ``no_gpu``.

    Everything is checked as :func:`onboard_request` checks it, with its messages, so a typo
    fails before anything is sent; ``gpus`` is kept as typed (a Go DMS parses it the same way).
    """
    resources = {
        "cpu": {"cores": _cores(cpu)},
        "ram": {"size": _size(ram, "ram")},
        "disk": {"size": _size(disk, "disk")},
    }
    if gpus and not no_gpu:  # NoGPU wins, so its GPUs are never parsed
        parse_gpu_list(gpus)
    return {
        "NoGPU": no_gpu,
        "GPUs": gpus,
        "Config": {"is_onboarded": True, "onboarded_resources": resources},
    }


def onboard_request(obj: Mapping[str, Any]) -> Resources:
    """The resources an onboard request asks for (Go form or the CLI's simple form)."""
    fields = gojson.folded(obj, "onboard request")
    no_gpu = fields.get("nogpu", fields.get("no_gpu", False))
    if not isinstance(no_gpu, bool):
        raise InvalidInput("NoGPU must be a boolean")
    gpus_text = fields.get("gpus") or ""
    if not isinstance(gpus_text, str):
        raise InvalidInput("GPUs must be a string such as 0:4,1:8")
    config = fields.get("config")
    if config is not None:
        if not isinstance(config, Mapping):
            raise InvalidInput("Config must be an onboarding config object")
        cfg = gojson.folded(config, "onboard request Config")
        wanted = Resources.from_json(cfg.get("onboarded_resources"))
    else:
        wanted = Resources(
            cpu=CPU(cores=_cores(fields.get("cpu", 0))),
            ram=RAM(size=_size(fields.get("ram", 0), "ram")),
            disk=Disk(size=_size(fields.get("disk", 0), "disk")),
        )
    if no_gpu:
        return replace(wanted, gpus=())
    if gpus_text:
        return replace(wanted, gpus=parse_gpu_list(gpus_text))
    return wanted


def _config(resources: Resources | None) -> gojson.Struct:
    return gojson.Struct(
        is_onboarded=resources is not None, onboarded_resources=resources or Resources()
    )


def onboard_response(error: str, resources: Resources | None) -> gojson.Struct:
    """``{"success", "error", "config"}``."""
    return gojson.Struct(success=not error, error=error, config=_config(resources))


def resources_response(resources: Resources | None, error: str = "") -> gojson.Struct:
    """``{"Resources", "Error"}``."""
    return gojson.Struct(Resources=resources or Resources(), Error=error)


def install_onboarding(node: Node) -> None:
    """Register the onboarding, resources and hardware behaviours on ``node``."""
    run = trio.to_thread.run_sync

    async def onboard(env: Envelope) -> None:
        manager = node.resources
        if manager is None:
            await send_reply(node, env, onboard_response(NO_MANAGER, None))
            return
        try:
            wanted = onboard_request(request_object(env))
        except RequestError:
            await send_reply(
                node, env, onboard_response(ERR_UNMARSHAL, await run(_current, manager))
            )
            return
        except DMSError as exc:
            await send_reply(node, env, onboard_response(str(exc), await run(_current, manager)))
            return
        try:
            # Validation reads RAM in use and, for requested GPUs, their VRAM in use: skip the
            # CPU sampling (0.2 s) and the GPU tool runs it would not look at.
            measure = functools.partial(
                machine_usage, node.config.general.work_dir, gpus=bool(wanted.gpus), cpu_interval=0
            )
            usage = await run(measure)
            offer = await run(manager.onboard, wanted, usage)
        except DMSError as exc:
            log.info("onboarding refused: %s", exc)
            await send_reply(node, env, onboard_response(str(exc), await run(_current, manager)))
            return
        log.info("onboarded %s", offer.to_json().decode())
        await send_reply(node, env, onboard_response("", offer))

    async def offboard(env: Envelope) -> None:
        manager = node.resources
        if manager is None:
            error = NO_MANAGER
        else:
            try:
                error = "" if await run(manager.offboard) else "the node is not onboarded"
            except DMSError as exc:
                error = str(exc)
        await send_reply(node, env, gojson.Struct(success=not error, error=error))

    async def status(env: Envelope) -> None:
        manager = node.resources
        if manager is None:
            await send_reply(node, env, gojson.Struct(onboarded=False, error=NO_MANAGER))
            return
        try:
            onboarded, error = await run(manager.is_onboarded), ""
        except DMSError as exc:
            onboarded, error = False, str(exc)
        await send_reply(node, env, gojson.Struct(onboarded=onboarded, error=error))

    def books(what: str) -> Any:
        async def handler(env: Envelope) -> None:
            manager = node.resources
            if manager is None:
                await send_reply(node, env, resources_response(None, NO_MANAGER))
                return
            try:
                if what == "onboarded":
                    result = await run(manager.onboarded)
                    error = "" if result is not None else "the node is not onboarded"
                elif what == "free":
                    result, error = await run(manager.free), ""
                else:
                    result, error = await run(manager.allocated), ""
            except DMSError as exc:
                result, error = None, str(exc)
            await send_reply(node, env, resources_response(result, error))

        return handler

    async def hardware_spec(env: Envelope) -> None:
        machine = node.resources.machine if node.resources is not None else None
        await send_reply(node, env, resources_response(machine, "" if machine else NO_MANAGER))

    async def hardware_usage(env: Envelope) -> None:
        manager = node.resources
        if manager is None:
            await send_reply(node, env, resources_response(None, NO_MANAGER))
            return
        try:
            usage = await run(machine_usage, node.config.general.work_dir)
            result, error = usage.as_resources(manager.machine), ""
        except Exception as exc:  # a detector failure is an answer, not a crash
            result, error = None, f"hardware usage: {exc}"
        await send_reply(node, env, resources_response(result, error))

    node.actor.add_behavior(ONBOARD, onboard)
    node.actor.add_behavior(OFFBOARD, offboard)
    node.actor.add_behavior(ONBOARDING_STATUS, status)
    node.actor.add_behavior(RESOURCES_ONBOARDED, books("onboarded"))
    node.actor.add_behavior(RESOURCES_FREE, books("free"))
    node.actor.add_behavior(RESOURCES_ALLOCATED, books("allocated"))
    node.actor.add_behavior(HARDWARE_SPEC, hardware_spec)
    node.actor.add_behavior(HARDWARE_USAGE, hardware_usage)


def _current(manager: ResourceManager) -> Resources | None:
    try:
        return manager.onboarded()
    except DMSError:
        return None
