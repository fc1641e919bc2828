"""A Libp2pNetwork in its own process, for tests that freeze or kill a peer.

Prints ``LISTEN <multiaddr>`` once listening, registers an inbox ``echo`` that counts messages,
and runs until killed. Run as ``python tests/network/libp2p_peer_proc.py``.
"""

from __future__ import annotations

import sys

import trio

from dms.crypto import Ed25519PrivateKey
from dms.network._libp2p import Libp2pNetwork


async def main() -> None:
    net = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])

    async def on_message(data: bytes, remote: str) -> None:
        print(f"GOT {len(data)} {remote}", flush=True)

    net.register_inbox("echo", on_message)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        print(f"LISTEN {net.listen_addresses()[0]}", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    try:
        trio.run(main)
    except KeyboardInterrupt:
        sys.exit(0)
