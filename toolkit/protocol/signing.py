"""Ed25519 signatures of slot blobs: the service signs each blob it sends, a client verifies with the public key.

The key pair is made once (`cli.py keys signing-key --out FILE`: a PKCS#8 PEM private key, mode 0600); `serve
--signing-key FILE` signs every slot blob and adds `signing` (algorithm and public key) to the manifest it serves.
The signature travels in the X-Blob-Signature header (base64 of the 64 signature bytes, over the whole body);
the public key is base64 of its DER SubjectPublicKeyInfo (RFC 8410: 44 bytes, the last 32 the raw key), the form
the JDK's KeyFactory reads directly. Verifying needs the `cryptography` package (part of the `serve` extras).
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

from toolkit.artifacts import read_small_file
from toolkit.errors import BlobError, ConfigError

ALGORITHM = "ed25519"
SIGNATURE_HEADER = "X-Blob-Signature"
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # DER SubjectPublicKeyInfo of an Ed25519 key, before it


def new_signing_key(path: Path) -> str:
    """Write a new private key to `path` (0600; an existing file is never replaced); return the public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise ConfigError(f"{path} exists; a signing key is never overwritten (choose another --out)") from err
    except OSError as err:
        raise ConfigError(f"{path}: cannot write the signing key ({err.strerror})") from err
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return public_key_text(key)


def load_signing_key(path: str | Path) -> Any:
    """The Ed25519 private key in a PEM file; ConfigError naming the file when it is not one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(read_small_file(Path(path)), password=None)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the signing key ({err.strerror})") from err
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path}: not an unencrypted PEM private key (make one with `cli.py keys signing-key`)") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: a {type(key).__name__}, not an Ed25519 key")
    return key


def public_key_text(private_key: Any) -> str:
    """Base64 of the DER SubjectPublicKeyInfo of the key's public half (what the manifest carries)."""
    from cryptography.hazmat.primitives import serialization

    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sign(private_key: Any, blob: bytes) -> str:
    """Base64 of the Ed25519 signature of `blob`."""
    return base64.b64encode(private_key.sign(blob)).decode()


def verify(public_key: str, blob: bytes, signature: str) -> None:
    """BlobError unless `signature` (base64) is the signature of `blob` by `public_key` (base64 DER SPKI)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        der = base64.b64decode(public_key, validate=True)
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BlobError(f"slot blob signature or public key is not base64 ({err})") from err
    if len(der) != len(SPKI_PREFIX) + 32 or not der.startswith(SPKI_PREFIX):
        raise BlobError("the manifest's signing public key is not an Ed25519 SubjectPublicKeyInfo")
    if len(raw_signature) != 64:
        raise BlobError(f"slot blob signature has {len(raw_signature)} bytes, Ed25519 signatures have 64")
    try:
        Ed25519PublicKey.from_public_bytes(der[len(SPKI_PREFIX):]).verify(raw_signature, blob)
    except InvalidSignature as err:
        raise BlobError("slot blob signature does not match: the blob was changed after the service signed it") from err
