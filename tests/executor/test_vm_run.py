"""The vm executor on real QEMU (KVM where the probe says it works, TCG emulation otherwise):
output and exit codes, limits the guest sees, cancel and timeout, a Go-style firecracker spec,
the example through the CLI, and recovery after a SIGKILLed DMS.

These FAIL, not skip, when ``qemu-system-x86_64`` is installed: the guest is then built on
demand by ``scripts/vm-guest.sh`` (what CI's set-up runs). They skip only without QEMU. Each
boot costs ~3 s under TCG, so boots are shared where a test can check several things at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from dms.executor import (
    ExecutionRequest,
    ExecutionStatus,
    ExecutorError,
    ExecutorRegistry,
    ExecutorSettings,
    ExecutorUnavailable,
    SpecConfig,
    Termination,
    reclaim_leftovers,
)
from dms.executor._vm import VmExecutor
from dms.executor._vm_guest import Guest, default_guest_dir
from dms.executor._vm_probe import PROBE_DEADLINE, availability, kvm_status
from dms.executor._vm_qemu import VmFiles, owned_pid
from dms.resources import CPU, RAM, Resources
from tests.executor.test_vm_spec import serving

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("qemu-system-x86_64") is None,
        reason="qemu-system-x86_64 is not installed (scripts/vm-guest.sh installs it)",
    ),
]


@pytest.fixture(scope="module")
def guest_dir() -> Path:
    """The default guest, built by scripts/vm-guest.sh when missing (a failure fails the test)."""
    directory = default_guest_dir()
    if Guest.default(directory).missing() is not None:
        subprocess.run([str(REPO / "scripts" / "vm-guest.sh"), str(directory)], check=True)
    return directory


def settings(tmp_path: Path, guest_dir: Path, executor_id: str = "test-vm") -> ExecutorSettings:
    return ExecutorSettings(
        executor_id=executor_id,
        work_dir=tmp_path / "work",
        # As ``nunet executor run``: the user's own spec may name host paths and LAN URLs.
        extra={
            "vm_guest_dir": str(guest_dir),
            "vm_allow_host_paths": True,
            "vm_fetch_private_addresses": True,
        },
    )


@asynccontextmanager
async def opened(
    tmp_path: Path, guest_dir: Path, cls: type[VmExecutor] = VmExecutor
) -> AsyncIterator[VmExecutor]:
    executor = cls(settings(tmp_path, guest_dir))
    async with executor.open():
        try:
            yield executor
        finally:
            with trio.CancelScope(shield=True):
                await executor.cleanup()


def request(
    execution_id: str,
    kind: str = "vm",
    *,
    cores: float = 1,
    ram_mib: int = 128,
    **params: Any,
) -> ExecutionRequest:
    return ExecutionRequest(
        job_id="j1",
        execution_id=execution_id,
        spec=SpecConfig(kind, params),
        resources=Resources(cpu=CPU(cores=cores), ram=RAM(size=ram_mib * MiB)),
    )


def qemu_pids(work_dir: Path) -> list[int]:
    """QEMU processes whose command line names a file under ``work_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and any(os.fsencode(work_dir) in a for a in argv):
            found.append(int(entry.name))
    return found


def test_the_probe_names_the_accelerator_within_its_deadline(guest_dir: Path) -> None:
    found = availability(guest_dir)
    assert found.reason is None
    line = found.line()
    if found.accel == "kvm":
        assert line == "vm: available (kvm)"
    else:  # here: /dev/kvm exists but cannot run a guest
        assert line.startswith("vm: available (emulated, slow): ")
        assert found.kvm_reason
    if os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK):
        started = time.monotonic()
        kvm, _ = kvm_status(
            shutil.which("qemu-system-x86_64") or "", Guest.default(guest_dir), None
        )
        assert time.monotonic() - started < PROBE_DEADLINE + 5  # never hangs
        assert kvm == (found.accel == "kvm")
    assert ExecutorRegistry().probe("vm").reason == line


async def test_emulation_only_where_the_node_allows_it(tmp_path: Path, guest_dir: Path) -> None:
    strict = ExecutorSettings(
        "strict", tmp_path, extra={"vm_guest_dir": str(guest_dir), "vm_allow_emulation": False}
    )
    if availability(guest_dir).accel == "kvm":
        async with VmExecutor(strict).open() as ex:
            assert ex.accel == "kvm"  # type: ignore[attr-defined]
    else:
        with pytest.raises(ExecutorUnavailable, match="emulation is off"):
            async with VmExecutor(strict).open():
                pass


