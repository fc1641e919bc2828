"""The TUN capability probe: for real (root here, and root without CAP_NET_ADMIN in a child
process), and its reason texts from given inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dms.subnet._capability import (
    SubnetCapability,
    cap_eff_from_status,
    cap_net_admin_reason,
    subnet_capability,
    tun_reason,
)

STATUS = "Name:\tpython\nCapInh:\t0000000000000000\nCapPrm:\t{0}\nCapEff:\t{0}\nCapBnd:\t{0}\n"
NO_CAP = "no CAP_NET_ADMIN (run as root or grant cap_net_admin)"


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


@pytest.mark.skipif(os.geteuid() != 0, reason="the probe succeeds only as root")
def test_root_can_manage_tun_devices_and_the_probe_leaves_no_device() -> None:
    subnet_capability.cache_clear()
    before = _links()
    assert subnet_capability() == SubnetCapability(True, "")
    assert subnet_capability() is subnet_capability()  # cached
    assert not {name for name in _links() - before if name.startswith("dmsprobe")}


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)
def test_without_cap_net_admin_the_probe_says_so() -> None:
    # Root, but CAP_NET_ADMIN dropped from the bounding set: the child starts without it.
    code = "from dms.subnet._capability import subnet_capability as s; print(s().reason)"
    out = subprocess.run(
        ["setpriv", "--bounding-set", "-net_admin", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == NO_CAP


def test_reason_from_the_capability_sets() -> None:
    assert cap_eff_from_status(STATUS.format("000001fffeffffff")) == 0x1FFFEFFFFFF
    assert cap_net_admin_reason(STATUS.format("000001fffeffffff")) is None
    assert cap_net_admin_reason(STATUS.format("0000000000001000")) is None  # bit 12 alone
    assert cap_net_admin_reason(STATUS.format("0000000000000000")) == NO_CAP
    assert cap_net_admin_reason(STATUS.format("000001ffffffefff")) == NO_CAP  # all but bit 12
    assert cap_net_admin_reason("Name:\tx\n") == (
        "cannot read the process capabilities (no CapEff in /proc/self/status)"
    )
    assert cap_net_admin_reason("CapEff:\tzz\n") is not None


def test_reason_from_the_tun_device(tmp_path: Path) -> None:
    missing = tmp_path / "tun"
    assert tun_reason(str(missing)) == (
        f"{missing} missing (load the tun module, or pass the device to the container)"
    )
    not_a_device = tmp_path / "file"
    not_a_device.write_text("")
    assert tun_reason(str(not_a_device)) == (
        f"cannot create a TUN device through {not_a_device}: Inappropriate ioctl for device"
    )
    not_a_device.chmod(0)
    if os.geteuid() != 0:  # root opens a mode-0 file anyway
        assert tun_reason(str(not_a_device)) == (f"cannot open {not_a_device}: Permission denied")
    for reason in (tun_reason(str(missing)), tun_reason(str(not_a_device))):
        assert reason is not None and "\n" not in reason
