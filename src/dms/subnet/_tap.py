"""A TAP interface for VMs, routed to the host's network with NAT (``nunet tap``).

Go's ``nunet tap MAIN_IF VM_IF CIDR`` creates a persistent TAP ``VM_IF`` with the address
``CIDR``, brings it up and allows forwarding between it and ``MAIN_IF`` (iptables). Here:

* the TAP, its address and its state go through netlink (pyroute2; a TAP is made with the
  ``/dev/net/tun`` ioctls pyroute2 wraps), never ``ip``;
* forwarding is switched on for the two interfaces only (``net.ipv4.conf.<if>.forwarding``:
  the kernel forwards what arrives on an interface whose flag is set), not machine-wide;
* the firewall is one nftables table of ours, ``inet nunet_tap`` (``nft -j -f -``, one atomic
  transaction per change): in ``forward``, ``VM_IF → MAIN_IF`` and established/related replies
  back are accepted (Go's two rules: they matter when a later table of ours drops, not against
  another table's drop policy); in ``postrouting``, the TAP's network leaving ``MAIN_IF`` is
  masqueraded (NAT), so a guest reaches the network with the host's address.

Every rule carries the comment ``nunet-tap:<VM_IF>`` and the TAP's alias records what was
changed outside it (``nunet-tap main=<MAIN_IF> fwd=<MAIN_IF's forwarding before>``), so
``--remove`` takes away exactly what was added: the TAP's rules (and the table once empty),
the TAP, and ``MAIN_IF``'s forwarding flag back as it was when no other TAP of ours uses it.
Both directions are idempotent: running the same command twice changes nothing the second
time; removing what is not there is not an error. An interface of that name not made by us is
never touched. IPv4 only (Go's too).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dms.errors import DMSError, InvalidInput

FAMILY = "inet"
TABLE = "nunet_tap"
FORWARD_CHAIN = "forward"
NAT_CHAIN = "postrouting"
COMMENT = "nunet-tap:"
ALIAS = "nunet-tap"
CAP_NET_ADMIN = 12
_IFNAME = re.compile(r"[A-Za-z0-9_.@-]{1,15}")
_ALIAS = re.compile(r"nunet-tap main=(?P<main>\S+) fwd=(?P<fwd>[01])")
NFT_TIMEOUT = 20.0
#: A plain Ethernet TAP, as a VMM opens it (no packet-info header, one queue).
_TAP_FLAGS = {"no_pi": True, "one_queue": False, "vnet_hdr": False, "multi_queue": False}


class TapError(DMSError):
    """``nunet tap`` cannot do what it was asked (one line says why)."""


@dataclass(frozen=True)
class TapPlan:
    """A checked ``MAIN_IF VM_IF CIDR``."""

    main_if: str
    vm_if: str
    address: ipaddress.IPv4Interface

    @property
    def network(self) -> ipaddress.IPv4Network:
        return self.address.network


def _ifname(name: str, what: str) -> str:
    if not _IFNAME.fullmatch(name) or name in (".", ".."):
        raise InvalidInput(
            f"{what} {name!r} is not an interface name (1-15 letters, digits, '_', '.', '-')"
        )
    return name


def parse_plan(main_if: str, vm_if: str, cidr: str) -> TapPlan:
    """Check the three arguments (names, an IPv4 host address with its prefix)."""
    _ifname(main_if, "MAIN_IF")
    _ifname(vm_if, "VM_IF")
    if main_if == vm_if:
        raise InvalidInput("MAIN_IF and VM_IF must be different interfaces")
    if "/" not in cidr:
        raise InvalidInput(f"CIDR {cidr!r} needs a prefix length, e.g. 172.16.0.1/24")
    try:
        address = ipaddress.ip_interface(cidr)
    except ValueError:
        raise InvalidInput(
            f"CIDR {cidr!r} is not an address with a prefix, e.g. 172.16.0.1/24"
        ) from None
    if not isinstance(address, ipaddress.IPv4Interface):
        raise InvalidInput(f"CIDR {cidr!r}: only IPv4 is supported (e.g. 172.16.0.1/24)")
    if address.network.prefixlen > 30:
        raise InvalidInput(f"CIDR {cidr!r}: the network is too small for a VM (at most /30)")
    if address.ip in (address.network.network_address, address.network.broadcast_address):
        raise InvalidInput(
            f"CIDR {cidr!r} names the network, not an address in it "
            f"(e.g. {next(address.network.hosts())}/{address.network.prefixlen})"
        )
    return TapPlan(main_if, vm_if, address)


# -- privileges and tools -------------------------------------------------------------------


def has_net_admin(status: str | None = None) -> bool:
    """Whether this process holds CAP_NET_ADMIN (``status``: a ``/proc/self/status`` text)."""
    if status is None:
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            return os.geteuid() == 0
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    return False


def _preflight() -> str:
    """The ``nft`` binary, once root and nftables are known to be there."""
    if not has_net_admin():
        raise TapError(
            "nunet tap needs root (CAP_NET_ADMIN) to make interfaces and firewall rules: "
            "run it with sudo"
        )
    nft = shutil.which("nft") or next(
        (p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None
    )
    if nft is None:
        raise TapError("nftables is not installed (no nft): apt install nftables")
    return nft


def _nft(nft: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [nft, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=NFT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TapError(f"nft did not run: {exc}") from None


def _apply(nft: str, commands: list[dict[str, Any]]) -> None:
    """Run ``commands`` as one nftables transaction (all or nothing)."""
    if not commands:
        return
    done = _nft(nft, "-j", "-f", "-", stdin=json.dumps({"nftables": commands}))
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise TapError(f"nftables refused the rules: {last}")


def _table(nft: str) -> list[dict[str, Any]] | None:
    """Our table's objects (``nft -j list table``), or None when it does not exist."""
    done = _nft(nft, "-j", "list", "table", FAMILY, TABLE)
    if done.returncode != 0:
        if "No such file" in done.stderr:
            return None
        raise TapError(f"cannot list nftables table {FAMILY} {TABLE}: {done.stderr.strip()}")
    try:
        items = json.loads(done.stdout)["nftables"]
    except (ValueError, KeyError, TypeError):
        raise TapError("nft -j printed something that is not nftables JSON") from None
    return [item for item in items if isinstance(item, dict)]


