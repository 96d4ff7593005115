"""Ed25519 signing keys for access tokens.

Keys are PEM files in a directory (default: <data dir>/keys, created on first run with one
fresh key; never committed). Every key there is published in the JWKS, so tokens signed by an
older key keep verifying while it is listed. New tokens are signed by the newest key (by name:
keys are named by creation time) that has been published for longer than any verifier keeps a
JWKS (the publish delay): a verifier that fetched the keys just before a new one was added must
never meet a token signed by it (Envoy keeps its copy for its cache duration and does not
refetch on an unknown key id). Until a newer key has been out that long, the older one signs.

Rotation = add a key (`exness auth --new-key`) and restart Auth; the new key signs once the
publish delay has passed (after the file's modification time); remove the old file one
access-token lifetime after that.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.utils import base64url_encode

from kit.files import write_atomic

# Longer than the edge's JWKS cache duration (300 s, gateway/config.py jwks_cache_s); the
# EXNESS_KEY_PUBLISH_DELAY setting.
KEY_PUBLISH_DELAY_S = 330.0


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    created_at: float = 0.0  # seconds since the epoch: when its file was written

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
    def __init__(
        self,
        keys: list[SigningKey],
        publish_delay_s: float = KEY_PUBLISH_DELAY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self.keys = keys  # oldest first
        self.publish_delay_s = publish_delay_s
        self._clock = clock

    @property
    def signer(self) -> SigningKey:
        """The newest key published for longer than the delay; while none is (a first start),
        the oldest: no verifier can have fetched the keys before it was listed."""
        published_before = self._clock() - self.publish_delay_s
        ready = [key for key in self.keys if key.created_at <= published_before]
        return ready[-1] if ready else self.keys[0]

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {key.kid: key.public_key for key in self.keys}

    def jwks_json(self) -> bytes:
        return json.dumps(
            {"keys": [key.jwk() for key in self.keys]}, separators=(",", ":")
        ).encode()

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        create: bool = True,
        publish_delay_s: float = KEY_PUBLISH_DELAY_S,
        clock: Callable[[], float] = time.time,
    ) -> Keyring:
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
        return cls([_read_key(file) for file in files], publish_delay_s, clock)


def _read_key(file: Path) -> SigningKey:
    key = serialization.load_pem_private_key(file.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{file} is not an Ed25519 private key")
    return SigningKey(
        kid=thumbprint(key.public_key()), private_key=key, created_at=file.stat().st_mtime
    )


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
