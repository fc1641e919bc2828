"""The Docker executor's decisions as pure functions: no engine, no GPU needed."""

from __future__ import annotations

import logging
import shlex
import socket
import threading
import time
from pathlib import Path

import docker
import pytest
import trio
from docker.types import HostConfig

from dms.executor import (
    ExecutionRequest,
    ExecutorUnavailable,
    InvalidSpec,
    PortBinding,
    SpecConfig,
    Termination,
)
from dms.executor._docker import DockerExecutor
from dms.executor._docker_engine import Engine, EngineError, pull_image
from dms.executor._docker_files import write_provision_scripts
from dms.executor._docker_spec import (
    DockerParams,
    check_resources,
    container_plan,
    effective_argv,
    gpu_host_config,
    gpu_run_flags,
    parse_params,
    request_from_labels,
    result_from_state,
    safe_name,
)
from dms.resources import CPU, GPU, RAM, Disk, GPUVendor, Resources

API = "1.41"


def spec(**params: object) -> SpecConfig:
    return SpecConfig("docker", {"image": "img", **params})


def req(params: SpecConfig | None = None, **kwargs: object) -> ExecutionRequest:
    return ExecutionRequest("job1", "exec1", params or spec(), **kwargs)  # type: ignore[arg-type]


# -- params ----------------------------------------------------------------------------------------


def test_params_from_an_ensemble_execution_block() -> None:
    block = {
        "type": "docker",
        "image": "nginx:1",
        "cmd": ["a", "b"],
        "entrypoint": ["/bin/x"],
        "environment": ["A=1", "B=x=y"],
        "working_directory": "/srv",
    }
    params = parse_params(SpecConfig.from_execution(block), allow_privileged=False)
    assert params == DockerParams(
        image="nginx:1",
        cmd=("a", "b"),
        entrypoint=("/bin/x",),
        environment=("A=1", "B=x=y"),
        working_directory="/srv",
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"image": ""}, "'image' is required"),
        ({"image": "x", "volumes": []}, "unknown parameter(s) volumes"),
        ({"image": "a b"}, "bad image name 'a b'"),
        ({"image": "x", "cmd": "echo hi"}, "'cmd' must be a list of strings"),
        ({"image": "x", "entrypoint": [1]}, "'entrypoint' must be a list of strings"),
        ({"image": "x", "environment": ["NOEQUALS"]}, "is not 'KEY=value'"),
        ({"image": "x", "working_directory": "rel"}, "must be an absolute path"),
        ({"image": "x", "privileged": "yes"}, "'privileged' must be true or false"),
    ],
)
def test_bad_params_are_refused_in_one_line(params: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSpec, match=None) as caught:
        parse_params(SpecConfig("docker", params), allow_privileged=False)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_other_executor_types_are_refused() -> None:
    with pytest.raises(InvalidSpec, match="cannot run a 'wasm' execution"):
        parse_params(SpecConfig("wasm", {"image": "x"}), allow_privileged=False)


def test_privileged_needs_the_provider_setting() -> None:
    with pytest.raises(InvalidSpec, match=r"job\.allow_privileged_docker"):
        parse_params(spec(privileged=True), allow_privileged=False)
    assert parse_params(spec(privileged=True), allow_privileged=True).privileged


def test_memory_below_dockers_minimum_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="below Docker's minimum"):
        check_resources(Resources(ram=RAM(size=1 << 20)))
    check_resources(Resources(ram=RAM(size=0)))  # no limit


# -- names and labels --------------------------------------------------------------------------


def test_labels_and_name_follow_the_go_scheme() -> None:
    plan = container_plan("exA", req(), parse_params(spec(), allow_privileged=False))
    assert plan.labels["nunet-executor"] == "exA"
    assert plan.labels["nunet-jobID"] == "exA_job1"
    assert plan.labels["nunet-executionID"] == "exA_job1_exec1"
    assert plan.name == "exA_job1_exec1"
    assert plan.container["name"] == plan.name
    assert plan.container["tty"] is False