def _rules(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        rule = item.get("rule")
        if isinstance(rule, dict) and str(rule.get("comment", "")).startswith(COMMENT):
            yield rule


# -- nftables rules -------------------------------------------------------------------------


def _meta(key: str, value: str) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"meta": {"key": key}}, "right": value}}


def _rule(chain: str, vm_if: str, expr: list[dict[str, Any]]) -> dict[str, Any]:
    rule = {"family": FAMILY, "table": TABLE, "chain": chain, "comment": COMMENT + vm_if}
    return {"add": {"rule": {**rule, "expr": expr}}}


def rule_commands(plan: TapPlan) -> list[dict[str, Any]]:
    """The table, its two chains and the TAP's three rules (``add`` is a no-op for what
    exists; the rules are added after their older copies are deleted, see :func:`create`)."""
    base = {"family": FAMILY, "table": TABLE}
    network = plan.network
    return [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {
            "add": {
                "chain": {
                    **base,
                    "name": FORWARD_CHAIN,
                    "type": "filter",
                    "hook": "forward",
                    "prio": 0,
                    "policy": "accept",
                }
            }
        },
        {
            "add": {
                "chain": {
                    **base,
                    "name": NAT_CHAIN,
                    "type": "nat",
                    "hook": "postrouting",
                    "prio": 100,
                    "policy": "accept",
                }
            }
        },
        _rule(
            FORWARD_CHAIN,
            plan.vm_if,
            [_meta("iifname", plan.vm_if), _meta("oifname", plan.main_if), {"accept": None}],
        ),
        _rule(
            FORWARD_CHAIN,
            plan.vm_if,
            [
                _meta("iifname", plan.main_if),
                _meta("oifname", plan.vm_if),
                {
                    "match": {
                        "op": "in",
                        "left": {"ct": {"key": "state"}},
                        "right": ["established", "related"],
                    }
                },
                {"accept": None},
            ],
        ),
        _rule(
            NAT_CHAIN,
            plan.vm_if,
            [
                {
                    "match": {
                        "op": "==",
                        "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                        "right": {
                            "prefix": {
                                "addr": str(network.network_address),
                                "len": network.prefixlen,
                            }
                        },
                    }
                },
                _meta("oifname", plan.main_if),
                {"masquerade": None},
            ],
        ),
    ]