async def test_hello_vcpus_memory_and_logs(tmp_path: Path, guest_dir: Path) -> None:
    command = 'echo "hello from the guest"; nproc; grep MemTotal /proc/meminfo'
    async with opened(tmp_path, guest_dir) as ex:
        req = request("hello", cores=1.5, ram_mib=160, command=command)
        await ex.start(req)
        assert await ex.status("hello") is ExecutionStatus.RUNNING
        (info,) = await ex.list_executions()
        assert "2 vCPU, 160 MiB" in info.detail
        result = await ex.wait("hello")
        assert result.exit_code == 0 and result.termination is Termination.EXITED, result
        lines = result.stdout.splitlines()
        assert lines[0] == "hello from the guest"
        assert lines[1] == "2"  # 1.5 cores requested -> 2 vCPUs, as the guest sees them
        mem_kib = int(lines[2].split()[1])
        assert 100 * 1024 < mem_kib <= 160 * 1024  # the VM's RAM, minus the kernel's own
        chunks = [c async for c in ex.logs("hello", tail=1)]
        assert b"".join(c.data for c in chunks).startswith(b"MemTotal")
        assert {c.stream for c in chunks} == {"stdout"}
        await ex.remove("hello")
        assert not (tmp_path / "work" / "executions" / "hello").exists()


async def test_nonzero_exit_env_and_provision_scripts(tmp_path: Path, guest_dir: Path) -> None:
    async with opened(tmp_path, guest_dir) as ex:
        req = ExecutionRequest(
            job_id="j1",
            execution_id="fails",
            spec=SpecConfig(
                "vm",
                {
                    "command": 'cat /tmp/ready; echo "$GREETING"; exit 7',
                    "env": {"GREETING": "hi there"},
                },
            ),
            resources=Resources(ram=RAM(size=128 * MiB)),
            provision_scripts=[("prep.sh", b"echo provisioned > /tmp/ready\n")],
        )
        result = await ex.run(req)
        assert result.exit_code == 7 and result.termination is Termination.EXITED
        assert result.status is ExecutionStatus.FAILED
        assert result.stdout.splitlines() == ["provisioned", "hi there"]


async def test_memory_limit_holds_inside_the_vm(tmp_path: Path, guest_dir: Path) -> None:
    async with opened(tmp_path, guest_dir) as ex:
        # A 200 MiB buffer in a 96 MiB VM: the guest kernel's OOM killer stops it.
        req = request("greedy", ram_mib=96, command="dd if=/dev/zero of=/dev/null bs=200M count=1")
        result = await ex.run(req)
        assert result.termination is Termination.OOM_KILLED, result
        assert result.exit_code == 137 and "96 MiB" in result.error


async def test_cancel_and_timeout_leave_no_qemu(tmp_path: Path, guest_dir: Path) -> None:
    async with opened(tmp_path, guest_dir) as ex:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ex.start, request("sleeper", command="sleep 600"))
            nursery.start_soon(ex.start, request("slow", command="sleep 600", timeout=1))
        assert len(qemu_pids(tmp_path / "work")) == 2
        started = time.monotonic()
        await ex.cancel("sleeper")
        cancelled = await ex.wait("sleeper")
        assert cancelled.termination is Termination.CANCELLED
        assert time.monotonic() - started < 5  # QMP quit, not a kill after a grace
        timed_out = await ex.wait("slow")
        assert timed_out.termination is Termination.CPU_LIMIT and "1 s" in timed_out.error
        assert qemu_pids(tmp_path / "work") == []


