"""Onboarding on real daemons, through `nunet actor cmd` as a user types it.

The first test shares the session devnet; the rest run one daemon of their own, which they
restart, whose store they write to (as a crash, a hand edit or a commit would) and whose
location is configured.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import Cli, log_of

from dms import devnet
from dms.db import (
    DEFAULT_FILE_NAME,
    Database,
    OnboardingConfig,
    OnboardingRepo,
    PortRepo,
    ResourceRepo,
)
from dms.resources import CPU, RAM, Disk, Location, ResourceManager, Resources

GIB = 1024**3


def _cmd(cli: Cli, *args: str, node: int = 0, refused: bool = False) -> Any:
    """The reply of ``nunet actor cmd ARGS --json``; ``refused``: the reply reports a failure,
    so the command exits 1 with the error as one line on stderr (and the reply on stdout)."""
    result = cli.run("actor", "cmd", *args, "--json", node=node, ok=not refused)
    if refused:
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and lines[-1].startswith("error: "), result
    return json.loads(result.stdout)


def _onboard(cli: Cli, cpu: str, ram: str, node: int = 0, refused: bool = False) -> Any:
    return _cmd(
        cli,
        "/dms/node/onboarding/onboard",
        "--cpu",
        cpu,
        "--ram",
        ram,
        "--disk",
        "1",
        "--no-gpu",
        node=node,
        refused=refused,
    )


def test_onboard_status_refuse_offboard_reonboard(cli: Cli) -> None:
    node = 2  # the other integration tests use nodes 0 and 1
    machine = _cmd(cli, "/dms/node/hardware/spec", node=node)["Resources"]
    ram_mib = machine["ram"]["size"] * 15 // 100 // 2**20
    assert _cmd(cli, "/dms/node/onboarding/status", node=node)["onboarded"] is False

    first = _onboard(cli, "1", f"{ram_mib}MiB", node)
    assert first["success"] is True and first["error"] == "", first
    offered = first["config"]["onboarded_resources"]
    assert offered["cpu"]["cores"] == 1 and offered["ram"]["size"] == ram_mib * 2**20
    assert offered["disk"]["size"] == GIB
    assert _cmd(cli, "/dms/node/onboarding/status", node=node) == {
        "onboarded": True,
        "error": "",
    }
    assert _cmd(cli, "/dms/node/resources/onboarded", node=node)["Resources"] == offered
    assert _cmd(cli, "/dms/node/resources/free", node=node)["Resources"] == offered

    no_cores = _onboard(cli, "0", f"{ram_mib}MiB", node, refused=True)
    assert no_cores["success"] is False and "minimum is 1" in no_cores["error"]
    too_much = _onboard(
        cli, "1", f"{machine['ram']['size'] * 95 // 100 // 2**20}MiB", node, refused=True
    )
    assert too_much["success"] is False
    assert "above the maximum" in too_much["error"] and "90 %" in too_much["error"]
    assert _cmd(cli, "/dms/node/resources/onboarded", node=node)["Resources"] == offered

    bad_size = cli.run(
        "actor", "cmd", "/dms/node/onboarding/onboard", "--cpu", "1", "--ram", "lots",
        "--disk", "1", node=node, ok=False,
    )  # fmt: skip
    assert bad_size.returncode != 0 and "invalid size" in bad_size.stderr

    assert _cmd(cli, "/dms/node/onboarding/offboard", node=node) == {"success": True, "error": ""}
    assert _cmd(cli, "/dms/node/onboarding/status", node=node)["onboarded"] is False
    again = _onboard(cli, "1", f"{ram_mib}MiB", node)
    assert again["success"] is True, again
    assert _cmd(cli, "/dms/node/onboarding/offboard", node=node)["success"] is True


# -- one daemon of our own: restarted, tampered with, its store written to -------------------

LOCATION = {
    "host_continent": "Africa",
    "host_country": "ET",
    "host_city": "Addis Ababa",
    "host_asn": 24757,
    "host_isp": "Ethio Telecom",
}
FIXTURES = Path(__file__).parent.parent / "resources" / "fixtures"
COMMIT_TTL_S = 6.0


@pytest.fixture(scope="module")
def own_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    """One daemon with a configured location, which these tests stop, restart and tamper with
    (the shared devnet must not be broken)."""
    net = devnet.create(
        tmp_path_factory.mktemp("own") / "net", 1, extra_config={"general": LOCATION}
    )
    devnet.start(net)
    try:
        yield net
    finally:
        devnet.stop(net)


@pytest.fixture
def own(own_devnet: devnet.Devnet) -> Cli:
    return Cli(own_devnet)


def _store(net: devnet.Devnet) -> Database:
    """The daemon's own SQLite store (WAL: readable and writable while the daemon runs)."""
    return Database.open(Path(net.nodes[0].directory) / "work" / DEFAULT_FILE_NAME)


def _restart(net: devnet.Devnet, between: Callable[[], None] = lambda: None) -> str:
    """Stop the daemon, run ``between``, start it again; returns what it logged meanwhile."""
    devnet.stop(net)
    between()
    offset = net.nodes[0].log_path.stat().st_size
    devnet.start(net)
    return log_of(net, 0)[offset:]


