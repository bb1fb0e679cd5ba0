"""Encrypting stored secrets (broker passwords) with keys derived from the secret key.

Each entry of `CONVEYOR_SECRET_KEY` (comma-separated) yields one Fernet key through
HKDF; the first encrypts and every one decrypts, so keys rotate by prepending a new
one and running `rotate()` over the stored tokens.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from conveyor.exceptions import ConfigurationError

_INFO = b"conveyor stored secrets v1"


def _derive(secret_key: str) -> Fernet:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))


class SecretBox:
    def __init__(self, secret_keys: Sequence[str]) -> None:
        if not secret_keys:
            raise ConfigurationError("CONVEYOR_SECRET_KEY is empty")
        self._fernet = MultiFernet([_derive(k) for k in secret_keys])

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "a stored secret cannot be decrypted: was CONVEYOR_SECRET_KEY changed? "
                "Add the old key after the new one (comma-separated) to rotate."
            ) from exc

    def rotate(self, token: str) -> str:
        """The same secret, re-encrypted with the first (newest) key."""
        return self._fernet.rotate(token.encode()).decode()