def test_names_are_sanitised_without_collisions() -> None:
    assert safe_name("ok_name-1.2") == "ok_name-1.2"
    a, b = safe_name("a/b c"), safe_name("a b/c")
    assert a != b
    for name in (a, b, safe_name("_lead"), safe_name("///")):
        assert name[0].isalnum()
        assert all(ch.isalnum() or ch in "_.-" for ch in name)


def test_request_is_rebuilt_from_labels() -> None:
    request = ExecutionRequest("job_with_underscores", "ex_1", spec(cmd=["x"]))
    plan = container_plan(
        "exA",
        ExecutionRequest(
            request.job_id,
            request.execution_id,
            request.spec,
            resources=Resources(ram=RAM(size=64 << 20), disk=Disk(size=1 << 30)),
        ),
        parse_params(request.spec, allow_privileged=False),
        disk_watch=True,
    )
    attrs = {"HostConfig": {"NanoCpus": 500_000_000, "Memory": 64 << 20}}
    rebuilt = request_from_labels("exA", plan.labels, attrs)
    assert rebuilt.job_id == "job_with_underscores"
    assert rebuilt.execution_id == "ex_1"
    assert dict(rebuilt.spec.params) == {"image": "img", "cmd": ["x"]}
    assert rebuilt.resources.cpu.cores == 0.5
    assert rebuilt.resources.ram.size == 64 << 20
    assert rebuilt.resources.disk.size == 1 << 30


# -- limits, devices, ports --------------------------------------------------------------------


def test_limits_are_set_and_swap_cannot_escape_them() -> None:
    resources = Resources(cpu=CPU(cores=1.5), ram=RAM(size=256 << 20), disk=Disk(size=1 << 30))
    plan = container_plan(
        "e", req(resources=resources), parse_params(spec(), allow_privileged=False)
    )
    host = HostConfig(version=API, **plan.host_config)
    assert host["NanoCpus"] == 1_500_000_000
    assert host["CpuCount"] == 1
    assert host["Memory"] == 256 << 20
    assert host["MemorySwap"] == 256 << 20
    assert "StorageOpt" not in host  # only when the driver can enforce it
    quota = container_plan(
        "e", req(resources=resources), parse_params(spec(), allow_privileged=False), disk_quota=True
    )
    assert HostConfig(version=API, **quota.host_config)["StorageOpt"] == {"size": str(1 << 30)}


def test_fractional_cores_below_one_set_no_cpu_count() -> None:
    resources = Resources(cpu=CPU(cores=0.5))
    plan = container_plan(
        "e", req(resources=resources), parse_params(spec(), allow_privileged=False)
    )
    assert plan.host_config["nano_cpus"] == 500_000_000
    assert "cpu_count" not in plan.host_config


def test_nvidia_gpus_become_a_device_request() -> None:
    gpus = [GPU(index=0, vendor=GPUVendor.NVIDIA), GPU(index=2, vendor=GPUVendor.NVIDIA)]
    host = HostConfig(version=API, **gpu_host_config(gpus))
    (request,) = host["DeviceRequests"]
    assert request["DeviceIDs"] == ["0", "2"]
    assert request["Capabilities"] == [["gpu"]]


def test_nvidia_gpus_use_uuids_when_known() -> None:
    gpus = [GPU(index=0, vendor=GPUVendor.NVIDIA, uuid="GPU-1234")]
    host = HostConfig(version=API, **gpu_host_config(gpus))
    assert host["DeviceRequests"][0]["DeviceIDs"] == ["GPU-1234"]


def test_amd_gpus_get_kfd_dri_and_the_video_group() -> None:
    host = HostConfig(version=API, **gpu_host_config([GPU(index=1, vendor=GPUVendor.AMD)]))
    paths = {(d["PathOnHost"], d["CgroupPermissions"]) for d in host["Devices"]}
    assert paths == {("/dev/kfd", "rwm"), ("/dev/dri", "rwm")}
    assert host["GroupAdd"] == ["video"]


def test_intel_gpus_get_dri() -> None:
    host = HostConfig(version=API, **gpu_host_config([GPU(index=0, vendor=GPUVendor.INTEL)]))
    assert [d["PathOnHost"] for d in host["Devices"]] == ["/dev/dri"]
    assert "GroupAdd" not in host


