"""Who is asking: the seam between sign-in (auth/) and the pages and API that use it (web/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Role = Literal["viewer", "admin"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "admin")

# Where the auth middleware leaves the principal in the ASGI scope.
SCOPE_KEY: Final = "sitepulse.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in user (by session cookie) or an API token acting for one.

    `csrf` is the session's CSRF token (empty for API tokens, which are not sent by
    browsers and need none).
    """

    username: str
    role: Role
    via: Literal["session", "token"]
    csrf: str = ""
    token_name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        if self.via == "token":
            return f"{self.username} (token {self.token_name})"
        return self.username
