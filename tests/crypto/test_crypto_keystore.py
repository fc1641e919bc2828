"""The encrypted keystore: format, permissions, errors."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from dms.crypto import (
    DEFAULT_SCRYPT_N,
    Ed25519PrivateKey,
    Keystore,
    Secp256k1PrivateKey,
    marshal_private_key,
)
from dms.errors import InvalidInput, KeystoreError, NotFound

FAST_N = 2**4


@pytest.fixture
def store(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "key", scrypt_n=FAST_N)


def test_round_trip_and_permissions(store: Keystore) -> None:
    key = Ed25519PrivateKey.generate()
    path = store.save("user", key, "pw")
    assert path == store.directory / "user.json"
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.load("user", "pw").raw() == key.raw()
    assert store.exists("user") and not store.exists("dms")
    assert list(store.directory.iterdir()) == [path]  # no temp files left behind


def test_secp256k1_keys_are_stored_too(store: Keystore) -> None:
    key = Secp256k1PrivateKey.generate()
    store.save("s", key, "pw")
    assert store.load("s", "pw").public_key == key.public_key


def test_file_layout_matches_go_marshal_indent(store: Keystore) -> None:
    store.save("dms", Ed25519PrivateKey.generate(), "pw")
    text = (store.directory / "dms.json").read_text()
    doc = json.loads(text)
    c = doc["crypto"]
    expected = (
        "{\n"
        '  "id": "dms",\n'
        '  "crypto": {\n'
        '    "cipher": "aes-256-ctr",\n'
        f'    "ciphertext": "{c["ciphertext"]}",\n'
        '    "cipherparams": {\n'
        f'      "iv": "{c["cipherparams"]["iv"]}"\n'
        "    },\n"
        '    "kdf": "scrypt",\n'
        '    "kdfparams": {\n'
        f'      "n": {FAST_N},\n'
        '      "r": 8,\n'
        '      "p": 1,\n'
        '      "dklen": 64,\n'
        f'      "salt": "{c["kdfparams"]["salt"]}"\n'
        "    },\n"
        f'    "mac": "{c["mac"]}"\n'
        "  },\n"
        '  "version": 3\n'
        "}"
    )
    assert text == expected
    assert len(bytes.fromhex(c["kdfparams"]["salt"])) == 64
    assert len(bytes.fromhex(c["cipherparams"]["iv"])) == 16


def test_crypto_is_scrypt_aes_ctr_sha3_mac(store: Keystore) -> None:
    """Decrypt a file independently of the keystore code, as the Go DMS would."""
    key = Ed25519PrivateKey.generate()
    store.save("k", key, "secret")
    c = json.loads((store.directory / "k.json").read_text())["crypto"]
    p = c["kdfparams"]
    dk = hashlib.scrypt(b"secret", salt=bytes.fromhex(p["salt"]), n=p["n"], r=8, p=1, dklen=64)
    ct = bytes.fromhex(c["ciphertext"])
    assert hashlib.sha3_256(dk[32:] + ct).hexdigest() == c["mac"]
    dec = Cipher(algorithms.AES(dk[:32]), modes.CTR(bytes.fromhex(c["cipherparams"]["iv"])))
    d = dec.decryptor()
    assert d.update(ct) + d.finalize() == marshal_private_key(key)


def test_wrong_passphrase(store: Keystore) -> None:
    store.save("user", Ed25519PrivateKey.generate(), "right")
    before = (store.directory / "user.json").read_bytes()
    with pytest.raises(KeystoreError, match="wrong passphrase for key 'user'"):
        store.load("user", "wrong")
    assert (store.directory / "user.json").read_bytes() == before


def test_empty_passphrase_refused(store: Keystore) -> None:
    with pytest.raises(KeystoreError, match="empty passphrase"):
        store.save("user", Ed25519PrivateKey.generate(), "")
    assert not store.exists("user")
    store.save("user", Ed25519PrivateKey.generate(), "x")
    with pytest.raises(KeystoreError, match="empty passphrase"):
        store.load("user", "")


def test_missing_key_is_not_found(store: Keystore) -> None:
    with pytest.raises(NotFound):
        store.load("ghost", "pw")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: "not json",
        lambda d: json.dumps({**d, "version": 1}),
        lambda d: json.dumps({**d, "crypto": {**d["crypto"], "cipher": "aes-128-ctr"}}),
        lambda d: json.dumps({**d, "crypto": {**d["crypto"], "ciphertext": "zz"}}),
        lambda d: json.dumps({**d, "crypto": {**d["crypto"], "kdfparams": {}}}),
        lambda d: json.dumps(
            {**d, "crypto": {**d["crypto"], "kdfparams": {**d["crypto"]["kdfparams"], "n": 3}}}
        ),
        lambda d: json.dumps([1, 2]),
    ],
)
def test_corrupt_file_gives_one_line_error_naming_it(store: Keystore, mutate: object) -> None:
    store.save("user", Ed25519PrivateKey.generate(), "pw")
    path = store.directory / "user.json"
    doc = json.loads(path.read_text())
    path.write_text(mutate(doc))  # type: ignore[operator]
    with pytest.raises(KeystoreError) as info:
        store.load("user", "pw")
    message = str(info.value)
    assert "corrupt keystore file" in message and str(path) in message
    assert "\n" not in message


def test_tampered_ciphertext_fails_the_mac(store: Keystore) -> None:
    store.save("user", Ed25519PrivateKey.generate(), "pw")
    path = store.directory / "user.json"
    doc = json.loads(path.read_text())
    ct = bytearray(bytes.fromhex(doc["crypto"]["ciphertext"]))
    ct[0] ^= 1
    doc["crypto"]["ciphertext"] = ct.hex()
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        store.load("user", "pw")


def test_names(store: Keystore) -> None:
    assert store.names() == []
    for name in ["user", "dms", "alice"]:
        store.save(name, Ed25519PrivateKey.generate(), "pw")
    (store.directory / "notes.txt").write_text("x")
    assert store.names() == ["alice", "dms", "user"]


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "x" * 65])
def test_bad_names_are_refused(store: Keystore, name: str) -> None:
    with pytest.raises(InvalidInput):
        store.save(name, Ed25519PrivateKey.generate(), "pw")


def test_real_default_parameters(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    assert store.scrypt_n == DEFAULT_SCRYPT_N == 2**18
    key = Ed25519PrivateKey.generate()
    store.save("dms", key, "pw")
    doc = json.loads((tmp_path / "dms.json").read_text())
    assert doc["crypto"]["kdfparams"]["n"] == 262144
    assert store.load("dms", "pw").raw() == key.raw()
    # n/r/p come from the file, not the constructor
    assert Keystore(tmp_path, scrypt_n=FAST_N).load("dms", "pw").raw() == key.raw()
