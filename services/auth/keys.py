"""Ed25519 signing keys for access tokens.

Keys are PEM files in a directory (default: <data dir>/keys, created on first run with one
fresh key; never committed). Every key there is published in the JWKS, so tokens signed by an
older key keep verifying while it is listed; the newest file (by name: keys are named by
creation time) signs new tokens. Rotation = add a key (`exness auth --new-key`), wait one
access-token lifetime, remove the old file.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.utils import base64url_encode

from kit.files import write_atomic


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def jwk(self) -> dict[str, str]:
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64url_encode(raw).decode(),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }


def thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint: a key id derived from the key itself, stable across restarts."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": base64url_encode(raw).decode()},
        separators=(",", ":"),
        sort_keys=True,
    )
    return base64url_encode(hashlib.sha256(canonical.encode()).digest()).decode()[:16]


class Keyring:
    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self.keys = keys  # oldest first; the last one signs

    @property
    def signer(self) -> SigningKey:
        return self.keys[-1]

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {key.kid: key.public_key for key in self.keys}

    def jwks_json(self) -> bytes:
        return json.dumps(
            {"keys": [key.jwk() for key in self.keys]}, separators=(",", ":")
        ).encode()

    @classmethod
    def load(cls, path: Path, *, create: bool = True) -> Keyring:
        """Loads every `*.pem` under `path` (a directory, or one file); with `create`, makes a
        first key when the directory has none."""
        if path.is_file():
            files = [path]
        else:
            files = sorted(path.glob("*.pem")) if path.exists() else []
            if not files and create:
                files = [new_key_file(path)]
        if not files:
            raise FileNotFoundError(f"no signing keys (*.pem) at {path}")
        return cls([_read_key(file) for file in files])


def _read_key(file: Path) -> SigningKey:
    key = serialization.load_pem_private_key(file.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{file} is not an Ed25519 private key")
    return SigningKey(kid=thumbprint(key.public_key()), private_key=key)


def new_key_file(directory: Path) -> Path:
    """Writes a fresh Ed25519 key, readable by its owner only; the name orders keys by age."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = (
        directory
        / f"ed25519-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{thumbprint(key.public_key())}.pem"
    )
    write_atomic(path, pem, mode=0o600)
    return path
