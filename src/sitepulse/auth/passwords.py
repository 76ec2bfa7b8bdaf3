"""Password hashing with argon2id, and the password policy."""

from __future__ import annotations

import secrets
import threading
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sitepulse.errors import InvalidInput

MIN_PASSWORD_LENGTH: Final = 10
# argon2 cost does not grow with length; the cap only keeps requests and rows sane.
MAX_PASSWORD_LENGTH: Final = 1024

# argon2-cffi's defaults follow RFC 9106's low-memory profile (t=3, m=64 MiB, p=4).
DEFAULT_HASHER: Final = PasswordHasher()

_dummies: dict[tuple[int, int, int, int, int], str] = {}
_dummies_lock = threading.Lock()


def check_password(password: str) -> None:
    """Raise InvalidInput("password", ...) unless the password meets the policy."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "password",
            f"must be at least {MIN_PASSWORD_LENGTH} characters (got {len(password)})",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("password", f"must be at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """The argon2id hash of a password that meets the policy."""
    check_password(password)
    return hasher.hash(password)


def verify_password(
    stored_hash: str | None, password: str, hasher: PasswordHasher = DEFAULT_HASHER
) -> tuple[bool, str | None]:
    """(matches, new hash if the stored one used other parameters, else None).

    With no stored hash (unknown user) the password is checked against a dummy hash of
    the same cost, so the time taken does not tell which usernames exist.
    """
    if stored_hash is None or len(password) > MAX_PASSWORD_LENGTH:
        _check(_dummy_hash(hasher), password[:MAX_PASSWORD_LENGTH], hasher)
        return False, None
    if not _check(stored_hash, password, hasher):
        return False, None
    if hasher.check_needs_rehash(stored_hash):
        return True, hasher.hash(password)
    return True, None


def _check(stored_hash: str, password: str, hasher: PasswordHasher) -> bool:
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _dummy_hash(hasher: PasswordHasher) -> str:
    key = (
        hasher.time_cost,
        hasher.memory_cost,
        hasher.parallelism,
        hasher.hash_len,
        hasher.salt_len,
    )
    with _dummies_lock:
        found = _dummies.get(key)
        if found is None:
            found = _dummies[key] = hasher.hash(secrets.token_urlsafe(24))
        return found
