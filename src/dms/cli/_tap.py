"""``nunet tap MAIN_IF VM_IF CIDR [--remove]``: a TAP interface for VMs, routed with NAT.

The work is done by :mod:`dms.subnet` (``create_tap``, ``remove_tap``: netlink and one nftables
table); this module parses the arguments and prints what was done, one line per change.
"""

from __future__ import annotations

from typing import Annotated

import typer


def tap(
    main_if: Annotated[str, typer.Argument(help="Host interface to the network, e.g. eth0.")],
    vm_if: Annotated[str, typer.Argument(help="Name of the TAP interface to make, e.g. tap0.")],
    cidr: Annotated[str, typer.Argument(help="The TAP's address and network, e.g. 172.16.0.1/24.")],
    remove: Annotated[
        bool, typer.Option("--remove", help="Take away the TAP and everything made for it.")
    ] = False,
) -> None:
    """Create a TAP interface for VMs, with forwarding and NAT to the host's network.

    Makes VM_IF (a persistent TAP) with the address CIDR, switches on forwarding between it
    and MAIN_IF and masquerades its network out of MAIN_IF (nftables table inet nunet_tap).
    Needs root. Running it again changes nothing; --remove undoes exactly what it made.

    Example: nunet tap eth0 tap0 172.16.0.1/24
    """
    from dms.subnet import create_tap, parse_tap_plan, remove_tap  # only this command needs it

    plan = parse_tap_plan(main_if, vm_if, cidr)
    done = remove_tap(plan) if remove else create_tap(plan)
    for line in done:
        typer.echo(line)
    if not done:
        typer.echo(f"nothing to remove for {vm_if}" if remove else f"{vm_if} is already set up")
