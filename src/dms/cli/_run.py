"""``nunet run``: start the DMS daemon in the foreground (Go DMS flags).

SIGINT and SIGTERM cancel the daemon's nursery; every component closes its own tasks and sockets
on cancellation, so the process exits promptly and cleanly.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import trio
import typer

from dms.cli._common import config_path, passphrase_reader
from dms.config import Config, load_config, override_config
from dms.errors import ConfigError


def _configure_logging(config: Config, debug: bool) -> None:
    """Our own loggers at ``observability.logging.level`` (DEBUG with --debug); libraries quiet.

    Library debug output (libp2p, hypercorn) only appears with ``--debug``, so a DEBUG level for
    the DMS itself shows every dropped message and its reason without drowning it.
    """
    level_name = config.observability.logging.level or config.observability.log_level or "INFO"
    level = logging.DEBUG if debug else logging.getLevelNamesMapping().get(level_name.upper())
    if level is None:
        raise ConfigError(f"observability.log_level: unknown level {level_name!r}")
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("dms").setLevel(level)
    if not debug:
        for noisy in ("libp2p", "multiaddr", "hypercorn", "async_service", "dms.api.server"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


async def _serve(config: Config, context: str) -> None:
    from dms.daemon import Daemon, load_dms_identity

    log = logging.getLogger("dms.daemon")
    key, capabilities = load_dms_identity(
        config.general.user_dir, context, passphrase_reader(context)
    )
    daemon = Daemon(config, key, capabilities)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            async for signum in signals:
                log.info("received %s: shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    log.info("DMS stopped")


def run(
    context: Annotated[
        str, typer.Option("--context", "-c", help="Capability context (and key) of the DMS.")
    ] = "dms",
    rest_addr: Annotated[
        str | None, typer.Option("--rest-addr", help="REST listen address.")
    ] = None,
    rest_port: Annotated[int | None, typer.Option("--rest-port", help="REST listen port.")] = None,
    user_dir: Annotated[
        Path | None, typer.Option("--user-dir", help="Keys and contexts directory.")
    ] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Work directory.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Verbose logs.")] = False,
) -> None:
    """Run the Device Management Service in the foreground (Ctrl-C stops it)."""
    overrides: dict[str, Any] = {}
    for key, value in (
        ("rest.addr", rest_addr),
        ("rest.port", rest_port),
        ("general.user_dir", str(user_dir) if user_dir else None),
        ("general.work_dir", str(work_dir) if work_dir else None),
        ("general.data_dir", str(data_dir) if data_dir else None),
    ):
        if value is not None:
            overrides[key] = value
    config = load_config(config_path())
    if overrides:
        config = override_config(config, overrides)
    _configure_logging(config, debug or config.general.debug)
    # A component that fails to start (port in use, bad key...) surfaces inside the nursery's
    # exception group; the CLI's entry point prints its one-line message, not a traceback.
    trio.run(_serve, config, context)
