"""What a Docker execution asks for, and the container that carries it out (pure functions).

Kept apart from the engine calls so that every decision (which limits, which devices, which
labels, which command line) can be unit-tested without a Docker engine or a GPU. The executor
feeds :func:`container_plan`'s output to the SDK's low-level ``create_container`` /
``create_host_config`` as is.

Spec §10 names: labels ``nunet-executor=<executorID>``, ``nunet-jobID=<executorID>_<jobID>``,
``nunet-executionID=<executorID>_<jobID>_<executionID>``; the container is named after the last.
We add labels of our own holding the raw IDs and the spec (``nunet-execution-id``,
``nunet-job-id``, ``nunet-spec``), because the Go values cannot be split back apart when an ID
contains ``_``, and :meth:`DockerExecutor.recover` must rebuild its table from labels alone.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from docker.types import DeviceRequest

from dms.executor._errors import InvalidSpec
from dms.executor._types import (
    ExecutionRequest,
    ExecutionResult,
    NetworkAttachment,
    PortBinding,
    SpecConfig,
    Termination,
)
from dms.resources import GPU, GPUVendor, Resources, format_size

NAME = "docker"

LABEL_EXECUTOR = "nunet-executor"
LABEL_JOB = "nunet-jobID"
LABEL_EXECUTION = "nunet-executionID"
LABEL_EXECUTION_ID = "nunet-execution-id"
LABEL_JOB_ID = "nunet-job-id"
LABEL_SPEC = "nunet-spec"
LABEL_DISK_LIMIT = "nunet-disk-limit"  # bytes, set when the executor watches the disk itself

PARAMS = frozenset({"image", "cmd", "entrypoint", "environment", "working_directory", "privileged"})

#: Docker refuses memory limits below 6 MiB.
MIN_MEMORY = 6 * 1024 * 1024

#: Where provision scripts are mounted inside the container.
INIT_DIR = "/nunet/init"
INIT_WRAPPER = "run_provision_scripts.sh"

_NAME_OK = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_NAME_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")
_ENV_KEY = re.compile(r"[^=\s][^=]*")


@dataclass(frozen=True)
class DockerParams:
    """The ``execution:`` block of a docker allocation, checked."""

    image: str
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: tuple[str, ...] = ()
    working_directory: str = ""
    privileged: bool = False

    def to_json(self) -> str:
        """The params as the label ``nunet-spec`` keeps them (compact JSON)."""
        data: dict[str, Any] = {"image": self.image}
        if self.cmd is not None:
            data["cmd"] = list(self.cmd)
        if self.entrypoint is not None:
            data["entrypoint"] = list(self.entrypoint)
        if self.environment:
            data["environment"] = list(self.environment)
        if self.working_directory:
            data["working_directory"] = self.working_directory
        if self.privileged:
            data["privileged"] = True
        return json.dumps(data, separators=(",", ":"))


def _strings(params: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidSpec(f"docker execution: {key!r} must be a list of strings")
    if not all(isinstance(item, str) for item in value):
        raise InvalidSpec(f"docker execution: {key!r} must be a list of strings")
    return tuple(value)


def parse_params(spec: SpecConfig, *, allow_privileged: bool) -> DockerParams:
    """Check a docker ``SpecConfig``; raise :class:`InvalidSpec` with a one-line reason."""
    if spec.type != NAME:
        raise InvalidSpec(f"docker executor cannot run a {spec.type!r} execution")
    params = spec.params
    unknown = sorted(set(params) - PARAMS)
    if unknown:
        known = ", ".join(sorted(PARAMS))
        raise InvalidSpec(
            f"docker execution: unknown parameter(s) {', '.join(unknown)} (known: {known})"
        )
    image = params.get("image")
    if not isinstance(image, str) or not image.strip():
        raise InvalidSpec("docker execution: 'image' is required (a non-empty string)")
    if any(ch.isspace() for ch in image.strip()):
        raise InvalidSpec(f"docker execution: bad image name {image!r} (contains spaces)")
    environment = _strings(params, "environment") or ()
    for item in environment:
        key, sep, _ = item.partition("=")
        if not sep or not _ENV_KEY.fullmatch(key):
            raise InvalidSpec(f"docker execution: environment entry {item!r} is not 'KEY=value'")
    workdir = params.get("working_directory") or ""
    if not isinstance(workdir, str) or (workdir and not posixpath.isabs(workdir)):
        raise InvalidSpec("docker execution: 'working_directory' must be an absolute path")
    privileged = params.get("privileged", False)
    if not isinstance(privileged, bool):
        raise InvalidSpec("docker execution: 'privileged' must be true or false")
    if privileged and not allow_privileged:
        raise InvalidSpec(
            "docker execution: privileged containers are refused on this machine "
            "(the provider has not set job.allow_privileged_docker)"
        )
    return DockerParams(
        image=image.strip(),
        cmd=_strings(params, "cmd"),
        entrypoint=_strings(params, "entrypoint"),
        environment=environment,
        working_directory=workdir,
        privileged=privileged,
    )


def check_resources(resources: Resources) -> None:
    """Refuse limits Docker would refuse, with our words rather than the engine's."""
    if resources.cpu.cores < 0:
        raise InvalidSpec("docker execution: cpu.cores must not be negative")
    if 0 < resources.ram.size < MIN_MEMORY:
        raise InvalidSpec(
            f"docker execution: ram.size {format_size(resources.ram.size)} is below "
            f"Docker's minimum of {format_size(MIN_MEMORY)}"
        )


