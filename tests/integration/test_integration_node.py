"""Node behaviours on real daemons, through `nunet actor cmd` as a user types them."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.integration.conftest import Cli


def _cmd(cli: Cli, *args: str, node: int = 0, refused: bool = False) -> Any:
    """The reply of ``nunet actor cmd ARGS --json``; ``refused``: the reply reports a failure,
    so the command exits 1 with the error as one line on stderr (and the reply on stdout)."""
    result = cli.run("actor", "cmd", *args, "--json", node=node, ok=not refused)
    if refused:
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and lines[-1].startswith("error: "), result
    return json.loads(result.stdout)


def test_status_and_self(cli: Cli) -> None:
    status = _cmd(cli, "/public/status")
    assert status["Status"] == "OK"
    resources = status["Resources"]
    assert resources["cpu"]["cores"] >= 1 and resources["ram"]["size"] > 0
    me = _cmd(cli, "/dms/node/peers/self")
    assert me["id"] == cli.net.nodes[0].peer_id
    assert f"/tcp/{cli.net.nodes[0].p2p_port}" in me["listen_addr"]


def test_peers_list_ping_connect_and_dht(cli: Cli) -> None:
    net = cli.net
    assert set(_cmd(cli, "/dms/node/peers/list")["Peers"]) >= {
        net.nodes[1].peer_id,
        net.nodes[2].peer_id,
    }
    ping = _cmd(cli, "/dms/node/peers/ping", "--host", net.nodes[1].peer_id)
    assert ping["Error"] == "" and isinstance(ping["RTT"], int)
    unknown = _cmd(
        cli,
        "/dms/node/peers/ping",
        "--host",
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
        refused=True,
    )
    assert unknown["Error"]
    connected = _cmd(cli, "/dms/node/peers/connect", "-a", net.nodes[2].address, node=1)
    assert connected == {"Status": "CONNECTED", "Error": ""}
    assert net.nodes[2].peer_id in _cmd(cli, "/dms/node/peers/list", node=1)["Peers"]
    # (an already-connected peer counts as connected whatever the address, as in Go)
    bad = _cmd(
        cli,
        "/dms/node/peers/connect",
        "-a",
        "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
        node=1,
        refused=True,
    )
    assert bad["Status"] != "CONNECTED" and bad["Error"], bad
    deadline = time.monotonic() + 10
    while True:  # the routing table fills from connections in the background
        dht = {p["Id"] for p in _cmd(cli, "/dms/node/peers/dht")["Peers"]}
        if {net.nodes[1].peer_id, net.nodes[2].peer_id} <= dht or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {net.nodes[1].peer_id, net.nodes[2].peer_id} <= dht


def test_broadcast_hello_reaches_the_other_nodes(cli: Cli) -> None:
    net = cli.net
    expected = {net.nodes[1].did, net.nodes[2].did}
    deadline = time.monotonic() + 20
    while True:  # the gossip mesh forms within a few heartbeats of start-up
        replies = _cmd(cli, "/broadcast/hello", "-t", "3s")
        answered = {r["DID"]["uri"] for r in replies}
        if answered >= expected or time.monotonic() > deadline:
            break
    assert answered == expected  # every other node, and never the sender itself
