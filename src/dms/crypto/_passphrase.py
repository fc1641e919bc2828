"""Where a keystore passphrase comes from: ``DMS_PASSPHRASE``, else the terminal.

The environment wins so that scripts, services and the appliance (which exports the variable from
the kernel keyring) never block on a prompt; without either, we fail with the remedy in the
message instead of hanging on a missing TTY.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping

from dms.errors import KeystoreError

PASSPHRASE_ENV = "DMS_PASSPHRASE"


def _has_tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def read_passphrase(
    *,
    confirm: bool,
    name: str,
    env: Mapping[str, str] = os.environ,
    prompt: Callable[[str], str] = getpass.getpass,
    interactive: Callable[[], bool] = _has_tty,
) -> str:
    """The passphrase for key ``name``; asked twice when ``confirm`` (creating a key)."""
    from_env = env.get(PASSPHRASE_ENV, "")
    if from_env:
        return from_env
    if not interactive():
        raise KeystoreError(
            f"no passphrase for key {name!r}: set {PASSPHRASE_ENV} or run in a terminal"
        )
    try:
        first = prompt(f"Passphrase for key {name!r}: ")
        if not first:
            raise KeystoreError("empty passphrase refused")
        if confirm and prompt(f"Repeat passphrase for key {name!r}: ") != first:
            raise KeystoreError("passphrases do not match")
    except (EOFError, KeyboardInterrupt):
        raise KeystoreError(f"no passphrase entered for key {name!r}") from None
    return first