def _wait_for_log(net: devnet.Devnet, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_of(net, 0):
        assert time.monotonic() < deadline, f"{text!r} not logged within {timeout:g}s"
        time.sleep(0.2)


def test_public_status_reports_the_configured_location(own: Cli, cli: Cli) -> None:
    status = _cmd(own, "/public/status")
    assert status["Status"] == "OK"
    assert status["Location"] == {
        "continent": "Africa",
        "country": "ET",
        "city": "Addis Ababa",
        "asn": 24757,
        "isp": "Ethio Telecom",
    }
    assert Location("Africa", "ET").matches(Location.from_json(status["Location"]))
    assert _cmd(cli, "/public/status", node=2)["Location"] == {}  # no host_* configured


def test_onboarding_survives_a_restart(own: Cli, tmp_path: Path) -> None:
    machine = _cmd(own, "/dms/node/hardware/spec")["Resources"]
    ram_mib = machine["ram"]["size"] * 15 // 100 // 2**20
    # The CLI's machine has a GPU (a stand-in rocm-smi replaying real output) and stdin is not a
    # terminal: onboard asks nothing, offers no GPU and says so.
    tools = tmp_path / "bin"
    tools.mkdir()
    rocm = tools / "rocm-smi"
    fixture = FIXTURES / "rocm_smi_1gpu.json"
    rocm.write_text(f"#!{sys.executable}\nprint(open({str(fixture)!r}).read())\n")
    rocm.chmod(0o755)
    result = own.run(
        "actor", "cmd", "/dms/node/onboarding/onboard", "--cpu", "1", "--ram", f"{ram_mib}MiB",
        "--disk", "1", "--json", env={"PATH": f"{tools}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert "not onboarding any GPU: stdin is not a terminal" in result.stderr
    assert "Radeon RX 7900 XT" in result.stderr
    offered = json.loads(result.stdout)["config"]["onboarded_resources"]
    assert "gpus" not in offered and offered["cpu"]["cores"] == 1

    logged = _restart(own.net)
    assert "offboarded" not in logged
    assert _cmd(own, "/dms/node/onboarding/status") == {"onboarded": True, "error": ""}
    assert _cmd(own, "/dms/node/resources/onboarded")["Resources"] == offered
    assert _cmd(own, "/dms/node/resources/free")["Resources"] == offered


def test_an_expired_commitment_frees_its_resources_and_ports(own: Cli) -> None:
    machine = _cmd(own, "/dms/node/hardware/spec")["Resources"]
    ram_mib = machine["ram"]["size"] * 15 // 100 // 2**20
    offered = _onboard(own, "1", f"{ram_mib}MiB")["config"]["onboarded_resources"]
    half_ram = offered["ram"]["size"] // 2
    wanted = Resources(cpu=CPU(cores=1), ram=RAM(size=half_ram), disk=Disk(size=GIB // 2))
    # What /dms/deployment/commit will do: reserve resources with a TTL, lease public ports.
    with _store(own.net) as store:
        manager = ResourceManager(store, Resources())
        manager.commit("alloc-expiring", "ensemble-1", "alloc1", wanted, ttl_s=COMMIT_TTL_S)
        ports = manager.ports.assign("alloc-expiring", [0, 0])
    assert len(set(ports)) == 2

    free = _cmd(own, "/dms/node/resources/free")["Resources"]
    assert free["cpu"]["cores"] == 0
    assert free["ram"]["size"] == offered["ram"]["size"] - half_ram
    assert free["disk"]["size"] == offered["disk"]["size"] - GIB // 2

    _wait_for_log(
        own.net,
        "released expired commitment of allocation alloc-expiring (ensemble ensemble-1)",
        timeout=COMMIT_TTL_S + 15,
    )
    assert _cmd(own, "/dms/node/resources/free")["Resources"] == offered
    with _store(own.net) as store:
        assert PortRepo(store).leases() == {}  # the daemon's expiry freed the ports too
        assert ResourceRepo(store).expired() == []  # deleted, not merely lapsed


def test_a_restart_offboards_what_the_machine_cannot_honour(own: Cli) -> None:
    cores = _cmd(own, "/dms/node/hardware/spec")["Resources"]["cpu"]["cores"]
    too_many = Resources(cpu=CPU(cores=cores + 1), ram=RAM(size=GIB), disk=Disk(size=GIB))

    def tamper() -> None:  # an onboarding made on a bigger machine, or edited by hand
        with _store(own.net) as store:
            OnboardingRepo(store).set(OnboardingConfig(True, too_many.to_json().decode()))

    logged = _restart(own.net, tamper)
    reason = f"cannot onboard {cores + 1:g} CPU cores: the machine has {cores:g}"
    assert f"offboarded: the stored onboarding no longer fits this machine: {reason}" in logged
    assert _cmd(own, "/dms/node/onboarding/status") == {"onboarded": False, "error": ""}
    onboarded = _cmd(own, "/dms/node/resources/onboarded", refused=True)
    assert onboarded["Error"] == "the node is not onboarded"