def _delete_rules(items: list[dict[str, Any]] | None, vm_if: str) -> list[dict[str, Any]]:
    out = []
    for rule in _rules(items or []):
        if rule.get("comment") == COMMENT + vm_if:
            where = {k: rule[k] for k in ("family", "table", "chain", "handle")}
            out.append({"delete": {"rule": where}})
    return out


# -- forwarding -----------------------------------------------------------------------------


def _forwarding_path(ifname: str) -> Path:
    return Path("/proc/sys/net/ipv4/conf") / ifname / "forwarding"


def read_forwarding(ifname: str) -> bool:
    """``net.ipv4.conf.<ifname>.forwarding``."""
    try:
        return _forwarding_path(ifname).read_text().strip() == "1"
    except OSError as exc:
        raise TapError(f"cannot read the forwarding flag of {ifname}: {exc.strerror}") from None


def _set_forwarding(ifname: str, on: bool) -> None:
    try:
        _forwarding_path(ifname).write_text("1" if on else "0")
    except OSError as exc:
        raise TapError(f"cannot set the forwarding flag of {ifname}: {exc.strerror}") from None


# -- netlink --------------------------------------------------------------------------------


@contextlib.contextmanager
def _netlink() -> Iterator[Any]:
    from pyroute2 import IPRoute  # type: ignore[import-untyped]  # loaded only by nunet tap

    with IPRoute() as ipr:
        yield ipr


def _netlink_error(action: str, exc: Exception) -> TapError:
    text = getattr(exc, "args", [None, None])
    message = text[1] if len(text) > 1 else str(exc)
    return TapError(f"{action}: {message}")


@dataclass(frozen=True)
class _Link:
    index: int
    alias: str
    kind: str

    @property
    def ours(self) -> _AliasState | None:
        found = _ALIAS.fullmatch(self.alias)
        if found is None or self.kind != "tun":
            return None
        return _AliasState(found["main"], found["fwd"] == "1")


@dataclass(frozen=True)
class _AliasState:
    main_if: str
    main_forwarding: bool  # MAIN_IF's forwarding flag before the first TAP of ours used it


def _link(ipr: Any, name: str) -> _Link | None:
    found = ipr.link_lookup(ifname=name)
    if not found:
        return None
    msg = ipr.get_links(found[0])[0]
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
    return _Link(found[0], msg.get_attr("IFLA_IFALIAS") or "", kind or "")


def _our_taps(ipr: Any) -> dict[str, _AliasState]:
    """Every TAP of ours on this host (name → what its alias records)."""
    out = {}
    for msg in ipr.get_links():
        name = msg.get_attr("IFLA_IFNAME")
        link = _link(ipr, name)
        if link is not None and (state := link.ours) is not None:
            out[name] = state
    return out


def _not_ours(name: str) -> TapError:
    return TapError(f"interface {name} exists and is not a TAP made by nunet tap: not touched")


