"""The gateway's Ed25519 signing key: generated on first run, kept in the store (shared by replicas) or a file."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..store import Store, StoreError

log = logging.getLogger("wardgate.identity")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey
    public: Ed25519PublicKey


def public_kid(public: Ed25519PublicKey) -> str:
    """A key's id: derived from the key itself, so a key file needs no name and a kid cannot lie."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]



def _pems(private: Ed25519PrivateKey) -> tuple[str, str]:
    priv = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    pub = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return priv, pub


def _from_pem(pem: str) -> SigningKey:
    private = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError("the signing key is not an Ed25519 key")
    return SigningKey(public_kid(private.public_key()), private, private.public_key())


def key_file(path: Path) -> SigningKey:
    """The Ed25519 key in ``path`` (PEM, PKCS#8), generated there (0600, never overwritten) on first use."""
    if path.exists():
        return _from_pem(path.read_text(encoding="ascii"))
    path.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    priv_pem, _ = _pems(private)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _from_pem(path.read_text(encoding="ascii"))
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(priv_pem)
    return _from_pem(priv_pem)


def public_pem(key: SigningKey) -> str:
    return _pems(key.private)[1]


def load_or_create(store: Store, key_file_path: Path | None) -> SigningKey:
    """The active signing key. A key file wins when configured; otherwise the store keeps it for all replicas."""
    if key_file_path is not None:
        return key_file(key_file_path)
    rows = store.signing_keys()
    if not rows:
        private = Ed25519PrivateKey.generate()
        priv_pem, pub_pem = _pems(private)
        try:
            store.add_signing_key(public_kid(private.public_key()), "EdDSA", priv_pem, pub_pem)
        except StoreError:
            log.info("another replica created the signing key first; using it")
        rows = store.signing_keys()
    return _from_pem(rows[0]["private_pem"])
