"""serve_api runs hypercorn in the caller's nursery: real port for 0, prompt and clean shutdown."""

from __future__ import annotations

import socket

import httpx
import pytest
import trio

from dms.actor import Address, Handle
from dms.api import create_app, serve_api
from dms.errors import NetworkError
from dms.network import MemoryFabric, MemoryNetwork


async def _app_and_network(nursery: trio.Nursery) -> object:
    network = MemoryNetwork(MemoryFabric(), "peerA")
    await nursery.start(network.run)
    return create_app(network, Handle(address=Address("peerA", "root")))


async def test_cancel_stops_the_server_and_frees_the_port() -> None:
    async with trio.open_nursery() as outer:
        app = await _app_and_network(outer)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, app, "127.0.0.1", 0)
            assert port > 0
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/health")).json() == {"status": "ok"}
                # A keep-alive connection is still open when we cancel.
                start = trio.current_time()
                nursery.cancel_scope.cancel()
        assert trio.current_time() - start < 1.0

        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{port}/health")

        # The same port can be served again straight away.
        async with trio.open_nursery() as nursery:
            again = await nursery.start(serve_api, app, "127.0.0.1", port)
            assert again == port
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
            nursery.cancel_scope.cancel()
        outer.cancel_scope.cancel()

    # Nothing holds the port any more: a plain socket can bind it.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


async def test_a_taken_port_is_a_clean_error(nursery: trio.Nursery) -> None:
    app = await _app_and_network(nursery)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(NetworkError, match=f"cannot listen on 127.0.0.1:{port}"):
            await nursery.start(serve_api, app, "127.0.0.1", port)


async def test_ipv6_loopback(nursery: trio.Nursery) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    app = await _app_and_network(nursery)
    try:
        port = await nursery.start(serve_api, app, "::1", 0)
    except NetworkError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://[::1]:{port}/health")).status_code == 200


def test_public_api() -> None:
    import dms.api

    assert sorted(dms.api.__all__) == [
        "MAX_BODY_SIZE",
        "RESERVED_INBOXES",
        "create_app",
        "serve_api",
    ]
    assert dms.api.MAX_BODY_SIZE == 1 << 20
