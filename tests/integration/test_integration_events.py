"""``nunet deployment events`` end to end: real daemons on loopback (node0 orchestrates; node1 is
an onboarded provider with room for both nodes of ``examples/hello.yaml``), driven only through
the CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import Cli, log_of

from dms import devnet

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
#: ``2026-12-03 09:01:02.123  <kind>  <subject>  <message>``
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  (\S+) {2,}(\S+) {2,}(.*)$")


@pytest.fixture(scope="module")
def events_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    net = devnet.create(tmp_path_factory.mktemp("events") / "net", 2)
    devnet.start(net)
    try:
        devnet.onboard(net, [1])
        yield net
    finally:
        devnet.stop(net)


@pytest.fixture
def ecli(events_net: devnet.Devnet) -> Cli:
    return Cli(events_net)


def _deploy_detached(cli: Cli, path: Path) -> str:
    eid = cli.run("deploy", "-f", str(path), "-t", "2m", "-d").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", eid), eid
    return eid


def _statuses(lines: list[str]) -> list[str]:
    """The deployment status changes among human-readable event lines."""
    out = []
    for line in lines:
        found = LINE.match(line)
        assert found, line
        kind, _subject, message = found.groups()
        if kind == "deployment":
            out.append(message.split(":")[0])
    return out


def test_follow_prints_every_status_change_and_exits_0_on_completed(ecli: Cli) -> None:
    eid = _deploy_detached(ecli, EXAMPLES / "hello.yaml")
    followed = ecli.run("deployment", "events", eid[:12], "--follow")
    lines = followed.stdout.splitlines()
    assert _statuses(lines) == ["Committing", "Provisioning", "Running", "Completed"], lines
    assert followed.stderr.strip().splitlines()[-1] == f"deployment {eid[:12]} is Completed"
    started = {m.group(2) for m in map(LINE.match, lines) if m and m.group(1) == "allocation"}
    assert started == {"hello1", "hello2"}, lines
    # Afterwards: the same events without --follow, and as JSON (one object per line).
    listed = ecli.run("deployment", "events", eid)
    assert listed.stdout.splitlines() == lines
    as_json = [
        json.loads(x) for x in ecli.run("deployment", "events", eid, "--json").stdout.splitlines()
    ]
    assert len(as_json) == len(lines)
    assert [e["status"] for e in as_json if e["kind"] == "deployment"] == [
        "Committing",
        "Provisioning",
        "Running",
        "Completed",
    ]
    assert all(isinstance(e["time"], int) and e["message"] for e in as_json)
    # The DMS log has each event as one JSON line, with the deployment's ID.
    logged = [
        json.loads(line.split("dms.events: ", 1)[1])
        for line in log_of(ecli.net, 0).splitlines()
        if "dms.events: " in line and eid in line
    ]
    assert [{k: v for k, v in e.items() if k != "deployment_id"} for e in logged] == as_json
    assert {e["deployment_id"] for e in logged} == {eid}
    # The status shows one line per allocation.
    status = ecli.run("deployment", "status", eid).stdout.splitlines()
    assert status[0] == f"{eid}: Completed"
    for name in ("hello1", "hello2"):
        assert any(ln.startswith(f"  {name}: completed (exit code 0)") for ln in status), status


def test_follow_exits_1_on_a_failed_deployment(ecli: Cli, tmp_path: Path) -> None:
    # hello.yaml whose module exits with 3: its tasks fail on their providers.
    wat = (EXAMPLES / "hello.wat").read_text()
    failing = wat.replace("(call $proc_exit (i32.const 0))", "(call $proc_exit (i32.const 3))")
    assert failing != wat
    (tmp_path / "exit3.wat").write_text(failing)
    path = tmp_path / "exit3.yaml"
    path.write_text((EXAMPLES / "hello.yaml").read_text().replace("hello.wat", "exit3.wat"))
    eid = _deploy_detached(ecli, path)
    followed = ecli.run("deployment", "events", eid, "--follow", ok=False)
    assert followed.returncode == 1, followed
    assert _statuses(followed.stdout.splitlines())[-1] == "Failed"
    last = followed.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].startswith(f"deployment {eid[:12]} failed: allocation hello")


def test_unknown_deployment_is_one_line_and_exit_1(ecli: Cli) -> None:
    for extra in ((), ("--follow", "--json")):
        done = ecli.run("deployment", "events", "0123abc", *extra, ok=False)
        assert done.returncode == 1, done
        assert done.stderr == "error: no deployment 0123abc\n", done.stderr
        assert done.stdout == ""