def create(plan: TapPlan) -> list[str]:
    """Make (or bring back in line) the TAP of ``plan``; returns what was done, one line each."""
    nft = _preflight()
    done: list[str] = []
    with _netlink() as ipr:
        try:
            main = _link(ipr, plan.main_if)
            if main is None:
                raise TapError(f"no interface {plan.main_if} on this host (MAIN_IF)")
            tap = _link(ipr, plan.vm_if)
            if tap is None:
                others = [s for s in _our_taps(ipr).values() if s.main_if == plan.main_if]
                before = others[0].main_forwarding if others else read_forwarding(plan.main_if)
                ipr.link("add", ifname=plan.vm_if, kind="tuntap", mode="tap", ifr=_TAP_FLAGS)
                tap = _link(ipr, plan.vm_if)
                if tap is None:
                    raise TapError(f"the TAP {plan.vm_if} was not created")
                ipr.link(
                    "set", index=tap.index, ifalias=f"{ALIAS} main={plan.main_if} fwd={int(before)}"
                )
                done.append(f"TAP interface {plan.vm_if} created")
            else:
                state = tap.ours
                if state is None:
                    raise _not_ours(plan.vm_if)
                if state.main_if != plan.main_if:
                    raise TapError(
                        f"{plan.vm_if} is routed to {state.main_if}, not {plan.main_if}: "
                        "remove it first (nunet tap --remove)"
                    )
            done += _addresses(ipr, tap.index, plan)
            ipr.link("set", index=tap.index, state="up")
        except DMSError:
            raise
        except Exception as exc:  # NetlinkError, OSError from the tun ioctls
            raise _netlink_error(f"netlink refused to set up {plan.vm_if}", exc) from None
    for name in (plan.vm_if, plan.main_if):
        if not read_forwarding(name):
            _set_forwarding(name, True)
            done.append(f"forwarding on for {name}")
    table = _table(nft)
    _apply(nft, [*_delete_rules(table, plan.vm_if), *rule_commands(plan)])
    done.append(
        f"forwarding {plan.vm_if} <-> {plan.main_if} and NAT for {plan.network} "
        f"(nftables table {FAMILY} {TABLE})"
    )
    return done


def _addresses(ipr: Any, index: int, plan: TapPlan) -> list[str]:
    """Give the TAP exactly ``plan.address`` (an address left by an older run is replaced)."""
    done = []
    present = False
    for msg in ipr.get_addr(index=index, family=2):
        address = ipaddress.ip_interface(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
        if address == plan.address:
            present = True
            continue
        ipr.addr("del", index=index, address=str(address.ip), prefixlen=msg["prefixlen"])
        done.append(f"old address {address} removed from {plan.vm_if}")
    if not present:
        ipr.addr("add", index=index, address=str(plan.address.ip), prefixlen=plan.network.prefixlen)
        done.append(f"address {plan.address} assigned to {plan.vm_if}")
    return done


def remove(plan: TapPlan) -> list[str]:
    """Undo :func:`create` for ``plan.vm_if``; returns what was done (empty: nothing was
    there)."""
    nft = _preflight()
    done: list[str] = []
    with _netlink() as ipr:
        try:
            tap = _link(ipr, plan.vm_if)
            state = None if tap is None else tap.ours
            if tap is not None and state is None:
                raise _not_ours(plan.vm_if)
            table = _table(nft)
            deletes = _delete_rules(table, plan.vm_if)
            others = [r for r in _rules(table or []) if r.get("comment") != COMMENT + plan.vm_if]
            if table is not None and not others:
                _apply(nft, [{"delete": {"table": {"family": FAMILY, "name": TABLE}}}])
                done.append(f"nftables table {FAMILY} {TABLE} deleted")
            elif deletes:
                _apply(nft, deletes)
                done.append(f"forwarding and NAT rules of {plan.vm_if} deleted")
            if tap is not None and state is not None:
                ipr.link("del", index=tap.index)
                done.append(f"TAP interface {plan.vm_if} deleted")
                users = [s for s in _our_taps(ipr).values() if s.main_if == state.main_if]
                main = _link(ipr, state.main_if)
                restore = not users and main is not None and not state.main_forwarding
                if restore and read_forwarding(state.main_if):
                    _set_forwarding(state.main_if, False)
                    done.append(f"forwarding off again for {state.main_if}")
        except DMSError:
            raise
        except Exception as exc:
            raise _netlink_error(f"netlink refused to remove {plan.vm_if}", exc) from None
    return done
