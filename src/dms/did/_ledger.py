"""A provider that signs with a Ledger hardware wallet through NuNet's external ``ledger-cli``.

Like ``lib/did/ledger.go`` we run ``ledger-cli key -o <tmp> -a <account>`` and
``ledger-cli sign -o <tmp> -a <account> <hex data>``, read JSON from the output file
(``{"key": hex, "address": ...}`` / ``{"ecdsa": {"v", "r", "s"}}``) and re-encode the signature
as DER. The Ledger's Eth app signs personal messages, so the DID is an Eth did:key (0xef01).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from typing import Any

from dms.crypto import SECP256K1_N, EthPublicKey, encode_der_signature
from dms.did._did import Anchor, Provider, did_from_public_key
from dms.errors import CryptoError, InvalidInput

LEDGER_CLI = "ledger-cli"
LEDGER_CONTEXT = "ledger"
DEFAULT_TIMEOUT = 300.0  # the user has to confirm on the device


def is_ledger_context(context: str) -> bool:
    """True for ``ledger`` and ``ledger:<index or alias>``."""
    return context == LEDGER_CONTEXT or context.startswith(LEDGER_CONTEXT + ":")


def ledger_account(context: str, aliases: Mapping[str, int] | None = None) -> int:
    """The account index a ledger context name selects (``ledger`` is account 0)."""
    if not is_ledger_context(context):
        raise InvalidInput(f"{context!r} is not a ledger context")
    if context == LEDGER_CONTEXT:
        return 0
    suffix = context[len(LEDGER_CONTEXT) + 1 :]
    if suffix.isdigit():
        return int(suffix)
    if aliases and suffix in aliases:
        return aliases[suffix]
    raise InvalidInput(f"unknown ledger account {suffix!r}: use ledger:<index>")


def _hex_scalar(value: Any, what: str) -> int:
    if not isinstance(value, str):
        raise CryptoError(f"ledger-cli output: signature {what} is not a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise CryptoError(f"ledger-cli output: signature {what} is not hex") from None
    number = int.from_bytes(raw, "big")
    if len(raw) > 32 or number >= SECP256K1_N:
        raise CryptoError(f"ledger-cli output: signature {what} overflows the curve order")
    return number


class LedgerProvider(Provider):
    """Signs as the Eth did:key of a Ledger account; the private key never leaves the device."""

    def __init__(
        self, account: int = 0, *, executable: str = LEDGER_CLI, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if account < 0:
            raise InvalidInput(f"ledger account must be >= 0, got {account}")
        self.account = account
        self._executable = executable
        self._timeout = timeout
        output = self._run("key")
        key_hex = output.get("key")
        if not isinstance(key_hex, str):
            raise CryptoError("ledger-cli output: missing key")
        try:
            raw = bytes.fromhex(key_hex)
        except ValueError:
            raise CryptoError("ledger-cli output: key is not hex") from None
        self.public_key = EthPublicKey(raw)
        self.did = did_from_public_key(self.public_key)

    def _run(self, command: str, *extra: str) -> dict[str, Any]:
        path = shutil.which(self._executable)
        if path is None:
            raise CryptoError(f"can't find {self._executable} in PATH (needed for ledger contexts)")
        fd, tmp = tempfile.mkstemp(prefix="ledger.out")
        os.close(fd)
        try:
            argv = [path, command, "-o", tmp, "-a", str(self.account), *extra]
            try:
                # The device's prompts go to our stderr so they never mix with command output.
                proc = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=2,
                    stderr=2,
                    timeout=self._timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise CryptoError(f"ledger-cli {command} timed out") from None
            except OSError as exc:
                raise CryptoError(f"cannot run ledger-cli: {exc.strerror}") from None
            if proc.returncode != 0:
                raise CryptoError(f"ledger-cli {command} failed with exit status {proc.returncode}")
            try:
                with open(tmp, encoding="utf-8") as f:
                    output = json.load(f)
            except (OSError, ValueError):
                raise CryptoError(f"ledger-cli {command}: output is not valid JSON") from None
        finally:
            os.unlink(tmp)
        if not isinstance(output, dict):
            raise CryptoError(f"ledger-cli {command}: output is not a JSON object")
        return output

    def sign(self, data: bytes) -> bytes:
        output = self._run("sign", data.hex())
        ecdsa = output.get("ecdsa")
        if not isinstance(ecdsa, dict):
            raise CryptoError("ledger-cli output: missing ecdsa signature")
        r = _hex_scalar(ecdsa.get("r"), "r")
        s = _hex_scalar(ecdsa.get("s"), "s")
        return encode_der_signature(r, s)

    def anchor(self) -> Anchor:
        return Anchor(self.did, self.public_key)