# -- names and labels ----------------------------------------------------------------------------


def safe_name(text: str) -> str:
    """``text`` in Docker's container-name charset ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``.

    Unchanged when already valid; otherwise bad characters become ``-`` and a short hash of the
    original is appended, so two IDs that differ only in bad characters stay distinct.
    """
    if _NAME_OK.fullmatch(text):
        return text
    cleaned = _NAME_BAD_CHARS.sub("-", text).lstrip("_.-")
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{cleaned}-{digest}" if cleaned else f"x-{digest}"


def labels_for(executor_id: str, request: ExecutionRequest, params: DockerParams) -> dict[str, str]:
    """The Go labels (spec §10) plus ours for recovery."""
    return {
        LABEL_EXECUTOR: executor_id,
        LABEL_JOB: f"{executor_id}_{request.job_id}",
        LABEL_EXECUTION: f"{executor_id}_{request.job_id}_{request.execution_id}",
        LABEL_EXECUTION_ID: request.execution_id,
        LABEL_JOB_ID: request.job_id,
        LABEL_SPEC: params.to_json(),
    }


def container_name(executor_id: str, request: ExecutionRequest) -> str:
    """The ``nunet-executionID`` label value, made a valid container name."""
    return safe_name(f"{executor_id}_{request.job_id}_{request.execution_id}")


def request_from_labels(
    executor_id: str, labels: Mapping[str, str], attrs: Mapping[str, Any]
) -> ExecutionRequest:
    """Rebuild an ``ExecutionRequest`` from a container found after a restart."""
    execution_id = labels.get(LABEL_EXECUTION_ID)
    job_id = labels.get(LABEL_JOB_ID, "")
    if not execution_id:  # a container made by Go or an older version: best effort
        execution_id = labels.get(LABEL_EXECUTION, "").removeprefix(f"{executor_id}_")
    try:
        params = json.loads(labels.get(LABEL_SPEC, "")) or {}
    except ValueError:
        params = {}
    if not isinstance(params, dict) or "image" not in params:
        params = {"image": str(attrs.get("Image") or "")}
    host = attrs.get("HostConfig") or {}
    resources = Resources.from_json(
        {
            "cpu": {"cores": (host.get("NanoCpus") or 0) / 1e9},
            "ram": {"size": host.get("Memory") or 0},
            "disk": {"size": int(labels.get(LABEL_DISK_LIMIT, "0") or 0)},
        }
    )
    return ExecutionRequest(
        job_id=job_id,
        execution_id=execution_id,
        spec=SpecConfig(NAME, params),
        resources=resources,
    )


# -- the container -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GPUAccess:
    """What a container needs to use one vendor's GPUs: the one rule table that both the
    executor's host config (:func:`gpu_host_config`) and ``docker run`` flags
    (:func:`gpu_run_flags`, for ``nunet gpu test``) are rendered from."""

    device_request: bool = False  # NVIDIA: a device request for the chosen GPUs
    devices: tuple[str, ...] = ()  # host device paths, mapped to the same path, ``rwm``
    groups: tuple[str, ...] = ()  # supplementary groups


_GPU_ACCESS = {
    GPUVendor.NVIDIA: _GPUAccess(device_request=True),
    GPUVendor.AMD: _GPUAccess(devices=("/dev/kfd", "/dev/dri"), groups=("video",)),
    GPUVendor.INTEL: _GPUAccess(devices=("/dev/dri",)),
}


def _gpu_access(gpus: Sequence[GPU]) -> _GPUAccess:
    vendor = gpus[0].vendor
    access = _GPU_ACCESS.get(vendor)
    if access is None:
        raise InvalidSpec(f"docker execution: cannot give a container a {vendor.value!r} GPU")
    return access


