"""A stand-in for NuNet's ``ledger-cli`` that signs like the Ledger Ethereum app.

It holds a real secp256k1 key (hex in ``FAKE_LEDGER_SECRET``) and answers ``key`` and ``sign``
with the JSON files the real tool writes, so the Ledger code path runs for real. ``FAKE_LEDGER_LOG``
records each argv; ``FAKE_LEDGER_MODE`` = ``fail`` / ``badjson`` simulates a broken device.
"""

from __future__ import annotations

import sys
from pathlib import Path

FAKE_CLI = """#!{python}
import json, os, sys
from coincurve import PrivateKey
from Crypto.Hash import keccak

args = sys.argv[1:]
log = os.environ.get("FAKE_LEDGER_LOG")
if log:
    with open(log, "a") as f:
        f.write(json.dumps(args) + "\\n")
mode = os.environ.get("FAKE_LEDGER_MODE", "ok")
if mode == "fail":
    sys.exit(3)
cmd, out, acct = args[0], args[args.index("-o") + 1], int(args[args.index("-a") + 1])
key = PrivateKey(bytes.fromhex(os.environ["FAKE_LEDGER_SECRET"]))
if mode == "badjson":
    open(out, "w").write("{{not json")
    sys.exit(0)
if cmd == "key":
    # A real Ledger returns the 65-byte uncompressed key.
    pub = key.public_key.format(compressed=False)
    result = {{"key": pub.hex(), "address": "0x" + "00" * 20}}
elif cmd == "sign":
    data = bytes.fromhex(args[-1])
    h = keccak.new(digest_bits=256)
    h.update(b"\\x19Ethereum Signed Message:\\n" + str(len(data)).encode() + data)
    rec = key.sign_recoverable(h.digest(), hasher=None)
    result = {{"ecdsa": {{"v": rec[64] + 27, "r": rec[:32].hex(), "s": rec[32:64].hex()}}}}
else:
    sys.exit(2)
with open(out, "w") as f:
    json.dump(result, f)
"""


def write_fake_ledger_cli(bin_dir: Path) -> Path:
    """Write an executable ``ledger-cli`` into ``bin_dir`` (put it first on PATH to use it)."""
    script = bin_dir / "ledger-cli"
    script.write_text(FAKE_CLI.format(python=sys.executable))
    script.chmod(0o755)
    return script
