"""Running containers through the Docker executor, against the real engine."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from dms.executor import (
    ExecutionExists,
    ExecutionStatus,
    ExecutorError,
    ImageUnavailable,
    InvalidSpec,
    PortBinding,
    Termination,
)
from tests.executor.docker_support import (
    container_id_of,
    docker_engine,  # noqa: F401 (the fixture, used by name)
    docker_executor,
    inspect,
    labelled,
    request,
    sh,
)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]


async def test_runs_to_completion_with_separate_streams(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        req = sh("echo out1; echo err1 >&2; echo out2", execution_id="ok")
        result = await ex.run(req)
        assert result.exit_code == 0
        assert result.termination is Termination.EXITED
        assert result.stdout == "out1\nout2\n"
        assert result.stderr == "err1\n"
        assert await ex.status("ok") is ExecutionStatus.SUCCESS
        (info,) = await ex.list_executions()
        assert (info.execution_id, info.job_id, info.status) == (
            "ok",
            "job",
            ExecutionStatus.SUCCESS,
        )
        attrs = inspect(container_id_of(ex, "ok"))
        assert info.detail == attrs["Id"][:12]
        assert attrs["Config"]["Tty"] is False
        labels = attrs["Config"]["Labels"]
        assert labels["nunet-executor"] == ex.executor_id
        assert labels["nunet-jobID"] == f"{ex.executor_id}_job"
        assert labels["nunet-executionID"] == f"{ex.executor_id}_job_ok"
        assert attrs["Name"] == f"/{ex.executor_id}_job_ok"


async def test_non_zero_exit_is_a_failure_with_its_code(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        result = await ex.run(sh("echo bad >&2; exit 3", execution_id="bad"))
        assert result.exit_code == 3
        assert result.termination is Termination.EXITED
        assert result.stderr == "bad\n"
        assert await ex.status("bad") is ExecutionStatus.FAILED


async def test_env_workdir_and_entrypoint_are_honoured(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        req = request(
            ['echo "$FOO|$BAR"; pwd; echo "$0"', "zero"],
            entrypoint=["/bin/sh", "-c"],
            environment=["FOO=1", "BAR=two words"],
            working_directory="/tmp",
        )
        result = await ex.run(req)
        assert result.stdout == "1|two words\n/tmp\nzero\n", result


async def test_provision_scripts_run_before_the_command(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        scripts = [
            ("make marker", b"echo provisioning; echo made-by-provision > /tmp/marker"),
            ("second", b"#!/bin/sh\necho second step >&2"),
        ]
        req = request(["cat", "/tmp/marker"], provision=scripts, execution_id="prov")
        result = await ex.run(req)
        assert result.exit_code == 0, result
        assert result.stdout == "provisioning\nmade-by-provision\n"
        assert result.stderr == "second step\n"
        init = ex.execution_dir("prov") / "init"
        assert init.stat().st_mode & 0o777 == 0o700
        mount = inspect(container_id_of(ex, "prov"))["Mounts"][0]
        assert (mount["Source"], mount["Destination"], mount["RW"]) == (
            str(init),
            "/nunet/init",
            False,
        )
        await ex.remove("prov")
        assert not init.exists()


async def test_a_failed_provision_script_stops_the_command(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        req = request(["echo", "main ran"], provision=[("fail", b"echo failing; exit 4")])
        result = await ex.run(req)
        assert result.exit_code == 4
        assert result.stdout == "failing\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _http_get(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
        return data


async def test_port_binding_is_reachable_from_the_host(tmp_path: Path) -> None:
    port = _free_port()
    async with docker_executor(tmp_path) as ex:
        serve = (
            "mkdir -p /www && echo hello-from-container > /www/index.html"
            " && exec httpd -f -p 8080 -h /www"
        )
        req = sh(
            serve, ports=[PortBinding(host_port=port, executor_port=8080, host_ip="127.0.0.1")]
        )
        await ex.start(req)
        body = b""
        with trio.fail_after(10):
            while b"hello-from-container" not in body:
                try:
                    body = await _http_get(port)
                except (OSError, trio.BrokenResourceError):  # docker-proxy up before httpd
                    body = b""
                if b"hello-from-container" not in body:
                    await trio.sleep(0.1)
        assert body.startswith(b"HTTP/1.")


async def test_missing_image_is_a_clear_error_and_creates_nothing(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        req = request(["true"], image="nunet-test/does-not-exist:1", execution_id="noimg")
        with pytest.raises(ImageUnavailable) as caught:
            await ex.start(req)
        message = str(caught.value)
        assert message.startswith(
            "image 'nunet-test/does-not-exist:1' is not on this machine and could not be pulled: "
        )
        assert "\n" not in message
        assert labelled(ex.executor_id) == []
        assert await ex.list_executions() == []
        await ex.start(request(["true"], execution_id="noimg"))  # the ID is free again


async def test_privileged_is_refused_by_default(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        req = request(["true"], privileged=True)
        with pytest.raises(InvalidSpec, match="allow_privileged_docker"):
            ex.validate(req.spec)
        with pytest.raises(InvalidSpec, match="allow_privileged_docker"):
            await ex.start(req)
        assert labelled(ex.executor_id) == []


async def test_privileged_is_allowed_with_the_setting(tmp_path: Path) -> None:
    async with docker_executor(tmp_path, allow_privileged=True) as ex:
        req = request(["true"], privileged=True, execution_id="priv")
        ex.validate(req.spec)
        try:
            result = await ex.run(req)
        except ExecutorError as exc:
            # A sandboxed engine (no CAP_SYS_ADMIN to hand out) cannot start privileged
            # containers; reaching runc's capability step proves the request got that far.
            assert not isinstance(exc, InvalidSpec)
            assert "unable to apply caps" in str(exc), exc
            assert labelled(ex.executor_id) == []  # the failed container was removed
            return
        assert result.exit_code == 0
        assert inspect(container_id_of(ex, "priv"))["HostConfig"]["Privileged"] is True


async def test_execution_ids_are_unique_and_names_sanitised(tmp_path: Path) -> None:
    async with docker_executor(tmp_path) as ex:
        await ex.start(request(["sleep", "5"], execution_id="a b/c"))
        with pytest.raises(ExecutionExists):
            await ex.start(request(["true"], execution_id="a b/c"))
        attrs = inspect(container_id_of(ex, "a b/c"))
        assert attrs["Config"]["Labels"]["nunet-execution-id"] == "a b/c"
        assert " " not in attrs["Name"] and "/" not in attrs["Name"][1:]


async def test_completion_needs_no_thread_per_container(tmp_path: Path) -> None:
    """Six running containers: one event-stream thread, no engine call in flight."""
    async with docker_executor(tmp_path) as ex:
        for i in range(6):
            await ex.start(sh("sleep 4", execution_id=f"s{i}"))
        engine = ex._engine
        assert ex._watch.events_limiter.borrowed_tokens == 1  # the event stream
        assert engine._streams.borrowed_tokens == 0  # no log followers
        # A periodic sweep may hold a call for a moment; a call parked per container would
        # still be there when the containers (4 s) are far from done.
        with trio.move_on_after(1.5):
            while engine._calls.borrowed_tokens:
                await trio.sleep(0.02)
        assert engine._calls.borrowed_tokens == 0
        results = []

        async def wait(i: int) -> None:
            results.append(await ex.wait(f"s{i}"))

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(wait, i)
        assert [r.exit_code for r in results] == [0] * 6
