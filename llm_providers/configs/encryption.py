"""Provider keys encrypted at rest, failing closed when a value cannot be decrypted.

django-encrypted-model-fields returns the ciphertext itself when decryption fails, so a
wrong or lost FIELD_ENCRYPTION_KEY would quietly turn ciphertext into "the key". Here an
undecryptable value becomes an `UndecryptableSecret` marker instead: it keeps the
ciphertext so that saving the row again does not destroy it, it can never be turned into
a string by accident, and the service reports it as a `configuration` error.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from encrypted_model_fields.fields import EncryptedCharField


class UndecryptableKeyError(Exception):
    """A stored secret cannot be decrypted with any configured FIELD_ENCRYPTION_KEY."""

    def __init__(self, message="The stored key cannot be decrypted with FIELD_ENCRYPTION_KEY."):
        super().__init__(message)


class UndecryptableSecret:
    """Stands in for a secret whose ciphertext no configured key opens."""

    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str):
        self.ciphertext = ciphertext

    def __str__(self):
        raise UndecryptableKeyError()

    def __repr__(self):
        return "<UndecryptableSecret>"

    def __eq__(self, other):
        return isinstance(other, UndecryptableSecret) and other.ciphertext == self.ciphertext

    def __hash__(self):
        return hash(self.ciphertext)

    def __bool__(self):
        return True


def _configured_keys() -> tuple[str, ...]:
    keys = settings.FIELD_ENCRYPTION_KEY
    if isinstance(keys, str):
        keys = [k for k in keys.split(",")]
    keys = tuple(k.strip() for k in keys if k and k.strip())
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY must hold at least one Fernet key.")
    return keys


@lru_cache(maxsize=8)
def _crypter_for(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError) as exc:
        # The message names the problem, never the key material.
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEY is not valid: {type(exc).__name__}"
        ) from None


def get_crypter() -> MultiFernet:
    """The MultiFernet for the current settings (newest key first); read at call time."""
    return _crypter_for(_configured_keys())


def encrypt_str(value: str) -> str:
    return get_crypter().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt_str(token: str) -> str:
    """Decrypt or raise InvalidToken."""
    return get_crypter().decrypt(token.encode("ascii")).decode("utf-8")


def rotate_token(token: str) -> str:
    """Re-encrypt `token` under the newest key (raises InvalidToken when no key opens it)."""
    return get_crypter().rotate(token.encode("ascii")).decode("ascii")


class FailClosedEncryptedCharField(EncryptedCharField):
    """An EncryptedCharField that never passes ciphertext off as plaintext.

    The empty string is stored as-is (a `local` provider may have no key).
    """

    def to_python(self, value):
        if value is None or value == "" or isinstance(value, UndecryptableSecret):
            return value
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        return value

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        try:
            return decrypt_str(value)
        except (InvalidToken, UnicodeError):
            return UndecryptableSecret(value)

    def get_db_prep_save(self, value, connection):
        if value is None or value == "":
            return value
        if isinstance(value, UndecryptableSecret):
            return value.ciphertext
        return encrypt_str(str(value))

    def value_to_string(self, obj):
        # Serialisation (dumpdata) never exposes the plaintext.
        return ""
