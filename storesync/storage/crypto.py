"""Encryption of store credentials at rest (Fernet: AES-128-CBC with an HMAC).

The key comes from ``STORESYNC_SECRET_KEY`` (any string; it is stretched to a Fernet key) or,
when unset, from a key file generated in the data directory on first use with mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.fernet import Fernet, InvalidToken

from storesync.errors import StoresyncError
from storesync.settings import Settings


class SecretBox:
    """Encrypts and decrypts short secrets such as access tokens."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secret_key is not None:
            return cls(_stretch(settings.secret_key.get_secret_value()))
        return cls(_load_or_create_key_file(settings))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise StoresyncError(
                "stored credentials cannot be decrypted: STORESYNC_SECRET_KEY (or the key file) "
                "differs from the one they were saved with"
            ) from None


def _stretch(secret: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())


def _load_or_create_key_file(settings: Settings) -> bytes:
    path = settings.key_file
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        # O_EXCL: if another process creates it first, use theirs rather than overwrite it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key
