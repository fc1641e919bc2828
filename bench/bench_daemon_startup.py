"""Start-up time and idle memory of ``nunet run``, two daemons connected.

Run: ``.venv/bin/python bench/bench_daemon_startup.py`` (about 90 s; ``--runs``, ``--idle``).
Creates a 2-node devnet (``dms.devnet.create``: keys, contexts, configs; log level WARNING) and,
``--runs`` times: spawns node0's ``nunet run`` and times process spawn -> ``GET /health`` = 200
(polled every 10 ms), then node1's (which bootstraps from node0), checks with an invocation of
``/dms/node/peers/list`` on node0 that node1 is connected, lets both idle ``--idle`` seconds
(default 10) and reads ``VmRSS`` from /proc/<pid>/status; then stops both (SIGTERM).
The spawn-to-health time includes the Python interpreter start and all imports; the daemon's
own "DMS ready in" log figure (wiring only, after imports) is shown next to it.
Baseline in the same run: spawn -> exit of ``python -c pass`` and of
``python -c 'import dms.daemon'``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import PYTHON, loadavg, quantile, rss_mib
from dms import devnet
from dms.client import RestClient, build_message
from dms.did import KeyProvider, keystore_for
from dms.ucan import load_context

STARTUP_TARGET_S = 2.0
RSS_TARGET_MIB = 120.0
READY = re.compile(r"DMS ready in ([0-9.]+)s")


def spawn(node: devnet.DevnetNode) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``nunet run`` for ``node``; returns the process and spawn -> /health seconds."""
    env = {**os.environ, "DMS_PASSPHRASE": devnet.DEVNET_PASSPHRASE}
    for key in [k for k in env if k.startswith("DMS_") and k != "DMS_PASSPHRASE"]:
        del env[key]
    node.log_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with node.log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(Path(PYTHON).parent / "nunet"), "--config", str(node.config_path), "run"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    node.pid = process.pid
    with httpx.Client(timeout=1.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{node.name} exited: {node.log_path.read_text()[-500:]}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{node.rest_url}/health").status_code == 200:
                    return process, time.perf_counter() - t0
            if time.perf_counter() - t0 > 60:
                raise RuntimeError(f"{node.name} did not answer /health within 60 s")
            time.sleep(0.01)


def ready_in(node: devnet.DevnetNode) -> float:
    match = READY.search(node.log_path.read_text(errors="replace"))
    return float(match.group(1)) if match else float("nan")


def connected(net: devnet.Devnet) -> bool:
    """Does node0 list node1 among its peers (asked as the user, over REST + actor)?"""
    key = keystore_for(net.user_dir).load("user", devnet.DEVNET_PASSPHRASE)
    user = load_context(net.user_dir, "user", KeyProvider(key))
    rest = RestClient(net.nodes[0].rest_url)
    message = build_message(
        user, rest.handle(), "/dms/node/peers/list", None, invocation=True, timeout_s=10
    )
    reply = rest.invoke(message.envelope)  # type: ignore[arg-type]
    return net.nodes[1].peer_id in reply.message.decode()


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    for p in processes:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def python_baseline(code: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([PYTHON, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    processes: list[subprocess.Popen[bytes]] = []
    rows = []
    try:
        load_before = loadavg()
        bare = python_baseline("pass")
        imports = python_baseline("import dms.daemon")
        net = devnet.create(base / "net", 2, log_level="WARNING")
        for node in net.nodes:  # the daemons' own "ready in" line is logged at INFO
            cfg = node.config_path.read_text().replace('"WARNING"', '"INFO"')
            node.config_path.write_text(cfg)
        for run in range(args.runs):
            processes = []
            p0, t0 = spawn(net.nodes[0])
            processes.append(p0)
            p1, t1 = spawn(net.nodes[1])
            processes.append(p1)
            time.sleep(args.idle)
            ok = connected(net)
            rows.append(
                (
                    run + 1,
                    t0,
                    ready_in(net.nodes[0]),
                    t1,
                    ready_in(net.nodes[1]),
                    rss_mib(p0.pid),
                    rss_mib(p1.pid),
                    ok,
                )
            )
            stop(processes)
            processes = []
    finally:
        stop(processes)
        shutil.rmtree(base, ignore_errors=True)

    print(
        f"\nnunet run start-up (spawn -> /health 200) and idle RSS after {args.idle:g} s,"
        f" 2 daemons connected; loadavg {load_before} -> {loadavg()}"
    )
    print(
        f"baseline: python -c pass {bare * 1e3:.0f} ms, python -c 'import dms.daemon'"
        f" {imports * 1e3:.0f} ms (best of 3)\n"
    )
    header = (
        f"{'run':>3} {'node0 start s':>13} {'(ready in)':>10} {'node1 start s':>13}"
        f" {'(ready in)':>10} {'node0 RSS MiB':>13} {'node1 RSS MiB':>13} {'connected':>9}"
    )
    print(header)
    print("-" * len(header))
    for run, t0, r0, t1, r1, m0, m1, ok in rows:
        print(
            f"{run:>3} {t0:>13.2f} {r0:>10.2f} {t1:>13.2f} {r1:>10.2f} {m0:>13.0f} {m1:>13.0f}"
            f" {'yes' if ok else 'NO':>9}"
        )
    starts = [r[1] for r in rows] + [r[3] for r in rows]
    rss = [r[5] for r in rows] + [r[6] for r in rows]
    p50_start = quantile(starts, 0.5)
    print(
        f"\nstart-up p50 {p50_start:.2f} s, max {max(starts):.2f} s"
        f" (target < {STARTUP_TARGET_S:g} s:"
        f" {'MET' if max(starts) < STARTUP_TARGET_S else 'MISSED'})"
    )
    print(
        f"idle RSS p50 {quantile(rss, 0.5):.0f} MiB, max {max(rss):.0f} MiB"
        f" (target < {RSS_TARGET_MIB:g} MiB: {'MET' if max(rss) < RSS_TARGET_MIB else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
