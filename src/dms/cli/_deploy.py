"""``nunet deploy``, ``nunet get deployments|allocations`` and ``nunet deployment ...``.

The commands a Go DMS user types. Each one talks to the local DMS as the other actor commands do
(a message signed with the chosen capability context, relayed by the REST API) and prints what
came back: ``deploy`` validates the ensemble here first (every problem with its line), sends it,
then follows the deployment's events until it runs, completes or fails, printing one line per
event (bids received, placement, commit, allocations started) and, for tasks, their output.
Exit status: 0 when the deployment runs or completed, 1 when it failed or was refused.
``deployment events`` prints a deployment's events (``--follow``: until it ends, exiting as
``deploy`` does for an ended deployment).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dms import gojson
from dms.cli._actor import _rest
from dms.cli._common import passphrase_reader, user_dir
from dms.cli._persistent import CONTEXT_JSON_FLAGS, persistent_group
from dms.cli._replies import ReplyRefused
from dms.cli._validate import check_ensemble

if TYPE_CHECKING:
    from dms.client import RestClient
    from dms.ucan import CapabilityContext

# ``-c``/``--context`` and ``--json`` may come before the sub-command, as in Go.
deploy_app = typer.Typer(
    cls=persistent_group(CONTEXT_JSON_FLAGS),
    no_args_is_help=True,
    help="Inspect and control deployments.",
)
get_app = typer.Typer(
    cls=persistent_group(CONTEXT_JSON_FLAGS),
    no_args_is_help=True,
    help="List deployments or allocations.",
)

ContextOpt = Annotated[
    str, typer.Option("--context", "-c", help="Capability context that signs (default: user).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
IdArg = Annotated[str, typer.Argument(help="Deployment (ensemble) ID, or an unambiguous prefix.")]

POLL_INTERVAL = 0.2
#: How often ``nunet deployment events --follow`` asks for new events.
EVENTS_POLL_INTERVAL = 0.5
CONTROL_TIMEOUT = 30.0
TERMINAL = ("Completed", "Failed")


#: The DMS understood the request and answered with an error (unknown or ambiguous ID,
#: deployment refused, ...): exit status 1, as for a failed deployment, not 2 (bad input).
DMSAnswered = ReplyRefused


class NodeSession:
    """Messages to the local DMS signed with one capability context, opened once.

    The DMS is asked for its handle first: when it is not running, that is the one line the
    user sees, before any passphrase prompt.
    """

    def __init__(self, context: str) -> None:
        from dms.contexts import open_context

        self.rest: RestClient = _rest()
        self.handle = self.rest.handle()
        self.capabilities: CapabilityContext = open_context(
            user_dir(), context, passphrase_reader(context)
        )

    def invoke(self, behavior: str, payload: Any, *, timeout: float = CONTROL_TIMEOUT) -> Any:
        from dms.client import build_message

        message = build_message(
            self.capabilities, self.handle, behavior, payload, invocation=True, timeout_s=timeout
        )
        return self.rest.invoke(message.envelope).decode_payload()


def _check(reply: Any, *keys: str) -> Any:
    """Raise the reply's error (``Error``/``error`` field) as a one-line failure."""
    if isinstance(reply, dict):
        for key in keys or ("Error", "error"):
            error = reply.get(key)
            if error:
                raise DMSAnswered(str(error))
    return reply


def _load(file: Path) -> Any:
    """The ensemble in ``file``, validated as ``nunet validate`` does, with local WASM modules
    inlined; an invalid one prints every problem (``FILE: path (line N): message``) on stderr
    and exits 1 before any DMS is contacted."""
    ensemble, problems = check_ensemble(file)
    if ensemble is None:
        for problem in problems:
            typer.echo(f"{file}: {problem}", err=True)
        raise typer.Exit(1)
    return ensemble


def _follow(session: NodeSession, eid: str, quiet: bool) -> dict[str, Any]:
    """Print the deployment's events as they happen; return the final status reply."""
    seen = 0
    start = time.monotonic()
    while True:
        reply = _check(session.invoke("/dms/node/deployment/status", {"ID": eid}))
        events = reply.get("Events") or []
        for event in events[seen:]:
            if not quiet:
                typer.echo(
                    f"[{time.monotonic() - start:6.2f}s] {event.get('message', '')}", err=True
                )
        seen = len(events)
        status = reply.get("Status", "")
        if status in TERMINAL:
            return dict(reply)
        if status == "Running" and not _tasks_pending(reply):
            return dict(reply)
        time.sleep(POLL_INTERVAL)


def _tasks_pending(reply: dict[str, Any]) -> bool:
    """Whether a running deployment still waits for tasks (the server says Completed later)."""
    return bool(reply.get("TasksPending"))


def _print_outputs(session: NodeSession, eid: str) -> None:
    reply = session.invoke("/dms/node/deployment/logs", {"EnsembleID": eid, "AllocationName": ""})
    if reply.get("Error"):
        return
    for name, output in sorted((reply.get("Allocations") or {}).items()):
        stdout = gojson.b64decode(output.get("Stdout")).decode(errors="replace")
        stderr = gojson.b64decode(output.get("Stderr")).decode(errors="replace")
        typer.echo(f"== {name}: stdout", err=True)
        typer.echo(stdout, nl=not stdout.endswith("\n") and bool(stdout))
        if stderr:
            typer.echo(f"== {name}: stderr", err=True)
            typer.echo(stderr, nl=not stderr.endswith("\n"))