def test_the_first_gpus_vendor_decides() -> None:
    mixed = [GPU(index=0, vendor=GPUVendor.INTEL), GPU(index=1, vendor=GPUVendor.NVIDIA)]
    assert "device_requests" not in gpu_host_config(mixed)
    with pytest.raises(InvalidSpec, match="Unknown"):
        gpu_host_config([GPU(vendor=GPUVendor.UNKNOWN)])


def test_gpu_run_flags_follow_the_host_config_rules() -> None:
    indexed = [GPU(index=0, vendor=GPUVendor.NVIDIA), GPU(index=2, vendor=GPUVendor.NVIDIA)]
    assert gpu_run_flags(indexed) == ["--gpus", '"device=0,2"']  # one CSV field
    assert gpu_run_flags([GPU(index=3, vendor=GPUVendor.NVIDIA, uuid="GPU-9")]) == [
        "--gpus",
        "device=GPU-9",
    ]
    assert gpu_run_flags([GPU(index=1, vendor=GPUVendor.AMD)]) == [
        "--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "video",
    ]  # fmt: skip
    assert gpu_run_flags([GPU(index=0, vendor=GPUVendor.INTEL)]) == ["--device", "/dev/dri"]
    assert gpu_run_flags([]) == [] and gpu_host_config([]) == {}
    with pytest.raises(InvalidSpec, match="Unknown"):
        gpu_run_flags([GPU(vendor=GPUVendor.UNKNOWN)])


def test_ports_are_exposed_and_bound() -> None:
    ports = (
        PortBinding(host_port=8080, executor_port=80),
        PortBinding(host_port=0, executor_port=53, host_ip="127.0.0.1", protocol="udp"),
    )
    plan = container_plan("e", req(ports=ports), parse_params(spec(), allow_privileged=False))
    assert plan.container["ports"] == [(80, "tcp"), (53, "udp")]
    host = HostConfig(version=API, **plan.host_config)
    assert host["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
    }


def test_gateway_sets_dns_like_go() -> None:
    plan = container_plan(
        "e", req(gateway_ip="10.0.0.1"), parse_params(spec(), allow_privileged=False)
    )
    assert plan.host_config["dns"] == ["10.0.0.1", "1.1.1.1"]
    assert plan.host_config["dns_search"] == ["internal"]


# -- command lines and provisioning ------------------------------------------------------------


def test_effective_argv_follows_dockers_merge_rules() -> None:
    image = {"Entrypoint": ["/ep"], "Cmd": ["default"]}
    assert effective_argv(DockerParams("i"), image) == ["/ep", "default"]
    assert effective_argv(DockerParams("i", cmd=("x",)), image) == ["/ep", "x"]
    assert effective_argv(DockerParams("i", entrypoint=("/o",)), image) == ["/o"]
    assert effective_argv(DockerParams("i", entrypoint=("/o",), cmd=("y",)), image) == ["/o", "y"]


def test_provisioning_wraps_the_command_quoted(tmp_path: Path) -> None:
    execution = spec(cmd=["echo", "it's a $HOME"])
    params = parse_params(execution, allow_privileged=False)
    plan = container_plan("e", req(execution), params, init_dir=str(tmp_path))
    entry = plan.container["entrypoint"]
    assert entry[:2] == ["/bin/sh", "-c"]
    assert entry[2] == (
        "/nunet/init/run_provision_scripts.sh && exec " + shlex.join(["echo", "it's a $HOME"])
    )
    assert "command" not in plan.container
    assert plan.host_config["binds"] == {str(tmp_path): {"bind": "/nunet/init", "mode": "ro"}}


def test_provision_files_are_private_and_ordered(tmp_path: Path) -> None:
    init = write_provision_scripts(
        tmp_path, "exA", "ex/1", [("first one", b"echo 1"), ("second", b"#!/bin/sh\necho 2")]
    )
    assert init.stat().st_mode & 0o777 == 0o700
    assert (init.parent / "owner").read_text() == "exA"
    wrapper = (init / "run_provision_scripts.sh").read_text().splitlines()
    assert wrapper == [
        "#!/bin/sh",
        "set -e",
        "/bin/sh /nunet/init/01-first_one",
        "/nunet/init/02-second",
    ]
    assert (init / "01-first_one").stat().st_mode & 0o777 == 0o700