async def test_a_go_style_firecracker_spec_runs(tmp_path: Path, guest_dir: Path) -> None:
    rootfs_dir = tmp_path / "rootfs"
    rootfs_dir.mkdir()
    (rootfs_dir / "hello.txt").write_text("hello from the root file system\n")
    rootfs = tmp_path / "rootfs.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(rootfs_dir), str(rootfs), "4M"], check=True)
    guest = Guest.default(guest_dir)
    kernel_sha256 = hashlib.sha256(guest.kernel.read_bytes()).hexdigest()
    registry = ExecutorRegistry()
    assert registry.probe("firecracker").available
    executor = registry.create("firecracker", settings(tmp_path, guest_dir))
    async with executor.open():
        with serving(guest_dir) as url:  # the kernel by URL, pinned; the rest by path
            result = await executor.run(
                request(
                    "fc",
                    "firecracker",
                    kernel_image=url("vmlinuz"),
                    kernel_image_sha256=kernel_sha256,
                    initrd_path=str(guest.initrd),
                    root_file_system=str(rootfs),
                    kernel_args="-- cat /nunet/mmds /mnt/rootfs/hello.txt",
                    mmds_message='{"latest": {"meta-data": "x"}}',
                )
            )
        await executor.cleanup()
    assert result.exit_code == 0, result
    assert result.stdout.splitlines() == [
        '{"latest": {"meta-data": "x"}}hello from the root file system'
    ]
    assert rootfs.stat().st_size == 4 * MiB  # writes went to a throw-away overlay


DMS_LIKE = """
import sys, trio
from pathlib import Path
from dms.executor import ExecutionRequest, ExecutorSettings, SpecConfig
from dms.executor._vm import VmExecutor
from dms.resources import RAM, Resources

async def main():
    ex = VmExecutor(ExecutorSettings("crashy", Path(sys.argv[1]),
                                     extra={"vm_guest_dir": sys.argv[2]}))
    resources = Resources(ram=RAM(size=128 << 20))
    async with ex.open():
        for execution_id, command in (("left-behind", "sleep 600"), ("ends-alone", "exit 5")):
            spec = SpecConfig("vm", {"command": command})
            await ex.start(ExecutionRequest("j1", execution_id, spec, resources=resources))
        print("started", flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


async def test_a_vm_left_by_a_sigkilled_dms_is_found_and_removed(
    tmp_path: Path, guest_dir: Path
) -> None:
    work = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-c", DMS_LIKE, str(work), str(guest_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await trio.to_thread.run_sync(proc.stdout.readline)
        assert line.strip() == "started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    files = VmFiles(work / "executions" / "left-behind")
    pid = owned_pid(files)
    assert pid is not None and pid in qemu_pids(work)  # the VM outlived its DMS
    alone = VmFiles(work / "executions" / "ends-alone")
    with trio.fail_after(60):  # it finishes while no DMS watches it
        while owned_pid(alone) is not None:
            await trio.sleep(0.1)
    ex = VmExecutor(ExecutorSettings("crashy", work, extra={"vm_guest_dir": str(guest_dir)}))
    async with ex.open():
        adopted, removed = await reclaim_leftovers(
            ex, claimed=lambda info: info.execution_id == "ends-alone"
        )
        assert [i.execution_id for i in removed] == ["left-behind"]
        assert removed[0].status is ExecutionStatus.RUNNING
        assert [i.execution_id for i in adopted] == ["ends-alone"]
        result = await ex.wait("ends-alone")  # its exit code survived in the exit file
        assert result.exit_code == 5 and result.termination is Termination.EXITED
        await ex.cleanup()
    assert qemu_pids(work) == []
    assert not files.directory.exists() and not alone.directory.exists()


async def test_a_kernel_qemu_cannot_boot_is_one_line_and_leaves_nothing(
    tmp_path: Path, guest_dir: Path
) -> None:
    kernel = tmp_path / "not-a-kernel"
    kernel.write_bytes(os.urandom(100_000))
    async with opened(tmp_path, guest_dir) as ex:
        with pytest.raises(ExecutorError, match=r"^vm: QEMU did not start \(status 1\): ") as err:
            await ex.start(request("bad", command="true", kernel=str(kernel)))
        assert "\n" not in str(err.value)
        assert await ex.list_executions() == []
    assert qemu_pids(tmp_path / "work") == []


def test_the_example_runs_through_the_cli(tmp_path: Path, guest_dir: Path) -> None:
    env = dict(os.environ)
    env["HOME"] = str(tmp_path / "home")
    env["DMS_GENERAL_USER_DIR"] = str(tmp_path / "user")
    env["DMS_GENERAL_WORK_DIR"] = str(tmp_path / "work")
    env["NUNET_VM_GUEST_DIR"] = str(guest_dir)
    nunet = str(Path(sys.executable).parent / "nunet")
    done = subprocess.run(
        [nunet, "executor", "run", str(REPO / "examples" / "hello-vm.yaml")],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("hello from a VM on nunet\n1 vCPU, ")
    assert "allocation 'hello' (vm) exited with code 0" in done.stderr
    assert qemu_pids(tmp_path / "work") == []