def deploy(
    file: Annotated[Path, typer.Option("--file", "-f", help="The ensemble YAML.")],
    context: ContextOpt = "user",
    timeout: Annotated[
        str, typer.Option("--timeout", "-t", help="How long the DMS may try to deploy (e.g. 5m).")
    ] = "5m",
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Print the ensemble ID and return at once.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy an ensemble through the local DMS and follow it until it runs or ends."""
    from dms.cli._timeparse import parse_duration_ns

    ensemble = _load(file)
    lifetime = parse_duration_ns(timeout) / 1e9
    session = NodeSession(context)
    payload = gojson.Struct(Ensemble=gojson.Raw(ensemble.to_json()))
    reply = session.invoke("/dms/node/deployment/new", payload, timeout=lifetime)
    if reply.get("Status") != "OK":
        raise DMSAnswered(f"deployment refused: {reply.get('Error') or 'no reason given'}")
    eid = str(reply.get("EnsembleID"))
    if detach:
        typer.echo(eid)
        return
    if not quiet:
        typer.echo(f"deployment {eid}", err=True)
    final = _follow(session, eid, quiet)
    status = final.get("Status")
    if status == "Completed" and not as_json:
        _print_outputs(session, eid)
    if as_json:
        typer.echo(json.dumps(final, indent=2))
    if status == "Failed":
        typer.echo(f"deployment {eid[:12]} failed: {final.get('Reason', '')}", err=True)
        for line in final.get("Explanation") or []:
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1)
    if not quiet:
        typer.echo(f"deployment {eid[:12]} is {status}", err=True)


@get_app.command("deployments")
def get_deployments(context: ContextOpt = "user", as_json: JsonOpt = False) -> None:
    """The deployments this DMS orchestrates, with their status."""
    session = NodeSession(context)
    reply = _check(session.invoke("/dms/node/deployment/list", {"Metadata": {}}))
    deployments = reply.get("Deployments") or {}
    if as_json:
        typer.echo(json.dumps(deployments, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("ID", "STATUS")
    for eid, status in sorted(deployments.items()):
        table.add_row(eid, status)
    Console().print(table)


@get_app.command("allocations")
def get_allocations(context: ContextOpt = "user", as_json: JsonOpt = False) -> None:
    """The allocations this DMS runs for orchestrators, as a provider."""
    session = NodeSession(context)
    reply = _check(session.invoke("/dms/node/allocations/list", None))
    allocations = reply.get("Allocations") or []
    if as_json:
        typer.echo(json.dumps(allocations, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("ALLOCATION", "ENSEMBLE", "EXECUTOR", "STATUS")
    for alloc in allocations:
        table.add_row(
            str(alloc.get("id", "")),
            str(alloc.get("ensemble_id", ""))[:12],
            str(alloc.get("executor", "")),
            str(alloc.get("status", "")),
        )
    Console().print(table)


@deploy_app.command("status")
def status(eid: IdArg, context: ContextOpt = "user", as_json: JsonOpt = False) -> None:
    """A deployment's status; for one that could not be placed, why."""
    session = NodeSession(context)
    reply = session.invoke("/dms/node/deployment/status", {"ID": eid})
    if as_json:  # the whole reply on stdout, then the exit status says how it went
        typer.echo(json.dumps(reply, indent=2))
        _check(reply)
        if reply.get("Status") == "Failed":
            full = str(reply.get("EnsembleID") or eid)
            raise DMSAnswered(f"deployment {full[:12]} failed: {reply.get('Reason', '')}")
        return
    _check(reply)
    typer.echo(f"{reply.get('EnsembleID', eid)}: {reply.get('Status')}")
    if reply.get("Reason"):
        typer.echo(f"reason: {reply['Reason']}")
    for name, alloc in sorted((reply.get("Allocations") or {}).items()):
        typer.echo(allocation_line(name, alloc))
    explanation = reply.get("Explanation") or []
    if explanation and reply.get("Status") == "Failed":
        typer.echo("why it was not placed:")
        for line in explanation:
            typer.echo(f"  {line}")
    if reply.get("Status") == "Failed":
        raise typer.Exit(1)


def allocation_line(name: str, alloc: Any) -> str:
    """One allocation of a status reply on one line: its state, exit code, where it runs,
    restarts, health and error, each only when the reply has it (old records have only
    ``status`` and ``exit_code``)."""
    if not isinstance(alloc, dict):
        return f"  {name}: ?"
    line = f"  {name}: {alloc.get('status') or '?'}"
    if alloc.get("exit_code") is not None:
        line += f" (exit code {alloc['exit_code']})"
    node, peer = str(alloc.get("node") or ""), str(alloc.get("peer") or "")
    if node or peer:
        line += f" on {node or '?'}" + (f" ({peer[-8:]})" if peer else "")
    restarts = alloc.get("restarts")
    if isinstance(restarts, int) and not isinstance(restarts, bool) and restarts > 0:
        line += f", {restarts} restart" + ("s" if restarts != 1 else "")
    health = alloc.get("health")
    if isinstance(health, dict):
        line += ", " + _health_text(health)
    if alloc.get("error"):
        line += f", error: {alloc['error']}"
    return line


def _health_text(health: dict[str, Any]) -> str:
    """``healthy`` or ``unhealthy at 09:01:02 (3 failures): message`` (at: the last check)."""
    text = "healthy" if health.get("healthy") else "unhealthy"
    when = health.get("time")
    if isinstance(when, int) and not isinstance(when, bool) and when > 0:
        text += " at " + time.strftime("%H:%M:%S", time.localtime(when / 1e9))
    failures = health.get("failures")
    if isinstance(failures, int) and not isinstance(failures, bool) and failures > 0:
        text += f" ({failures} failure" + ("s" if failures != 1 else "") + ")"
    if health.get("message"):
        text += f": {health['message']}"
    return text


@deploy_app.command("events")
def events(
    eid: IdArg,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing events until the deployment ends."),
    ] = False,
    context: ContextOpt = "user",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event.")] = False,
) -> None:
    """What happened to a deployment: status changes, allocations, providers, progress.

    With ``--follow``, exits 0 when the deployment completes and 1 when it fails.
    """
    session = NodeSession(context)
    seen = 0
    while True:
        reply = _check(session.invoke("/dms/node/deployment/events", {"ID": eid, "After": seen}))
        for event in reply.get("Events") or []:
            typer.echo(json.dumps(event) if as_json else event_line(event))
        seen = max(seen, int(reply.get("Next") or 0))
        if not follow:
            return
        if reply.get("Ended"):
            break
        if not reply.get("Events"):
            time.sleep(EVENTS_POLL_INTERVAL)
    full, state = str(reply.get("EnsembleID") or eid), reply.get("Status")
    if state == "Failed":
        typer.echo(f"deployment {full[:12]} failed: {reply.get('Reason', '')}", err=True)
        raise typer.Exit(1)
    typer.echo(f"deployment {full[:12]} is {state}", err=True)


