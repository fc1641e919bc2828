"""Start-to-exit of a hello task in a VM (``VmExecutor.run``), next to QEMU run by hand with the
same kernel and initramfs, and ``docker run --rm`` of the same workload, in the same run.

Run: ``.venv/bin/python bench/bench_vm.py [--runs N]`` after ``scripts/setup.sh`` (the guest from
``scripts/vm-guest.sh``; Docker and ``nunet-test/busybox:latest`` from ``scripts/docker.sh``, the
docker row is left out without them). About 10 s per run under TCG (three contenders).

* ``VmExecutor.run``: ``echo hello`` in a 1-vCPU, 128 MiB microvm: write the execution
  directory and initrd (workload archive + the guest's initramfs), start QEMU paused, QMP
  handshake, ``cont``, boot, run, exit report over virtio-serial, power-off, result. Removal
  (directory delete) is outside the timing; ``run + remove`` includes it.
* QEMU by hand: the same QEMU command line minus the monitor (no QMP, no ``-S``/``cont``), the
  initrd written once beforehand, ``qemu-system-x86_64`` run as a subprocess until it exits.
* ``docker run --rm nunet-test/busybox:latest sh -c 'echo hello'`` as a subprocess.

Contenders alternate run by run (the order rotates), so a load spike hits all of them. The
accelerator is the one the executor's probe picked (KVM when a probe boot works, else TCG).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import loadavg, quantile
from dms.executor import ExecutionRequest, ExecutorSettings, SpecConfig
from dms.executor._vm import VmExecutor
from dms.executor._vm_guest import Guest, default_guest_dir, workload_archive, write_initrd
from dms.executor._vm_qemu import VmConfig, VmFiles, qemu_argv, qemu_binary
from dms.resources import CPU, RAM, Resources

IMAGE = "nunet-test/busybox:latest"
COMMAND = "echo hello"
DOCKER = ["docker", "run", "--rm", IMAGE, "sh", "-c", COMMAND]
MiB = 1024 * 1024


def request() -> ExecutionRequest:
    return ExecutionRequest(
        job_id="bench",
        execution_id=uuid.uuid4().hex[:12],
        spec=SpecConfig("vm", {"command": COMMAND}),
        resources=Resources(cpu=CPU(cores=1), ram=RAM(size=128 * MiB)),
    )


async def executor_run(ex: VmExecutor) -> tuple[float, float]:
    """(start-to-exit, start-to-exit + remove) in seconds."""
    req = request()
    started = time.perf_counter()
    result = await ex.run(req)
    ran = time.perf_counter() - started
    if result.exit_code != 0 or result.stdout.strip() != "hello":
        raise RuntimeError(f"VM failed: {result}")
    await ex.remove(req.execution_id)
    return ran, time.perf_counter() - started


def by_hand_argv(accel: str, guest: Guest, directory: Path) -> tuple[list[str], VmFiles]:
    files = VmFiles(directory)
    write_initrd(guest.initrd, workload_archive([COMMAND]), files.initrd)
    config = VmConfig(accel, 1, 128, guest.kernel, files.initrd)
    return qemu_argv(qemu_binary() or "qemu-system-x86_64", config, files, None), files


async def by_hand_run(argv: list[str], files: VmFiles) -> float:
    for path in (files.console, files.exit):
        path.write_bytes(b"")
    started = time.perf_counter()
    await trio.run_process(argv, stdin=subprocess.DEVNULL, stdout=None, stderr=None)
    took = time.perf_counter() - started
    if files.console.read_text().strip() != "hello":
        raise RuntimeError(f"QEMU by hand: unexpected console {files.console.read_text()!r}")
    return took


async def docker_run() -> float:
    started = time.perf_counter()
    await trio.run_process(DOCKER, stdout=subprocess.DEVNULL, stderr=None)
    return time.perf_counter() - started


def docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(
        ["docker", "image", "inspect", IMAGE], check=False, capture_output=True, timeout=30
    )
    return done.returncode == 0


def row(label: str, values: list[float], base: float | None = None) -> str:
    p50, p90 = quantile(values, 0.5), quantile(values, 0.9)
    ratio = f"{p50 / base:5.2f}x" if base else "      "
    return f"{label:<40} {p50 * 1000:8.0f} {p90 * 1000:8.0f}   {ratio}"


async def main(runs: int) -> None:
    guest_dir = default_guest_dir()
    reason = VmExecutor.probe()
    if reason is not None:
        raise SystemExit(reason)
    with_docker = docker_ready()
    with tempfile.TemporaryDirectory() as work:
        settings = ExecutorSettings(
            executor_id=f"bench-{os.getpid()}",
            work_dir=Path(work) / "work",
            extra={"vm_guest_dir": str(guest_dir)},
        )
        ex = VmExecutor(settings)
        async with ex.open():
            accel = ex.accel
            hand_dir = Path(work) / "by-hand"
            hand_dir.mkdir()
            argv, files = by_hand_argv(accel, Guest.default(guest_dir), hand_dir)
            ours: list[float] = []
            ours_rm: list[float] = []
            hand: list[float] = []
            dock: list[float] = []

            async def ours_once() -> None:
                ran, removed = await executor_run(ex)
                ours.append(ran)
                ours_rm.append(removed)

            async def hand_once() -> None:
                hand.append(await by_hand_run(argv, files))

            async def docker_once() -> None:
                dock.append(await docker_run())

            contenders: list[Callable[[], Awaitable[None]]] = [ours_once, hand_once]
            if with_docker:
                contenders.append(docker_once)
            try:
                await executor_run(ex)  # warm up (page cache, probe)
                await by_hand_run(argv, files)
                if with_docker:
                    await docker_run()
                for i in range(runs):
                    shift = i % len(contenders)
                    for run in contenders[shift:] + contenders[:shift]:
                        await run()
            finally:
                await ex.cleanup()

    found = VmExecutor.availability_note()
    print(f"hello task ({COMMAND!r}), {runs} runs each, interleaved; loadavg {loadavg()}")
    print(f"accelerator: {accel} ({found})")
    base = quantile(hand, 0.5)
    print(f"{'':<40} {'p50 ms':>8} {'p90 ms':>8}   vs QEMU by hand p50")
    print(row("QEMU by hand (same kernel + initramfs)", hand))
    print(row("VmExecutor.run", ours, base))
    print(row("VmExecutor.run + remove", ours_rm, base))
    print(
        f"executor overhead over QEMU by hand (p50): {(quantile(ours, 0.5) - base) * 1000:.0f} ms"
    )
    if with_docker:
        dbase = quantile(dock, 0.5)
        print(row("docker run --rm (CLI subprocess)", dock))
        print(f"VmExecutor.run / docker run --rm (p50): {quantile(ours, 0.5) / dbase:.2f}x")
    else:
        print("docker run --rm: skipped (no docker CLI or no image nunet-test/busybox:latest)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=8)
    trio.run(main, parser.parse_args().runs)
