"""The auth boundary's exceptions; bad input reuses `sitepulse.errors.InvalidInput`."""

from __future__ import annotations

from sitepulse.errors import InvalidInput, SitepulseError

__all__ = ["AuthError", "Conflict", "InvalidInput", "NotFound"]


class AuthError(SitepulseError):
    """Base of the auth package's errors."""


class NotFound(AuthError):
    """No such user or token."""


class Conflict(AuthError):
    """The change clashes with what exists (a taken name, the last admin)."""