def event_line(event: Any) -> str:
    """``2026-12-03 09:01:02.123  allocation  hello1      allocation hello1 started`` (local
    time; the kind and subject padded so the messages line up)."""
    if not isinstance(event, dict):
        return str(event)
    ns = event.get("time")
    stamp = "????-??-?? ??:??:??.???"
    if isinstance(ns, int) and not isinstance(ns, bool) and ns > 0:
        seconds, rest = divmod(ns, 1_000_000_000)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
        stamp += f".{rest // 1_000_000:03d}"
    kind = str(event.get("kind") or "progress")
    subject = str(event.get("subject") or "-")
    return f"{stamp}  {kind:<10}  {subject:<10}  {event.get('message', '')}"


@deploy_app.command("manifest")
def manifest(eid: IdArg, context: ContextOpt = "user") -> None:
    """Where each node and allocation of a deployment runs (Go's manifest JSON)."""
    session = NodeSession(context)
    reply = _check(session.invoke("/dms/node/deployment/manifest", {"ID": eid}), "error")
    typer.echo(json.dumps(reply.get("manifest"), indent=2))


@deploy_app.command("logs")
def logs(
    eid: IdArg,
    allocation: Annotated[
        str, typer.Option("--allocation", "-a", help="Only this allocation.")
    ] = "",
    context: ContextOpt = "user",
) -> None:
    """Print the allocations' output (also written under the DMS's work dir)."""
    session = NodeSession(context)
    reply = _check(
        session.invoke(
            "/dms/node/deployment/logs", {"EnsembleID": eid, "AllocationName": allocation}
        )
    )
    for name, output in sorted((reply.get("Allocations") or {}).items()):
        typer.echo(f"== {name}", err=True)
        typer.echo(gojson.b64decode(output.get("Stdout")).decode(errors="replace"), nl=False)
        sys.stderr.write(gojson.b64decode(output.get("Stderr")).decode(errors="replace"))
    typer.echo(f"logs written to {reply.get('LogsWrittenTo')}", err=True)


@deploy_app.command("shutdown")
def shutdown(eid: IdArg, context: ContextOpt = "user") -> None:
    """Stop every allocation of a deployment and free what it held."""
    session = NodeSession(context)
    reply = _check(session.invoke("/dms/node/deployment/shutdown", {"ID": eid}, timeout=60.0))
    if not reply.get("OK"):
        raise DMSAnswered("shutdown did not finish")
    typer.echo(f"deployment {eid} shut down")


@deploy_app.command("prune")
def prune(
    eid: Annotated[
        str, typer.Argument(help="One ended deployment (default: all ended ones).")
    ] = "",
    context: ContextOpt = "user",
) -> None:
    """Forget ended deployments (Completed or Failed)."""
    session = NodeSession(context)
    reply = _check(session.invoke("/dms/node/deployment/prune", {"ID": eid}))
    typer.echo(f"pruned {reply.get('Pruned', 0)} deployments")
