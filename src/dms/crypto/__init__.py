"""Keys and signatures: Ed25519, secp256k1, Eth personal-sign; libp2p key encodings."""

from dms.crypto._cardano import CardanoPublicKey
from dms.crypto._der import SECP256K1_N, encode_der_signature
from dms.crypto._eth import EthPrivateKey, EthPublicKey, eth_personal_digest
from dms.crypto._id import ID
from dms.crypto._keys import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    KeyType,
    PrivateKey,
    PublicKey,
)
from dms.crypto._keystore import DEFAULT_SCRYPT_N, Keystore
from dms.crypto._passphrase import PASSPHRASE_ENV, read_passphrase
from dms.crypto._peer_id import PeerID, extract_public_key, peer_id_from_public_key
from dms.crypto._protobuf import (
    marshal_private_key,
    marshal_public_key,
    public_key_from_raw,
    unmarshal_private_key,
    unmarshal_public_key,
)
from dms.crypto._secp256k1 import Secp256k1PrivateKey, Secp256k1PublicKey
from dms.crypto._varint import decode_uvarint, encode_uvarint

__all__ = [
    "DEFAULT_SCRYPT_N",
    "ID",
    "PASSPHRASE_ENV",
    "SECP256K1_N",
    "CardanoPublicKey",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "EthPrivateKey",
    "EthPublicKey",
    "KeyType",
    "Keystore",
    "PeerID",
    "PrivateKey",
    "PublicKey",
    "Secp256k1PrivateKey",
    "Secp256k1PublicKey",
    "decode_uvarint",
    "encode_der_signature",
    "encode_uvarint",
    "eth_personal_digest",
    "extract_public_key",
    "marshal_private_key",
    "marshal_public_key",
    "peer_id_from_public_key",
    "public_key_from_raw",
    "read_passphrase",
    "unmarshal_private_key",
    "unmarshal_public_key",
]
