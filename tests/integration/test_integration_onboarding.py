"""Onboarding on a real daemon, through `nunet actor cmd` as a user types it."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.conftest import Cli

GIB = 1024**3


def _cmd(cli: Cli, *args: str, node: int = 0) -> Any:
    return json.loads(cli.run("actor", "cmd", *args, "--json", node=node).stdout)


def _onboard(cli: Cli, cpu: str, ram: str, node: int = 0) -> Any:
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

    no_cores = _onboard(cli, "0", f"{ram_mib}MiB", node)
    assert no_cores["success"] is False and "minimum is 1" in no_cores["error"]
    too_much = _onboard(cli, "1", f"{machine['ram']['size'] * 95 // 100 // 2**20}MiB", node)
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
