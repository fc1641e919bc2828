"""Serving the API with hypercorn's trio worker inside the daemon's own nursery.

The REST server shares the trio run with the libp2p host (spec: py-libp2p §4 measured this
works), so shutting the node down is one cancellation. We bind the listening socket ourselves
rather than giving hypercorn a ``host:port`` string: the real port of ``port=0`` is known
without parsing log-style URLs, a bind failure is a clean :class:`~dms.errors.NetworkError`
instead of an exception group from inside hypercorn's nursery, and the socket is closed in our
``finally`` whatever happens to the server.
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import TYPE_CHECKING, cast

import trio
from fastapi import FastAPI
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from dms.errors import NetworkError

if TYPE_CHECKING:
    from hypercorn.typing import Framework

    # libp2p pulls in trio-typing, whose trio-stubs shadow trio's inline types for mypy.
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

#: Seconds open requests get to finish on a graceful (non-cancelled) hypercorn shutdown.
GRACEFUL_TIMEOUT = 1.0


def server_config(*, access_log: bool = False) -> Config:
    """A hypercorn config that logs through ``logging`` and stays quiet by default.

    Hypercorn's defaults write its own formatted lines to stderr; here its messages go to the
    ``dms.api.server`` logger (start-up lines at INFO) and access lines, if asked for, to
    ``dms.api.access`` at INFO, so the daemon's logging setup decides what is shown.
    """
    config = Config()
    config.errorlog = logging.getLogger("dms.api.server")
    config.accesslog = logging.getLogger("dms.api.access") if access_log else None
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.include_server_header = False
    return config


async def _bind(host: str, port: int, backlog: int) -> socket.socket:
    try:
        infos = await trio.socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise NetworkError(f"cannot resolve REST address {host!r}: {exc}") from None
    if not infos:
        raise NetworkError(f"cannot resolve REST address {host!r}")
    family, type_, proto, _, address = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise NetworkError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


async def serve_api(
    app: FastAPI,
    host: str,
    port: int,
    *,
    access_log: bool = False,
    task_status: TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until cancelled (``await nursery.start(serve_api, ...)``).

    Reports the bound port once the socket is listening (the real one when ``port`` is 0) and
    returns only after the listener and every connection are closed, so cancelling the
    caller's scope frees the port. Raises :class:`~dms.errors.NetworkError` if the address
    cannot be bound.
    """
    config = server_config(access_log=access_log)
    sock = await _bind(host, port, config.backlog)
    try:
        bound_port = int(sock.getsockname()[1])
        config.bind = [f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"]
        async with trio.open_nursery() as nursery:
            # hypercorn.trio.serve cannot take a socket; worker_serve (which it wraps) can.
            # It reports started only after the app's lifespan start-up, so requests are
            # served from the moment we report the port.
            await nursery.start(
                partial(
                    worker_serve,
                    wrap_app(cast("Framework", app), config.wsgi_max_body_size, "asgi"),
                    config,
                    sockets=Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[]),
                )
            )
            task_status.started(bound_port)
    finally:
        sock.close()
