"""A one-allocation task deployment, from ``/dms/node/deployment/new`` to Completed.

Run from the repository root:

* ``.venv/bin/python bench/bench_deploy.py --mode single`` (about 1 min): a real devnet, node0
  orchestrating and 2 onboarded providers, all ``nunet run`` processes; a one-allocation task on
  the WASM executor (``examples/hello.wat``) and on Docker (``true`` in ``nunet-test/busybox``,
  built by ``scripts/docker.sh``), interleaved run by run with the baselines: a raw
  ``docker run --rm`` of the same image and command, and one user request to node0
  (``/public/hello`` through the REST relay, as every CLI command sends).
* ``.venv/bin/python bench/bench_deploy.py --mode scale`` (about 3.5 min): the same task on the
  ``null`` executor with 3, 10, 30 and 100 providers. node0 is a real ``nunet run`` daemon (the
  orchestrator is measured as it ships, in its own process); the providers share ONE helper
  process (``bench/_providers.py``: each has its own key, libp2p host, node actor, SQLite store,
  resource and allocation managers) and bootstrap from node0, as devnet providers do.

The bench process is the user: it signs with the devnet user's context and talks to node0's REST
API as ``nunet deploy`` does. Each deployment is timed two ways:

* **user**: from sending ``deployment/new`` to the status poll (every ``--poll`` s) that sees
  Completed — what a user waits, including the polling;
* **events**: from sending ``deployment/new`` to the timestamp of the orchestrator's own
  ``Completed`` event (the status reply's ``Events``; same machine, same clock): no polling
  granularity, so the figure the targets are checked on. The events also split the deployment
  into phases (accept, bidding, commit, allocate, start, finish).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _providers import ProviderSet
from bench_common import Helper, cpu_of, loadavg, quantile, read_stdin_line
from dms import devnet, gojson
from dms.actor import Envelope
from dms.client import RestClient, build_message
from dms.contexts import open_context
from dms.executor import BUILTIN_EXECUTORS
from dms.jobs import inline_local_modules, load_ensemble
from dms.resources import detect_machine
from dms.ucan import CapabilityContext

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
IMAGE = "nunet-test/busybox:latest"
RAW_DOCKER = ["docker", "run", "--rm", IMAGE, "true"]
DEPLOYMENT_NEW = "/dms/node/deployment/new"
DEPLOYMENT_STATUS = "/dms/node/deployment/status"
TERMINAL = ("Completed", "Failed")
#: Lifetime of the deployment request (the orchestrator deploys until this minus 15 s).
REQUEST_LIFETIME_S = 120.0
#: node0 greets new peers 10-20 s after they connect (``dms.node._hello``): wait it out.
HELLO_SETTLE_S = 21.0

DOCKER_TARGET_S = 0.5
WASM_TARGET_S = 0.3
SCALE_TARGET = 1.5

RESOURCES = "resources: {cpu: {cores: 0.5}, ram: {size: 64MiB}, disk: {size: 0.1}}"
EXECUTIONS = {
    "wasm": f"{{type: wasm, module: {EXAMPLES / 'hello.wat'}, fuel: 10000000}}",
    "docker": f'{{type: docker, image: "{IMAGE}", cmd: ["true"]}}',
    "null": '{type: "null", duration: 0}',
}

#: Phases of a deployment, between the orchestrator's events (see ``Orchestrator._event``):
#: (name, event that ends it). The first starts when the user sends ``deployment/new``.
PHASES = (
    ("accept", "asking "),  # REST relay, verify, parse, orchestrator actor, first persist
    ("bidding", "placement: "),
    ("commit", "committed "),
    ("allocate", "Provisioning"),
    ("start", "Running"),
    ("finish", "Completed"),  # task ends, termination report, stop, revert, persist
)


def ensemble_json(executor: str) -> bytes:
    """A one-allocation task ensemble for ``executor``, as ``nunet deploy`` sends it."""
    text = (
        'version: "V1"\n'
        "allocations:\n"
        f"  job: {{executor: {json.dumps(executor)}, type: task, {RESOURCES},\n"
        f"        execution: {EXECUTIONS[executor]}}}\n"
        "nodes:\n"
        "  n: {allocations: [job]}\n"
    )
    ensemble = load_ensemble(text, base_dir=EXAMPLES, known_executors=set(BUILTIN_EXECUTORS))
    return inline_local_modules(ensemble, EXAMPLES).to_json()


class User:
    """The devnet's user talking to node0's REST API as the CLI does: one message signed with
    the user's context per request, relayed by ``/api/v1/actor/invoke``.

    Unlike the CLI's :class:`~dms.client.RestClient` (a new ``httpx.Client`` per request, about
    35 ms of SSL-context set-up each time on this machine) it keeps one HTTP connection, so the
    figures are the DMS's, not the client library's start-up.
    """

    def __init__(self, net: devnet.Devnet) -> None:
        self.capabilities: CapabilityContext = open_context(
            net.user_dir, "user", lambda _confirm: devnet.DEVNET_PASSPHRASE
        )
        self.http = httpx.Client(base_url=net.nodes[0].rest_url, timeout=REQUEST_LIFETIME_S)
        self.handle = RestClient(net.nodes[0].rest_url).handle()

    def invoke(self, behavior: str, payload: Any, timeout: float = 30.0) -> Any:
        message = build_message(
            self.capabilities, self.handle, behavior, payload, invocation=True, timeout_s=timeout
        )
        response = self.http.post(
            "/api/v1/actor/invoke",
            content=message.envelope.to_json(),
            headers={"content-type": "application/json"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"invoke {behavior}: {response.status_code} {response.text[:200]}")
        return Envelope.from_json(response.content).decode_payload()

    def hello(self) -> float:
        """One ``/public/hello`` round trip (seconds): the cost of any one user request."""
        started = time.perf_counter()
        self.invoke("/public/hello", None)
        return time.perf_counter() - started


@dataclass
class Deployment:
    """One timed deployment."""

    user_s: float  # send -> the poll that saw Completed
    events_s: float  # send -> the orchestrator's Completed event
    polls: int
    phases: dict[str, float] = field(default_factory=dict)
    events: list[tuple[int, str]] = field(default_factory=list)


def deploy_once(user: User, payload: bytes, poll: float) -> Deployment:
    sent_ns = time.time_ns()
    started = time.perf_counter()
    reply = user.invoke(
        DEPLOYMENT_NEW, gojson.Struct(Ensemble=gojson.Raw(payload)), timeout=REQUEST_LIFETIME_S
    )
    if reply.get("Status") != "OK":
        raise RuntimeError(f"deployment refused: {reply.get('Error')}")
    eid = reply["EnsembleID"]
    polls = 0
    while True:
        status = user.invoke(DEPLOYMENT_STATUS, {"ID": eid})
        polls += 1
        if status.get("Status") in TERMINAL:
            break
        time.sleep(poll)
    user_s = time.perf_counter() - started
    events = [(int(e["time"]), str(e["message"])) for e in status.get("Events") or []]
    if status["Status"] != "Completed":
        lines = "\n  ".join(m for _, m in events)
        raise RuntimeError(
            f"deployment {eid[:12]} {status['Status']}: {status.get('Reason')}\n  {lines}"
        )
    return Deployment(
        user_s, (events[-1][0] - sent_ns) / 1e9, polls, phases(sent_ns, events), events
    )


def phases(sent_ns: int, events: Sequence[tuple[int, str]]) -> dict[str, float]:
    """Seconds spent in each of :data:`PHASES` (first event with that prefix ends a phase)."""
    out: dict[str, float] = {}
    last = sent_ns
    for name, prefix in PHASES:
        at = next((t for t, m in events if m.startswith(prefix)), None)
        if at is None:
            continue
        out[name] = (at - last) / 1e9
        last = at
    return out


@contextlib.contextmanager
def work_dir(keep: str | None) -> Iterator[Path]:
    """A temporary directory, or ``keep`` (created; left for reading the daemons' logs)."""
    if keep:
        Path(keep).mkdir(parents=True)
        yield Path(keep)
        return
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def running_devnet(
    count: int, providers: Sequence[int], keep: str | None
) -> Iterator[devnet.Devnet]:
    """A devnet of ``count`` daemons in a temporary directory, ``providers`` onboarded."""
    with work_dir(keep) as tmp:
        net = devnet.create(tmp / "net", count)
        devnet.start(net)
        try:
            devnet.onboard(net, providers)
            yield net
        finally:
            devnet.stop(net)


def ms(value: float) -> str:
    return f"{value * 1e3:,.0f}"


def p(values: Sequence[float], q: float) -> float:
    return quantile(list(values), q)


def phase_row(runs: Sequence[Deployment]) -> str:
    names = [n for n, _ in PHASES]
    return "  ".join(f"{n} {ms(p([r.phases.get(n, 0.0) for r in runs], 0.5))}" for n in names)


# -- (a) single --------------------------------------------------------------------------------


def docker_ready() -> str | None:
    """Why Docker cannot be measured here (None: it can)."""
    try:
        subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return f"no Docker engine or no image {IMAGE} (run scripts/docker.sh)"
    return None


def raw_docker() -> float:
    started = time.perf_counter()
    subprocess.run(RAW_DOCKER, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure_deploy(user: User, payload: bytes, poll: float, into: list[Deployment]) -> None:
    into.append(deploy_once(user, payload, poll))


def single(args: argparse.Namespace) -> None:
    executors = [e for e in args.executors.split(",") if e]
    if "docker" in executors and (why := docker_ready()) is not None:
        print(f"skipping docker: {why}")
        executors.remove("docker")
    payloads = {e: ensemble_json(e) for e in executors}
    load_before = loadavg()
    deploys: dict[str, list[Deployment]] = {e: [] for e in executors}
    raw: list[float] = []
    hellos: list[float] = []
    with running_devnet(1 + args.providers, range(1, 1 + args.providers), args.keep) as net:
        user = User(net)
        for executor in executors:  # warm-up: executors opened, WASM compiled, image cached
            deploy_once(user, payloads[executor], args.poll)
        if "docker" in executors:
            raw_docker()
        for index in range(args.runs):
            steps: list[Callable[[], object]] = [
                functools.partial(measure_deploy, user, payloads[e], args.poll, deploys[e])
                for e in executors
            ]
            if "docker" in executors:
                steps.append(lambda: raw.append(raw_docker()))
            steps.append(lambda: hellos.extend(user.hello() for _ in range(3)))
            if index % 2:
                steps.reverse()
            for step in steps:
                step()
    print(
        f"\nOne-allocation task, deployment/new -> Completed: node0 orchestrates, "
        f"{args.providers} onboarded providers\n(all `nunet run`); {args.runs} runs each, "
        f"interleaved; status polled every {args.poll * 1e3:g} ms; "
        f"loadavg {load_before} -> {loadavg()}\n"
    )
    header = f"{'variant':<44} {'p50 ms':>8} {'p90 ms':>8}"
    print(header + "\n" + "-" * len(header))
    print(
        f"{'baseline: one user request (/public/hello, REST)':<44} "
        f"{ms(p(hellos, 0.5)):>8} {ms(p(hellos, 0.9)):>8}"
    )
    if raw:
        print(
            f"{'baseline: docker run --rm ' + IMAGE + ' true':<44} "
            f"{ms(p(raw, 0.5)):>8} {ms(p(raw, 0.9)):>8}"
        )
    for executor in executors:
        runs = deploys[executor]
        for label, values in (
            ("events", [r.events_s for r in runs]),
            ("user", [r.user_s for r in runs]),
        ):
            name = f"{executor} deploy ({label})"
            print(f"{name:<44} {ms(p(values, 0.5)):>8} {ms(p(values, 0.9)):>8}")
    print()
    for executor in executors:
        runs = deploys[executor]
        polls = p([r.polls for r in runs], 0.5)
        print(f"{executor} phases, p50 ms: {phase_row(runs)}  (status polls p50: {polls:g})")
    print()
    if "wasm" in deploys:
        wasm = p([r.events_s for r in deploys["wasm"]], 0.5)
        verdict = "MET" if wasm < WASM_TARGET_S else "MISSED"
        print(f"WASM whole deploy p50 {ms(wasm)} ms (target < {ms(WASM_TARGET_S)} ms): {verdict}")
    if "docker" in deploys and raw:
        for label, values in (
            ("events", [r.events_s for r in deploys["docker"]]),
            ("user", [r.user_s for r in deploys["docker"]]),
        ):
            over = p(values, 0.5) - p(raw, 0.5)
            verdict = "MET" if over < DOCKER_TARGET_S else "MISSED"
            print(
                f"Docker overhead over docker run --rm ({label}): p50 {ms(over)} ms "
                f"(target < {ms(DOCKER_TARGET_S)} ms): {verdict}"
            )
    if args.events:
        for executor in executors:
            run = deploys[executor][len(deploys[executor]) // 2]
            first = run.events[0][0] if run.events else 0
            print(f"\n{executor}: events of one run (ms after the first event)")
            for at, message in run.events:
                print(f"  {(at - first) / 1e6:8.1f}  {message}")


# -- (b) scale ---------------------------------------------------------------------------------


async def serve_providers(count: int, user_dir: str, bootstrap: str, base: str) -> None:
    """The helper: ``count`` in-process providers dialling node0; prints ``READY``."""
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)  # overload chatter on stderr
    user = open_context(Path(user_dir), "user", lambda _confirm: devnet.DEVNET_PASSPHRASE)
    machine = detect_machine(Path(base), gpus=False)
    with ProviderSet(count, user, Path(base), [bootstrap], machine) as providers:
        async with trio.open_nursery() as nursery:
            await nursery.start(providers.run)
            print("READY", flush=True)
            await read_stdin_line()  # the bench closes stdin (or kills us) when done
            nursery.cancel_scope.cancel()


def wait_connected(user: User, count: int, timeout: float = 60.0) -> float:
    """Until node0 lists ``count`` peers; returns the seconds it took."""
    started = time.monotonic()
    while True:
        peers = user.invoke("/dms/node/peers/list", None).get("Peers") or []
        if len(peers) >= count:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"node0 sees {len(peers)} of {count} providers after {timeout:g}s")
        time.sleep(0.2)


@contextlib.contextmanager
def profiled(folder: str | None, pids: dict[str, int]) -> Iterator[None]:
    """Sample ``pids`` with py-spy (collapsed stacks in ``folder/<name>.txt``) while inside."""
    if not folder:
        yield
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    spies = [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                "200",
                "--nonblocking",
                "--output",
                str(Path(folder) / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        for process in spies:
            process.send_signal(signal.SIGINT)
        for process in spies:
            process.wait(30)


@dataclass
class ScaleResult:
    size: int
    runs: list[Deployment] = field(default_factory=list)
    cpu_node0: float = 0.0  # CPU seconds over all measured runs
    cpu_helper: float = 0.0
    asked: str = ""


class ScaleNet:
    """One size's network: a 1-node devnet (node0) and a helper process with the providers."""

    def __init__(self, size: int, base: Path, stack: contextlib.ExitStack) -> None:
        self.size = size
        self.net = devnet.create(base / "net", 1)
        devnet.start(self.net)
        stack.callback(devnet.stop, self.net)
        self.helper = stack.enter_context(
            Helper(
                [
                    __file__,
                    "--serve-providers",
                    str(size),
                    "--user-dir",
                    str(self.net.user_dir),
                    "--bootstrap",
                    self.net.nodes[0].address,
                    "--base",
                    str(base / "providers"),
                ]
            )
        )
        self.user: User | None = None
        self.connected_at = 0.0
        self.result = ScaleResult(size)

    def connect(self) -> None:
        self.helper.expect("READY", timeout=300)
        self.user = User(self.net)
        wait_connected(self.user, self.size)
        self.connected_at = time.monotonic()

    @property
    def pids(self) -> dict[str, int]:
        return {f"node0-{self.size}": self.net.nodes[0].pid, f"helper-{self.size}": self.helper.pid}

    def deploy(self, payload: bytes, poll: float, *, measure: bool) -> None:
        assert self.user is not None
        node0, helper = self.net.nodes[0].pid, self.helper.pid
        cpu0, cpuh = cpu_of(node0), cpu_of(helper)
        run = deploy_once(self.user, payload, poll)
        if measure:
            self.result.runs.append(run)
            self.result.cpu_node0 += cpu_of(node0) - cpu0
            self.result.cpu_helper += cpu_of(helper) - cpuh
            self.result.asked = next((m for _, m in run.events if m.startswith("asking")), "")


def scale(args: argparse.Namespace) -> None:
    """One size at a time: its own node0 and helper, started, warmed up, measured, stopped
    (all sizes up at once made the 2-core machine too busy to answer pings and hellos)."""
    payload = ensemble_json("null")
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = loadavg()
    results = []
    with work_dir(args.keep) as tmp:
        for size in sizes:
            started = time.monotonic()
            with contextlib.ExitStack() as stack:
                net = ScaleNet(size, tmp / f"n{size}", stack)
                net.connect()
                for _ in range(args.warmup):
                    net.deploy(payload, args.poll, measure=False)
                time.sleep(max(0.0, net.connected_at + HELLO_SETTLE_S - time.monotonic()))
                with profiled(args.profile, net.pids):
                    for _ in range(args.runs):
                        net.deploy(payload, args.poll, measure=True)
                results.append(net.result)
            print(f"  N={size}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(
        f"\nOne-allocation null task, deployment/new -> Completed, N providers: node0 = `nunet run`"
        f" (orchestrator),\nN in-process providers in ONE helper process; {args.runs} runs"
        f" per N after {args.warmup} warm-up; polled every"
        f" {args.poll * 1e3:g} ms; loadavg {load_before} -> {loadavg()}\n"
    )
    header = (
        f"{'N':>4} {'events p50':>10} {'p90':>6} {'user p50':>9} {'p90':>6} {'vs N=3':>7}"
        f" {'CPU ms/deploy: node0':>21} {'helper':>7}"
    )
    print(header + "\n" + "-" * len(header))
    base = p([r.events_s for r in results[0].runs], 0.5)
    for r in results:
        ev = [d.events_s for d in r.runs]
        us = [d.user_s for d in r.runs]
        print(
            f"{r.size:>4} {ms(p(ev, 0.5)):>10} {ms(p(ev, 0.9)):>6} {ms(p(us, 0.5)):>9}"
            f" {ms(p(us, 0.9)):>6} {p(ev, 0.5) / base:>6.2f}x"
            f" {ms(r.cpu_node0 / len(r.runs)):>21} {ms(r.cpu_helper / len(r.runs)):>7}"
        )
    print()
    for r in results:
        print(f"{r.size:>4}: {phase_row(r.runs)}  ({r.asked})")
    last = results[-1]
    ratio = p([d.events_s for d in last.runs], 0.5) / base
    verdict = "MET" if ratio <= SCALE_TARGET else "MISSED"
    print(
        f"\n{last.size} providers vs {results[0].size}: {ratio:.2f}x "
        f"(target <= {SCALE_TARGET:g}x): {verdict}"
    )
    if args.events:
        for r in results:
            run = r.runs[len(r.runs) // 2]
            first = run.events[0][0]
            print(f"\nN={r.size}: events of one run (ms after the first event)")
            for at, message in run.events:
                print(f"  {(at - first) / 1e6:8.1f}  {message}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("single", "scale"), default="single")
    parser.add_argument("--runs", type=int, default=0, help="default: single 10, scale 7")
    parser.add_argument("--warmup", type=int, default=2, help="scale: unmeasured deployments")
    parser.add_argument(
        "--poll", type=float, default=0.0, help="status poll interval (s; single 0.02, scale 0.05)"
    )
    parser.add_argument("--providers", type=int, default=2, help="single: provider daemons")
    parser.add_argument("--executors", default="wasm,docker", help="single: executors")
    parser.add_argument("--sizes", default="3,10,30,100", help="scale: provider counts")
    parser.add_argument("--events", action="store_true", help="print one run's events")
    parser.add_argument("--profile", help="scale: py-spy node0 and the helper into this folder")
    parser.add_argument("--keep", help="work in this new folder and keep it (daemon logs)")
    parser.add_argument("--serve-providers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--user-dir", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_providers:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(
                serve_providers, args.serve_providers, args.user_dir, args.bootstrap, args.base
            )
        return
    if args.mode == "single":
        args.runs = args.runs or 10
        args.poll = args.poll or 0.02
        single(args)
    else:
        args.runs = args.runs or 7
        args.poll = args.poll or 0.05
        scale(args)


if __name__ == "__main__":
    main()
