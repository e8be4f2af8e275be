"""Encryption of secrets at rest: MultiFernet under FIELD_ENCRYPTION_KEYS, newest key first."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class DecryptionError(Exception):
    """No key in FIELD_ENCRYPTION_KEYS fits a stored value.

    The message names the setting and never holds the ciphertext or any part of the value.
    """


@lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: no key to encrypt with.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe "
            "base64-encoded bytes). Keys are separated by commas, newest first."
        ) from None


def multifernet() -> MultiFernet:
    return _multifernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return multifernet().encrypt(plaintext.encode()).decode("ascii")


NO_KEY_FITS = (
    "A stored secret could not be decrypted with any key in FIELD_ENCRYPTION_KEYS. The key it "
    "was written with is missing: add it back (after the newest key), then run "
    "`python manage.py rotate_encryption_keys`."
)


def decrypt(token: str) -> str:
    try:
        return multifernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        # "from None": the chained exception would carry nothing secret, but a clean
        # message is what an operator needs to act on.
        raise DecryptionError(NO_KEY_FITS) from None


def rotate(token: str) -> str:
    """A stored value encrypted again under the newest key (DecryptionError if no key fits)."""
    try:
        return multifernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise DecryptionError(NO_KEY_FITS) from None
