"""``nunet tap`` in a network namespace of the test's own: the real command, real netlink and
real nftables, checked from outside with pyroute2 and ``nft -j``.

The "host" is a fresh namespace with a veth pair standing for its network interface (this
kernel may lack the ``dummy`` driver). Needs root and nftables; skipped without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dms.errors import InvalidInput
from dms.subnet._tap import COMMENT, has_net_admin, parse_plan

NUNET = str(Path(sys.executable).parent / "nunet")


def _netns_works() -> bool:
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None:
        return False
    name = f"nunet-probe-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, check=False)
    if made.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return True


needs_netns = pytest.mark.skipif(
    not _netns_works(), reason="needs root, nftables and network namespaces"
)


class Namespace:
    """A network namespace with ``main0`` (one end of a veth pair) as its host interface."""

    def __init__(self, name: str) -> None:
        self.name = name

    def sh(self, *argv: str) -> None:
        """Set-up inside the namespace (the code under test never shells out to ``ip``)."""
        subprocess.run(["ip", "netns", "exec", self.name, *argv], check=True, capture_output=True)

    def nunet(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, NUNET, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def tap(self, *args: str) -> list[str]:
        done = self.nunet("tap", *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    def links(self) -> dict[str, Any]:
        from pyroute2 import IPRoute  # type: ignore[import-untyped]

        with IPRoute(netns=self.name) as ipr:
            out = {}
            for link in ipr.get_links():
                addresses = [
                    f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                    for a in ipr.get_addr(index=link["index"], family=2)
                ]
                info = link.get_attr("IFLA_LINKINFO")
                out[link.get_attr("IFLA_IFNAME")] = {
                    "up": bool(link["flags"] & 1),
                    "kind": info.get_attr("IFLA_INFO_KIND") if info is not None else "",
                    "addresses": addresses,
                }
            return out

    def ruleset(self) -> list[dict[str, Any]]:
        out = subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "-j", "list", "ruleset"],
            capture_output=True,
            text=True,
            check=True,
        )
        return [i for i in json.loads(out.stdout)["nftables"] if "metainfo" not in i]

    def forwarding(self, ifname: str) -> str:
        out = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.name,
                "cat",
                f"/proc/sys/net/ipv4/conf/{ifname}/forwarding",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()


@pytest.fixture
def ns() -> Iterator[Namespace]:
    name = f"nunet-t-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    space = Namespace(name)
    try:
        space.sh("ip", "link", "add", "main0", "type", "veth", "peer", "name", "peer0")
        # Forwarding off machine-wide, as on a host that never routed: we must restore it.
        space.sh("sysctl", "-qw", "net.ipv4.conf.all.forwarding=0")
        space.sh("sysctl", "-qw", "net.ipv4.conf.default.forwarding=0")
        yield space
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def our_rules(ruleset: list[dict[str, Any]], vm_if: str) -> list[dict[str, Any]]:
    return [
        item["rule"]
        for item in ruleset
        if "rule" in item and item["rule"].get("comment") == COMMENT + vm_if
    ]


@needs_netns
def test_tap_is_made_idempotently_and_removed_without_a_trace(ns: Namespace) -> None:
    before = ns.ruleset()
    assert ns.forwarding("main0") == "0"
    done = ns.tap("main0", "tap0", "172.16.0.1/24")
    assert done[0] == "TAP interface tap0 created"
    links = ns.links()
    assert links["tap0"] == {"up": True, "kind": "tun", "addresses": ["172.16.0.1/24"]}
    assert ns.forwarding("tap0") == "1" and ns.forwarding("main0") == "1"
    rules = our_rules(ns.ruleset(), "tap0")
    assert {r["chain"] for r in rules} == {"forward", "postrouting"} and len(rules) == 3
    assert all(r["family"] == "inet" and r["table"] == "nunet_tap" for r in rules)
    (nat,) = [r for r in rules if r["chain"] == "postrouting"]
    assert {"masquerade": None} in nat["expr"]
    assert nat["expr"][0]["match"]["right"] == {"prefix": {"addr": "172.16.0.0", "len": 24}}
    assert {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "main0"}} in (
        nat["expr"]
    )

    # Again: nothing new (no second TAP, address or copy of a rule).
    snapshot = (ns.links(), [dict(r, handle=0) for r in our_rules(ns.ruleset(), "tap0")])
    ns.tap("main0", "tap0", "172.16.0.1/24")
    assert (ns.links(), [dict(r, handle=0) for r in our_rules(ns.ruleset(), "tap0")]) == snapshot

    # Another network for the same TAP replaces the address and the NAT rule.
    assert "old address 172.16.0.1/24 removed from tap0" in ns.tap("main0", "tap0", "10.7.0.1/16")
    assert ns.links()["tap0"]["addresses"] == ["10.7.0.1/16"]
    (nat,) = [r for r in our_rules(ns.ruleset(), "tap0") if r["chain"] == "postrouting"]
    assert nat["expr"][0]["match"]["right"] == {"prefix": {"addr": "10.7.0.0", "len": 16}}

    removed = ns.tap("main0", "tap0", "10.7.0.1/16", "--remove")
    assert "TAP interface tap0 deleted" in removed
    assert "tap0" not in ns.links()
    assert ns.ruleset() == before == []
    assert ns.forwarding("main0") == "0"
    assert ns.tap("main0", "tap0", "10.7.0.1/16", "--remove") == ["nothing to remove for tap0"]


@needs_netns
def test_what_is_not_ours_is_left_alone(ns: Namespace) -> None:
    # The administrator's own table, and an interface not made by nunet tap.
    ns.sh("nft", "add", "table", "inet", "admin")
    ns.sh("nft", "add", "chain", "inet", "admin", "input", "{ type filter hook input priority 0; }")
    ns.sh("nft", "add", "rule", "inet", "admin", "input", "tcp", "dport", "22", "accept")
    admin = ns.ruleset()
    refused = ns.nunet("tap", "main0", "peer0", "172.16.0.1/24")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: interface peer0 exists and is not a TAP made by nunet tap: not touched"
    )
    refused = ns.nunet("tap", "main0", "peer0", "172.16.0.1/24", "--remove")
    assert refused.returncode == 1 and "peer0" in ns.links()

    # Two TAPs on one host interface: removing one keeps the other's rules and forwarding.
    ns.tap("main0", "tap1", "172.16.1.1/24")
    ns.tap("main0", "tap2", "172.16.2.1/24")
    ns.tap("main0", "tap1", "172.16.1.1/24", "--remove")
    assert our_rules(ns.ruleset(), "tap1") == [] and len(our_rules(ns.ruleset(), "tap2")) == 3
    assert ns.forwarding("main0") == "1"
    ns.tap("main0", "tap2", "172.16.2.1/24", "--remove")
    assert ns.ruleset() == admin
    assert ns.forwarding("main0") == "0"
    assert set(ns.links()) == {"lo", "main0", "peer0"}


@needs_netns
def test_errors_are_one_line(ns: Namespace) -> None:
    cases = [
        (("nope0", "tap0", "172.16.0.1/24"), 1, "error: no interface nope0 on this host (MAIN_IF)"),
        (("main0", "tap0", "172.16.0.1"), 2, "needs a prefix length"),
        (("main0", "tap0", "banana/24"), 2, "is not an address with a prefix"),
        (("main0", "tap0", "172.16.0.0/24"), 2, "names the network, not an address in it"),
        (("main0", "tap0", "fd00::1/64"), 2, "only IPv4 is supported"),
        (("main0", "main0", "172.16.0.1/24"), 2, "must be different interfaces"),
        (("main0", "tap/0", "172.16.0.1/24"), 2, "is not an interface name"),
    ]
    for args, code, message in cases:
        done = ns.nunet("tap", *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == code and len(lines) == 1, (args, done.stderr)
        assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "tap0" not in ns.links() and ns.ruleset() == []
    # Without CAP_NET_ADMIN (an ordinary user), nothing is tried.
    nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all")
    tap = (NUNET, "tap", "main0", "tap0", "172.16.0.1/24")
    done = subprocess.run(
        ["ip", "netns", "exec", ns.name, *nobody, *tap],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: nunet tap needs root (CAP_NET_ADMIN) to make interfaces and firewall rules: "
        "run it with sudo"
    )


def test_capability_check_reads_the_effective_set() -> None:
    assert has_net_admin("Name:\tx\nCapEff:\t000001ffffffffff\n")
    assert has_net_admin("CapEff:\t0000000000001000\n")  # CAP_NET_ADMIN alone
    assert not has_net_admin("CapEff:\t0000000000000000\n")
    assert not has_net_admin("Name:\tx\n")


def test_plan_is_checked_before_anything_runs() -> None:
    plan = parse_plan("eth0", "tap0", "172.16.0.1/24")
    assert str(plan.network) == "172.16.0.0/24" and str(plan.address.ip) == "172.16.0.1"
    with pytest.raises(InvalidInput, match="too small"):
        parse_plan("eth0", "tap0", "172.16.0.1/32")
    with pytest.raises(InvalidInput, match="not an interface name"):
        parse_plan("eth0", "a-name-longer-than-15", "172.16.0.1/24")
