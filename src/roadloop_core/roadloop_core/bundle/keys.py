"""Ed25519 key pairs for signing bundles (PEM files; the private key is written 0600)."""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from roadloop_core.errors import BundleError
from roadloop_core.fsio import atomic_write_bytes

__all__ = ["generate_keypair", "load_private_key", "load_public_key"]


def generate_keypair(out_dir: Path, name: str = "signing", *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write `<name>.key` (private, PEM PKCS8) and `<name>.pub` (public, PEM) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    if not overwrite and (priv_path.exists() or pub_path.exists()):
        raise BundleError(f"{priv_path}: a key named '{name}' already exists (use --overwrite to replace it)")
    key = Ed25519PrivateKey.generate()
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    priv = key.private_bytes(pem, pkcs8, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write_bytes(priv_path, priv, mode=0o600)
    atomic_write_bytes(pub_path, pub, mode=0o644)
    return priv_path, pub_path


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise BundleError(f"{path}: cannot read {what}: {err.strerror}") from err


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, "private key"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise BundleError(f"{path}: not a PEM private key: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read(path, "public key"))
    except (ValueError, UnsupportedAlgorithm) as err:
        raise BundleError(f"{path}: not a PEM public key: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path}: not an Ed25519 public key")
    return key
