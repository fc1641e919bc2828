"""A frozen peer (SIGSTOP) must not block the rest of the network or a daemon's shutdown."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

from dms import devnet


@pytest.fixture
def frozen_net(tmp_path: Path) -> Iterator[devnet.Devnet]:
    net = devnet.create(tmp_path / "net", 3)
    devnet.start(net)
    try:
        yield net
    finally:
        devnet.stop(net)


def test_frozen_peer_times_out_others_stay_served_and_shutdown_is_prompt(
    frozen_net: devnet.Devnet,
) -> None:
    net = frozen_net
    cli = Cli(net)
    # node0 has talked to node2 before it freezes, so a connection to it exists
    cli.run("actor", "cmd", "/public/hello", "-d", net.nodes[2].did, "--json")
    os.kill(net.nodes[2].pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        cli.fails(
            "actor",
            "cmd",
            "/public/hello",
            "-d",
            net.nodes[2].did,
            "-t",
            "4s",
            match="no reply before the message expired",
        )
        assert time.monotonic() - start < 10
        # the other peer is still served, through the same daemon
        reply = cli.run("actor", "cmd", "/public/hello", "-d", net.nodes[1].did, "--json")
        assert json.loads(reply.stdout) == {"DID": {"uri": net.nodes[1].did}}
        # and the daemon that was talking to the frozen peer still stops within 2 s
        node0 = net.nodes[0]
        stopped_at = time.monotonic()
        os.kill(node0.pid, signal.SIGTERM)
        while devnet._alive(node0.pid):
            assert time.monotonic() - stopped_at < 2.0, "nunet run took over 2 s to stop"
            time.sleep(0.02)
        assert "DMS stopped" in node0.log_path.read_text()
    finally:
        os.kill(net.nodes[2].pid, signal.SIGCONT)