def _nvidia_device_ids(gpus: Sequence[GPU]) -> list[str]:
    """By UUID when detection gave NVML's ``GPU-...`` UUIDs (they survive renumbering), else by
    index, as Go does."""
    if all(g.uuid.startswith("GPU-") for g in gpus):
        return [g.uuid for g in gpus]
    return [str(g.index) for g in gpus]


def gpu_host_config(gpus: Sequence[GPU]) -> dict[str, Any]:
    """Host-config entries giving the container ``gpus`` (spec §10: the first GPU's vendor decides).

    NVIDIA: a device request for those GPUs (by UUID when detection gave NVML's ``GPU-...`` UUIDs,
    which survive renumbering; else by index, as Go does). AMD: ``/dev/kfd`` and ``/dev/dri``
    plus the ``video`` group (ROCm's requirement). Intel: ``/dev/dri``.
    """
    if not gpus:
        return {}
    access = _gpu_access(gpus)
    config: dict[str, Any] = {}
    if access.device_request:
        ids = _nvidia_device_ids(gpus)
        config["device_requests"] = [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]
    if access.devices:
        config["devices"] = [f"{path}:{path}:rwm" for path in access.devices]
    if access.groups:
        config["group_add"] = list(access.groups)
    return config


def gpu_run_flags(gpus: Sequence[GPU]) -> list[str]:
    """The ``docker run`` flags equivalent to :func:`gpu_host_config` (same rules), e.g.
    ``["--gpus", "device=GPU-..."]`` or ``["--device", "/dev/dri"]``."""
    if not gpus:
        return []
    access = _gpu_access(gpus)
    flags: list[str] = []
    if access.device_request:
        ids = _nvidia_device_ids(gpus)
        # --gpus is parsed as CSV: several IDs must be quoted to stay one field.
        value = f"device={','.join(ids)}"
        flags += ["--gpus", value if len(ids) == 1 else f'"{value}"']
    for path in access.devices:
        flags += ["--device", path]
    for group in access.groups:
        flags += ["--group-add", group]
    return flags


def port_config(ports: Sequence[PortBinding]) -> tuple[list[Any], dict[str, Any]]:
    """``(exposed ports, port_bindings)`` for ``create_container`` / ``create_host_config``.

    A ``host_port`` of 0 lets the engine choose one.
    """
    exposed: list[Any] = []
    bindings: dict[str, list[tuple[str, str]]] = {}
    for port in ports:
        key = f"{port.executor_port}/{port.protocol}"
        if key not in bindings:
            exposed.append((port.executor_port, port.protocol))
            bindings[key] = []
        bindings[key].append((port.host_ip, str(port.host_port) if port.host_port else ""))
    return exposed, bindings


def effective_argv(params: DockerParams, image_config: Mapping[str, Any]) -> list[str]:
    """The command the container would run: Docker's merge of the spec with the image config.

    An entrypoint given in the spec replaces the image's and drops the image's ``Cmd``.
    """
    image_entry = list(image_config.get("Entrypoint") or [])
    image_cmd = list(image_config.get("Cmd") or [])
    if params.entrypoint is not None:
        return [*params.entrypoint, *(params.cmd or [])]
    return [*image_entry, *(image_cmd if params.cmd is None else params.cmd)]


def provision_command(argv: Sequence[str], *, first: str = "") -> list[str]:
    """Go's provisioning wrapper: run the scripts, then (only if they succeed) the program.

    ``exec`` makes the program replace the shell, so it receives the stop signal itself.
    ``first`` is shell code run before everything (:func:`network_wait`).
    """
    script = first + f"{INIT_DIR}/{INIT_WRAPPER}"
    if argv:
        script += f" && exec {shlex.join(argv)}"
    return ["/bin/sh", "-c", script]


def network_wait(network: NetworkAttachment) -> str:
    """Shell code that waits until the subnet interface is in the container and up.

    The DMS puts the interface into the container's namespace just after the container starts
    (its namespace does not exist before); the workload must not run before, or its first
    connections would fail. Gives up with exit code 125 after ``wait_s``.
    """
    flags = f"/sys/class/net/{network.interface}/flags"
    tries = max(1, int(network.wait_s / 0.05))
    return (
        f"n=0; until [ -e {flags} ] && [ $(( $(cat {flags}) & 1 )) = 1 ]; do "
        f"if [ $n -ge {tries} ]; then echo 'nunet: the subnet interface "
        f"{network.interface} did not appear' >&2; exit 125; fi; "
        "n=$((n+1)); sleep 0.05; done; "
    )


def network_command(argv: Sequence[str], network: NetworkAttachment) -> list[str]:
    """Run ``argv`` once the subnet interface is up (needs ``/bin/sh`` in the image)."""
    return ["/bin/sh", "-c", network_wait(network) + f"exec {shlex.join(argv)}"]