# -- results -----------------------------------------------------------------------------------


def test_results_say_why_the_container_ended() -> None:
    exited = result_from_state({"ExitCode": 3}, stdout="o", stderr="e")
    assert (exited.exit_code, exited.termination, exited.error) == (3, Termination.EXITED, "")
    oom = result_from_state({"ExitCode": 137, "OOMKilled": True}, memory_limit=16 << 20)
    assert oom.termination is Termination.OOM_KILLED
    assert oom.error == "killed: exceeded its memory limit of 16 MiB"
    cancelled = result_from_state({"ExitCode": 137, "OOMKilled": True}, cancelled=True)
    assert cancelled.termination is Termination.CANCELLED
    disk = result_from_state({"ExitCode": 137}, disk_exceeded="killed: wrote too much")
    assert disk.termination is Termination.DISK_LIMIT
    never = result_from_state({"ExitCode": 0, "Status": "created"})
    assert never.termination is Termination.ERROR and never.status.value == "failed"


# -- an engine that does not answer ------------------------------------------------------------


def _silent_server(path: Path) -> socket.socket:
    """A unix socket that accepts connections and never answers (a hung engine)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return server


def test_probe_names_the_engine_and_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    reason = DockerExecutor.probe()
    assert (
        reason == "docker: no engine at unix:///nonexistent/docker.sock: No such file or directory"
    )


async def test_a_hung_engine_cannot_hang_the_dms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = tmp_path / "hung.sock"
    server = _silent_server(sock)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    try:
        started = time.monotonic()
        with pytest.raises(ExecutorUnavailable, match="docker: no engine at unix://"):
            await Engine.open(timeout=0.5)
        assert time.monotonic() - started < 3
        # an engine that answered once and then hangs: calls time out one by one
        client = docker.DockerClient(base_url=f"unix://{sock}", version="1.41", timeout=5)
        engine = Engine(client, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(EngineError, match=r"no answer from the engine within 0\.3 s"):
            await engine.call("inspect container", lambda: client.api.inspect_container("x"))
        assert time.monotonic() - started < 2
        engine.close()
    finally:
        server.close()
    await trio.sleep(0)


class _FakePullAPI:
    """Feeds ``pull_image`` the progress messages an engine sends (no registry here)."""

    def __init__(self, events: list[dict[str, object]]) -> None:
        self.events = events
        self.asked: tuple[str, str | None] | None = None

    def pull(self, repo: str, tag: str | None = None, **_: object) -> list[dict[str, object]]:
        self.asked = (repo, tag)
        return self.events


def test_pull_logs_layer_progress(caplog: pytest.LogCaptureFixture) -> None:
    events: list[dict[str, object]] = [
        {"status": "Pulling from library/x", "id": "latest"},
        {"status": "Downloading", "id": "l1", "progressDetail": {"current": 50, "total": 100}},
        {"status": "Downloading", "id": "l2", "progressDetail": {"current": 0, "total": 300}},
        {"status": "Pull complete", "id": "l1"},
    ]
    api = _FakePullAPI(events)
    with caplog.at_level(logging.INFO, logger="dms.executor._docker_engine"):
        pull_image(api, "x", deadline=time.monotonic() + 10, every=0)  # type: ignore[arg-type]
    assert api.asked == ("x", "latest")
    messages = [r.getMessage() for r in caplog.records]
    assert "docker: pulling x: 1 layer(s) done, 25% of 400 B" in messages
    assert messages[-1] == "docker: pulled x"


def test_pull_errors_and_deadlines_are_reported() -> None:
    api = _FakePullAPI([{"error": "manifest unknown"}])
    with pytest.raises(docker.errors.DockerException, match="manifest unknown"):
        pull_image(api, "x:1", deadline=time.monotonic() + 10)  # type: ignore[arg-type]
    assert api.asked == ("x", "1")
    slow = _FakePullAPI([{"status": "Waiting", "id": "l1"}])
    with pytest.raises(docker.errors.DockerException, match="timed out"):
        pull_image(slow, "x", deadline=time.monotonic() - 1)  # type: ignore[arg-type]
