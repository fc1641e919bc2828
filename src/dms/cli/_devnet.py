"""``nunet devnet``: start, inspect and stop a local network of real DMS daemons."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from dms import devnet
from dms.cli._common import info, print_json
from dms.errors import InvalidInput

app = typer.Typer(no_args_is_help=True, help="A local DMS network on loopback, for trying things.")

DirOpt = Annotated[
    Path, typer.Option("--dir", help="Where the devnet's keys, configs and logs live.")
]
DEFAULT_DIR = Path(".devnet")


@app.command("up")
def up(
    nodes: Annotated[int, typer.Option("--nodes", "-n", min=1, max=50, help="How many.")] = 3,
    directory: DirOpt = DEFAULT_DIR,
    onboard: Annotated[
        bool,
        typer.Option(
            "--onboard",
            help="Onboard every node but node0 as a provider (node0 then orchestrates).",
        ),
    ] = False,
) -> None:
    """Create N nodes (keys, contexts, capabilities, configs) and start their daemons.

    An existing devnet in --dir is restarted as it is.
    """
    info(f"starting {nodes} nodes in {directory} ...")
    net = devnet.up(directory.resolve(), nodes)
    if onboard:
        cpu, ram, disk = devnet.default_onboarding()
        info(f"onboarding node1..node{nodes - 1}: {cpu:g} core, {ram} RAM, {disk} disk each")
        devnet.onboard(net, range(1, nodes))
    for node in net.nodes:
        typer.echo(f"{node.name}: {node.rest_url}  {node.address}")
    info(f"act as the devnet's user against node0: eval $(nunet devnet env --dir {directory})")


@app.command("status")
def status(
    directory: DirOpt = DEFAULT_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each node's process, health and address."""
    rows = devnet.status(devnet.Devnet.load(directory.resolve()))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        state = "up" if row["healthy"] else ("running" if row["alive"] else "down")
        typer.echo(f"{row['name']}: {state:7} pid {row['pid']:>7}  {row['rest']}  {row['peer_id']}")


@app.command("env")
def env(
    node: Annotated[int, typer.Argument(help="Node index the CLI should talk to.")] = 0,
    directory: DirOpt = DEFAULT_DIR,
) -> None:
    """Print shell exports that make `nunet` act as the devnet's user against a node."""
    net = devnet.Devnet.load(directory.resolve())
    if not 0 <= node < len(net.nodes):
        raise InvalidInput(f"no node {node}: this devnet has nodes 0..{len(net.nodes) - 1}")
    values = net.cli_env(node)
    for key in ("DMS_GENERAL_USER_DIR", "DMS_REST_PORT", "DMS_PASSPHRASE"):
        typer.echo(f"export {key}={shlex.quote(values[key])}")


@app.command("down")
def down(
    directory: DirOpt = DEFAULT_DIR,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the devnet's directory.")
    ] = False,
) -> None:
    """Stop every daemon (keys, configs and logs are kept unless --purge)."""
    devnet.down(directory.resolve(), purge=purge)
    info(f"devnet in {directory} {'removed' if purge else 'stopped'}")
