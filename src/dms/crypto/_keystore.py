"""The encrypted keystore: one Ethereum-v3-style JSON file per named key, as the Go DMS writes.

File ``<dir>/<name>.json``; plaintext is the libp2p protobuf of the private key; scrypt derives a
64-byte key, AES-256-CTR encrypts with its first half and SHA3-256 over its second half and the
ciphertext is the MAC. Files are byte-compatible with Go's ``json.MarshalIndent`` output so a Go
DMS and this one can share a user directory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from dms._files import atomic_write
from dms.crypto._keys import PrivateKey
from dms.crypto._protobuf import marshal_private_key, unmarshal_private_key
from dms.errors import CryptoError, InvalidInput, KeystoreError, NotFound

DEFAULT_SCRYPT_N = 2**18
SCRYPT_R = 8
SCRYPT_P = 1
DKLEN = 64
SALT_LEN = 64
IV_LEN = 16
_MAX_SCRYPT_N = 2**20  # refuse files that would make us allocate more than 1 GiB
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"invalid key name {name!r}: use letters, digits, '.', '_' or '-' (max 64)"
        )


def _scrypt(passphrase: str, salt: bytes, *, n: int, r: int, p: int, dklen: int) -> bytes:
    # OpenSSL refuses to run scrypt above maxmem (32 MiB by default); N=2^18 needs 256 MiB.
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    return hashlib.scrypt(
        passphrase.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem
    )


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    ctx = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return ctx.update(data) + ctx.finalize()


def _mac(dk: bytes, ciphertext: bytes) -> bytes:
    return hashlib.sha3_256(dk[32:64] + ciphertext).digest()


def encrypt_key(name: str, key: PrivateKey, passphrase: str, scrypt_n: int) -> bytes:
    """The keystore file bytes for ``key`` (Go ``json.MarshalIndent``, 2 spaces, no newline)."""
    salt = secrets.token_bytes(SALT_LEN)
    iv = secrets.token_bytes(IV_LEN)
    dk = _scrypt(passphrase, salt, n=scrypt_n, r=SCRYPT_R, p=SCRYPT_P, dklen=DKLEN)
    ciphertext = _aes_ctr(dk[:32], iv, marshal_private_key(key))
    doc = {
        "id": name,
        "crypto": {
            "cipher": "aes-256-ctr",
            "ciphertext": ciphertext.hex(),
            "cipherparams": {"iv": iv.hex()},
            "kdf": "scrypt",
            "kdfparams": {
                "n": scrypt_n,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
                "dklen": DKLEN,
                "salt": salt.hex(),
            },
            "mac": _mac(dk, ciphertext).hex(),
        },
        "version": 3,
    }
    # Go escapes <, > and & in strings; key names cannot contain them, hex never does.
    return json.dumps(doc, indent=2).encode()


def _field(obj: Any, key: str, kind: type) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"field {key!r} has the wrong type")
    return value


def decrypt_key(blob: bytes, passphrase: str, name: str, path: Path) -> PrivateKey:
    """Check the MAC, then decrypt and parse; nothing is decrypted under a wrong passphrase."""
    corrupt = f"corrupt keystore file {path}"
    try:
        doc = json.loads(blob)
        if _field(doc, "version", int) != 3:
            raise ValueError("unsupported version")
        crypto = _field(doc, "crypto", dict)
        if _field(crypto, "cipher", str) != "aes-256-ctr":
            raise ValueError("unsupported cipher")
        ciphertext = bytes.fromhex(_field(crypto, "ciphertext", str))
        iv = bytes.fromhex(_field(_field(crypto, "cipherparams", dict), "iv", str))
        params = _field(crypto, "kdfparams", dict)
        n, r, p = (_field(params, k, int) for k in ("n", "r", "p"))
        dklen = _field(params, "dklen", int)
        salt = bytes.fromhex(_field(params, "salt", str))
        mac = bytes.fromhex(_field(crypto, "mac", str))
        if len(iv) != IV_LEN or dklen < 64 or r < 1 or p < 1 or r * p >= 1 << 30:
            raise ValueError("bad parameters")
        if n < 2 or n > _MAX_SCRYPT_N or n & (n - 1):
            raise ValueError("bad scrypt N")
    except (ValueError, TypeError) as exc:
        raise KeystoreError(f"{corrupt}: {exc}") from None
    dk = _scrypt(passphrase, salt, n=n, r=r, p=p, dklen=dklen)
    if not hmac.compare_digest(_mac(dk, ciphertext), mac):
        raise KeystoreError(f"wrong passphrase for key {name!r}")
    try:
        return unmarshal_private_key(_aes_ctr(dk[:32], iv, ciphertext))
    except CryptoError as exc:
        raise KeystoreError(f"{corrupt}: {exc}") from None


class Keystore:
    """Named private keys, each encrypted under its own passphrase in ``directory``."""

    def __init__(self, directory: Path, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        self.directory = Path(directory)
        self.scrypt_n = scrypt_n

    def path(self, name: str) -> Path:
        """Where the key called ``name`` is stored."""
        _check_name(name)
        return self.directory / f"{name}.json"

    def exists(self, name: str) -> bool:
        """True if a key called ``name`` is stored."""
        return self.path(name).is_file()

    def names(self) -> list[str]:
        """The stored key names, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p.stem for p in self.directory.glob("*.json") if p.is_file() and _NAME_RE.match(p.stem)
        )

    def save(self, name: str, key: PrivateKey, passphrase: str) -> Path:
        """Encrypt and store ``key`` as ``name`` (atomically, mode 0600, dir 0700)."""
        path = self.path(name)
        if not passphrase:
            raise KeystoreError("empty passphrase refused")
        blob = encrypt_key(name, key, passphrase, self.scrypt_n)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(path, blob)
        except OSError as exc:
            raise KeystoreError(f"cannot write key file {path}: {exc.strerror}") from None
        return path

    def load(self, name: str, passphrase: str) -> PrivateKey:
        """Decrypt the key called ``name``."""
        path = self.path(name)
        if not passphrase:
            raise KeystoreError("empty passphrase refused")
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no key named {name!r} in {self.directory}") from None
        except OSError as exc:
            raise KeystoreError(f"cannot read key file {path}: {exc.strerror}") from None
        return decrypt_key(blob, passphrase, name, path)
