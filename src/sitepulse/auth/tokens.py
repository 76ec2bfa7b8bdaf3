"""API tokens for the JSON API: shown once, stored as a hash, revocable."""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any, Final, cast

from sitepulse.auth import audit
from sitepulse.auth.db import AuthDB
from sitepulse.auth.errors import Conflict, InvalidInput, NotFound
from sitepulse.auth.principal import ROLES, Principal, Role
from sitepulse.auth.users import check_role
from sitepulse.clock import iso_ms

TOKEN_PREFIX: Final = "spt_"
# Listings show this many leading characters so people can tell their tokens apart.
DISPLAY_CHARS: Final = 8
TOKEN_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:@-][A-Za-z0-9 _.:@-]{0,63}")
TOUCH_INTERVAL_MS: Final = 60_000
# spt_ + secrets.token_urlsafe(32), which is 43 characters.
_TOKEN: Final = re.compile(r"spt_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listings show it: never the secret, only its first characters."""

    id: int
    name: str
    username: str
    role: Role
    prefix: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        """The JSON API's view of the token."""
        return {
            "id": self.id,
            "name": self.name,
            "username": self.username,
            "role": self.role,
            "prefix": self.prefix,
            "created_at": iso_ms(self.created_at),
            "last_used_at": iso_ms(self.last_used_at),
            "revoked_at": iso_ms(self.revoked_at),
            "active": self.active,
        }


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created; `secret` exists only here, to be shown once."""

    info: TokenInfo
    secret: str


def token_hash(secret: str) -> str:
    # 256 random bits cannot be guessed, so a slow password hash would add nothing but
    # latency on every API call; SHA-256 keeps a stolen database from holding usable tokens.
    return hashlib.sha256(secret.encode()).hexdigest()


def check_token_name(name: str) -> str:
    """The name if valid, else InvalidInput("name", ...)."""
    if not TOKEN_NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            "name",
            f"must be 1-64 of letters, digits, spaces and _ . : @ - (got {name!r})",
        )
    return name


def role_within(role: Role, ceiling: Role) -> bool:
    """Whether `role` grants no more than `ceiling`."""
    return ROLES.index(role) <= ROLES.index(ceiling)


_COLUMNS: Final = "id, name, username, role, prefix, created_at, last_used_at, revoked_at"


def _info(row: tuple[Any, ...]) -> TokenInfo:
    return TokenInfo(
        int(row[0]), row[1], row[2], cast(Role, row[3]), row[4], int(row[5]), row[6], row[7]
    )


class Tokens:
    """Create, list, revoke and verify API tokens."""

    def __init__(self, db: AuthDB, *, touch_interval_ms: int = TOUCH_INTERVAL_MS) -> None:
        self._db = db
        self.touch_interval_ms = touch_interval_ms

    def create(
        self, username: str, name: str, role: str, *, actor: str, address: str = ""
    ) -> NewToken:
        """A new token for an enabled user, with a role no higher than the user's."""
        check_token_name(name)
        checked_role = check_role(role)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._db.clock()
        try:
            with self._db.transaction() as conn:
                owner = conn.execute(
                    "SELECT username, role, disabled FROM users WHERE username = ?", (username,)
                ).fetchone()
                if owner is None:
                    raise NotFound(f"no user {username!r}")
                if owner[2]:
                    raise Conflict(f"user {owner[0]!r} is disabled")
                if not role_within(checked_role, owner[1]):
                    raise InvalidInput(
                        "role", f"cannot exceed the owner's role ({owner[1]}; got {role!r})"
                    )
                cursor = conn.execute(
                    "INSERT INTO api_tokens (name, username, role, token_hash, prefix, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (name, owner[0], checked_role, token_hash(secret), secret[:DISPLAY_CHARS], now),
                )
                token_id = int(cursor.lastrowid or 0)
                audit.record_in(
                    conn,
                    now,
                    actor,
                    audit.TOKEN_CREATE,
                    f"{owner[0]}/{name}",
                    {"id": token_id, "role": checked_role},
                    address,
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"{username!r} already has a live token named {name!r}") from exc
        info = TokenInfo(
            token_id, name, owner[0], checked_role, secret[:DISPLAY_CHARS], now, None, None
        )
        return NewToken(info, secret)

    def get(self, token_id: int) -> TokenInfo | None:
        if not 0 <= token_id < 2**63:  # SQLite's integers: no row has such an id
            return None
        rows = self._db.query(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ?", (token_id,))
        return _info(rows[0]) if rows else None

    def all(self, username: str | None = None, *, include_revoked: bool = True) -> list[TokenInfo]:
        """Tokens (of one user, or everyone's), oldest first."""
        sql = f"SELECT {_COLUMNS} FROM api_tokens WHERE 1 = 1"
        args: list[Any] = []
        if username is not None:
            sql += " AND username = ?"
            args.append(username)
        if not include_revoked:
            sql += " AND revoked_at IS NULL"
        return [_info(row) for row in self._db.query(sql + " ORDER BY id", args)]

    def find(self, name_or_id: str, username: str | None = None) -> TokenInfo:
        """A token by id, or by name among live tokens (of `username` if given)."""
        if name_or_id.isdigit():
            found = self.get(int(name_or_id))
            if found is not None and username in (None, found.username):
                return found
        matches = [t for t in self.all(username, include_revoked=False) if t.name == name_or_id]
        if not matches:
            raise NotFound(f"no live token {name_or_id!r}")
        if len(matches) > 1:
            owners = ", ".join(t.username for t in matches)
            raise Conflict(f"several users have a token {name_or_id!r} ({owners}): name the user")
        return matches[0]

    def revoke(self, token_id: int, *, actor: str, address: str = "") -> TokenInfo:
        """Revoke a token (idempotent: a revoked token stays as it was)."""
        now = self._db.clock()
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ?", (token_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no token with id {token_id}")
            info = _info(row)
            if not info.active:
                return info
            conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (now, token_id))
            audit.record_in(
                conn,
                now,
                actor,
                audit.TOKEN_REVOKE,
                f"{info.username}/{info.name}",
                {"id": token_id},
                address,
            )
        return TokenInfo(
            info.id,
            info.name,
            info.username,
            info.role,
            info.prefix,
            info.created_at,
            info.last_used_at,
            now,
        )

    def verify(self, secret: str) -> Principal | None:
        """The principal a live token acts as, else None (unknown, revoked, owner disabled).

        Its role is the lower of the token's and its owner's current role.
        """
        if not _TOKEN.fullmatch(secret):
            return None
        rows = self._db.query(
            "SELECT t.id, t.name, t.username, t.role, u.role, t.last_used_at"
            " FROM api_tokens AS t JOIN users AS u ON u.username = t.username"
            " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.disabled = 0",
            (token_hash(secret),),
        )
        if not rows:
            return None
        token_id, name, username, role, owner_role, last_used_at = rows[0]
        now = self._db.clock()
        if last_used_at is None or now - last_used_at >= self.touch_interval_ms:
            self._db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, token_id))
        effective = role if role_within(role, owner_role) else owner_role
        return Principal(username, cast(Role, effective), "token", token_name=name)
