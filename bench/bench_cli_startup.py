"""Start-up cost of the ``nunet`` CLI: whole processes, against the CLI framework's own floor.

Run: ``.venv/bin/python bench/bench_cli_startup.py`` (about a minute; ``--runs N``, default 15).
Each round runs every command once, in a shuffled order (so load on a shared machine spreads
over all of them), and the table reports each command's median wall time over the rounds and
its ratio to the median of ``python -c "import typer"`` from the same rounds (the framework
floor: a typer CLI cannot start faster). ``python -c pass`` is shown as the interpreter floor.

Commands and targets (issue 13):
* ``nunet version``, ``nunet --help``: <= 1.5x the floor (nothing of the DMS is loaded);
* ``nunet key did user``: <= 3x; ``nunet actor cmd /public/status``: <= 5x, against a real
  ``nunet run`` daemon (a 1-node devnet made here).

Both of the latter decrypt the user's key. Go's keystore format (which ours reads and writes)
stores it under scrypt with N = 2^18, r = 8: about 0.5-1 s of CPU and 256 MiB by design, paid
by the Go CLI as well. So the two are timed twice: with the key as ``nunet key new`` stores it
(N = 2^18), and with the same key re-encrypted at N = 2^12 in a copy of the user dir (same DID,
same capability context; the key file carries its own N): the second figure is the CLI's own
start-up cost, which is what the targets are about. ``scrypt N=2^18`` alone (``hashlib``, in a
fresh process) is shown in the same rounds, so the difference is visible.
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dms
from bench_common import PYTHON, loadavg
from dms import devnet
from dms.did import keystore_for

NUNET = str(Path(PYTHON).parent / "nunet")
FAST_SCRYPT_N = 2**12
SCRYPT_CODE = (
    "import hashlib; hashlib.scrypt(b'p', salt=b's' * 32, n=2**18, r=8, p=1, "
    "maxmem=2**29, dklen=64)"
)


def fast_user_dir(net: devnet.Devnet, target: Path) -> Path:
    """A copy of the devnet's user dir whose ``user`` key is encrypted at N = 2^12."""
    shutil.copytree(net.user_dir, target)
    key = keystore_for(net.user_dir).load("user", devnet.DEVNET_PASSPHRASE)
    keystore_for(target, scrypt_n=FAST_SCRYPT_N).save("user", key, devnet.DEVNET_PASSPHRASE)
    return target


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, stdin=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # Up-to-date .pyc files for the DMS's own modules: under PYTHONDONTWRITEBYTECODE (set in some
    # shells and CI images) the warm-up round would not write them, and every run of a module
    # edited since the last write would compile it again.
    compileall.compile_dir(Path(dms.__file__).parent, quiet=1)

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        net = devnet.create(Path(tmp) / "net", 1, log_level="WARNING")
        devnet.start(net)
        try:
            env = net.cli_env(0)
            fast = {**env, "DMS_GENERAL_USER_DIR": str(fast_user_dir(net, Path(tmp) / "fast"))}
            status = [NUNET, "actor", "cmd", "/public/status", "--json"]
            cases: dict[str, tuple[list[str], dict[str, str]]] = {
                "python -c pass": ([PYTHON, "-c", "pass"], env),
                "python -c 'import typer' (floor)": ([PYTHON, "-c", "import typer"], env),
                "nunet version": ([NUNET, "version"], env),
                "nunet --help": ([NUNET, "--help"], env),
                "nunet key did user (N=2^12)": ([NUNET, "key", "did", "user"], fast),
                "nunet actor cmd /public/status (N=2^12)": (status, fast),
                "nunet key did user (N=2^18)": ([NUNET, "key", "did", "user"], env),
                "nunet actor cmd /public/status (N=2^18)": (status, env),
                "scrypt N=2^18 alone": ([PYTHON, "-c", SCRYPT_CODE], env),
            }
            for argv, case_env in cases.values():  # warm the page cache and .pyc files
                timed(argv, case_env)
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.runs):
                order = list(cases)
                random.shuffle(order)
                for name in order:
                    times[name].append(timed(*cases[name]))
        finally:
            devnet.stop(net)

    medians = {name: statistics.median(values) for name, values in times.items()}
    floor = medians["python -c 'import typer' (floor)"]
    targets = {
        "nunet version": 1.5,
        "nunet --help": 1.5,
        "nunet key did user (N=2^12)": 3.0,
        "nunet actor cmd /public/status (N=2^12)": 5.0,
    }
    print(f"{args.runs} interleaved rounds; loadavg {loadavg()}; python {sys.version.split()[0]}")
    print(f"{'command':<42} {'median s':>9} {'min s':>7} {'x floor':>8}  target")
    for name, median in medians.items():
        target = targets.get(name)
        verdict = ""
        if target is not None:
            verdict = f"<= {target:g}x " + ("ok" if median <= target * floor else "MISSED")
        print(f"{name:<42} {median:9.3f} {min(times[name]):7.3f} {median / floor:7.2f}x  {verdict}")
    print(f"(nunet ... environment: {os.path.basename(NUNET)} from {Path(NUNET).parent})")


if __name__ == "__main__":
    main()