@dataclass(frozen=True)
class ContainerPlan:
    """Arguments for the SDK's ``create_container`` and ``create_host_config``."""

    name: str
    container: dict[str, Any]
    host_config: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)


def container_plan(
    executor_id: str,
    request: ExecutionRequest,
    params: DockerParams,
    *,
    image_config: Mapping[str, Any] | None = None,
    init_dir: str | None = None,
    disk_quota: bool = False,
    disk_watch: bool = False,
) -> ContainerPlan:
    """The container for ``request``: limits, devices, ports, labels, command line.

    ``init_dir`` (a host directory holding provision scripts) wraps the command with
    :func:`provision_command`, which needs the image's own command (``image_config``).
    ``disk_quota`` asks the storage driver to enforce ``resources.disk.size``; ``disk_watch``
    records the limit in a label instead, for the executor's own watchdog (and recovery).
    """
    res = request.resources
    labels = labels_for(executor_id, request, params)
    if disk_watch and res.disk.size > 0:
        labels[LABEL_DISK_LIMIT] = str(res.disk.size)
    host: dict[str, Any] = {"privileged": params.privileged}
    cores = float(res.cpu.cores)
    if cores > 0:
        host["nano_cpus"] = round(cores * 1e9)
        if int(cores) >= 1:
            host["cpu_count"] = int(cores)  # Go sets it; Linux engines ignore it
    if res.ram.size > 0:
        host["mem_limit"] = res.ram.size
        host["memswap_limit"] = res.ram.size  # equal: no swap on top of the limit
    if res.disk.size > 0 and disk_quota:
        host["storage_opt"] = {"size": str(res.disk.size)}
    host.update(gpu_host_config(res.gpus))
    exposed, bindings = port_config(request.ports)
    if bindings:
        host["port_bindings"] = bindings
    if request.gateway_ip:
        host["dns"] = [request.gateway_ip, "1.1.1.1"]
        host["dns_search"] = ["internal"]
        host["dns_opt"] = ["ndots:1", "timeout:2", "attempts:1"]
    entrypoint: list[str] | None = (
        list(params.entrypoint) if params.entrypoint is not None else None
    )
    command: list[str] | None = list(params.cmd) if params.cmd is not None else None
    first = network_wait(request.network) if request.network is not None else ""
    if init_dir is not None:
        host["binds"] = {init_dir: {"bind": INIT_DIR, "mode": "ro"}}
        entrypoint = provision_command(effective_argv(params, image_config or {}), first=first)
        command = None
    elif request.network is not None:
        entrypoint = network_command(effective_argv(params, image_config or {}), request.network)
        command = None
    name = container_name(executor_id, request)
    container: dict[str, Any] = {
        "image": params.image,
        "name": name,
        "labels": labels,
        "environment": list(params.environment),
        "tty": False,  # stdout and stderr stay apart (Go: tty on)
        "stdin_open": False,
        "detach": True,
    }
    if entrypoint is not None:
        container["entrypoint"] = entrypoint
    if command is not None:
        container["command"] = command
    if params.working_directory:
        container["working_dir"] = params.working_directory
    if exposed:
        container["ports"] = exposed
    return ContainerPlan(name=name, container=container, host_config=host, labels=labels)


# -- results -------------------------------------------------------------------------------------


def result_from_state(
    state: Mapping[str, Any],
    *,
    stdout: str = "",
    stderr: str = "",
    cancelled: bool = False,
    oom_seen: bool = False,
    disk_exceeded: str = "",
    memory_limit: int = 0,
) -> ExecutionResult:
    """How a stopped container ended, from ``inspect``'s ``State`` and what we know of it.

    Precedence: a cancel we asked for, then the kernel's OOM kill, then our disk watchdog, then
    an engine error (the program never ran), else the program's own exit.
    """
    code = int(state.get("ExitCode", -1))
    if cancelled:
        return ExecutionResult(code, stdout, stderr, "cancelled", Termination.CANCELLED)
    if state.get("OOMKilled") or oom_seen:
        limit = f" of {format_size(memory_limit)}" if memory_limit else ""
        return ExecutionResult(
            code,
            stdout,
            stderr,
            f"killed: exceeded its memory limit{limit}",
            Termination.OOM_KILLED,
        )
    if disk_exceeded:
        return ExecutionResult(code, stdout, stderr, disk_exceeded, Termination.DISK_LIMIT)
    if state.get("Status") == "created":
        return ExecutionResult(
            -1, stdout, stderr, "the container was created but never started", Termination.ERROR
        )
    error = str(state.get("Error") or "")
    if error:
        return ExecutionResult(code, stdout, stderr, error, Termination.ERROR)
    return ExecutionResult(code, stdout, stderr)
