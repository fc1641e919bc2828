"""Start-to-exit time of a trivial container through ``DockerExecutor.run``, next to ``docker run``.

Run: ``.venv/bin/python bench/bench_executor_docker.py [--runs N]`` as a user who can reach the
Docker engine, after ``scripts/docker.sh`` (it builds the image ``nunet-test/busybox:latest``).
About 30 s for the default 30 runs.

* ``DockerExecutor.run`` — ``true`` in the test image: inspect image, create, start, completion
  from the engine's ``die`` event, inspect, read logs, result. The container is removed after
  each run, outside the timing (``run + remove`` shows it included).
* baseline: ``docker run --rm nunet-test/busybox true`` as a subprocess (create, attach, start,
  wait, remove; plus the CLI's own start-up).

The two alternate run by run (the order flips every run), so a load spike hits both. Then 8 at
once: the wall time of 8 concurrent ``run`` calls against 8 concurrent ``docker run`` processes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import loadavg, quantile
from dms.executor import ExecutionRequest, ExecutorSettings, SpecConfig
from dms.executor._docker import DockerExecutor

IMAGE = "nunet-test/busybox:latest"
RAW = ["docker", "run", "--rm", IMAGE, "true"]
BATCH = 8


def request() -> ExecutionRequest:
    return ExecutionRequest(
        job_id="bench",
        execution_id=uuid.uuid4().hex[:12],
        spec=SpecConfig("docker", {"image": IMAGE, "cmd": ["true"]}),
    )


async def raw_run() -> float:
    started = time.perf_counter()
    await trio.run_process(RAW, stdout=None, stderr=None)
    return time.perf_counter() - started


async def executor_run(ex: DockerExecutor) -> tuple[float, float]:
    """(start-to-exit, start-to-exit + remove) in seconds."""
    req = request()
    started = time.perf_counter()
    result = await ex.run(req)
    ran = time.perf_counter() - started
    if result.exit_code != 0:
        raise RuntimeError(f"container failed: {result}")
    await ex.remove(req.execution_id)
    return ran, time.perf_counter() - started


async def batch(fn: object, n: int) -> float:
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(fn)  # type: ignore[arg-type]
    return time.perf_counter() - started


def row(label: str, values: list[float], base: float | None = None) -> str:
    p50, p90 = quantile(values, 0.5), quantile(values, 0.9)
    ratio = f"{p50 / base:5.2f}x" if base else "      "
    return f"{label:<34} {p50 * 1000:8.1f} {p90 * 1000:8.1f}   {ratio}"


async def main(runs: int) -> None:
    probe = DockerExecutor.probe()
    if probe is not None:
        raise SystemExit(probe)
    with tempfile.TemporaryDirectory() as work:
        settings = ExecutorSettings(executor_id=f"bench-{os.getpid()}", work_dir=Path(work))
        ex = DockerExecutor(settings)
        async with ex.open():
            try:
                for _ in range(3):  # warm up both paths (page cache, engine, CLI)
                    await raw_run()
                    await executor_run(ex)
                raw: list[float] = []
                ours: list[float] = []
                ours_rm: list[float] = []
                for i in range(runs):
                    if i % 2:
                        raw.append(await raw_run())
                        ran, removed = await executor_run(ex)
                    else:
                        ran, removed = await executor_run(ex)
                        raw.append(await raw_run())
                    ours.append(ran)
                    ours_rm.append(removed)

                async def one() -> None:
                    await executor_run(ex)

                raw_batches: list[float] = []
                our_batches: list[float] = []
                for _ in range(3):
                    raw_batches.append(await batch(raw_run, BATCH))
                    our_batches.append(await batch(one, BATCH))
            finally:
                await ex.cleanup()

    base = quantile(raw, 0.5)
    print(f"docker executor vs docker run, {runs} runs each, interleaved; loadavg {loadavg()}")
    print(f"{'':<34} {'p50 ms':>8} {'p90 ms':>8}   vs raw p50")
    print(row("docker run --rm (CLI subprocess)", raw))
    print(row("DockerExecutor.run", ours, base))
    print(row("DockerExecutor.run + remove", ours_rm, base))
    batch_base = quantile(raw_batches, 0.5)
    print(f"\n{BATCH} at once, 3 batches each (wall time of a batch)")
    print(row(f"{BATCH} x docker run --rm", raw_batches))
    print(row(f"{BATCH} x DockerExecutor.run + remove", our_batches, batch_base))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=30)
    trio.run(main, parser.parse_args().runs)
