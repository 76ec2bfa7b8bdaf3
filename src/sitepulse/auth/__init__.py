"""Sign-in and roles: users, sessions, API tokens, CSRF, rate limits and the audit log.

The data lives in `auth.sqlite3` in the data folder (see db.py for why SQLite).
"""

from __future__ import annotations

from sitepulse.auth import audit
from sitepulse.auth.access import ACCESS_HANDLERS, AccessDenied, principal_of, require_role
from sitepulse.auth.audit import AuditEntry, AuditLog
from sitepulse.auth.db import AUTH_DB_FILE, AuthDB, AuthDBError, auth_db_path
from sitepulse.auth.errors import AuthError, Conflict, InvalidInput, NotFound
from sitepulse.auth.middleware import (
    CONTENT_SECURITY_POLICY,
    CSRF_FIELD,
    AuthMiddleware,
    default_is_public,
)
from sitepulse.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from sitepulse.auth.principal import ROLES, SCOPE_KEY, Principal, Role
from sitepulse.auth.ratelimit import SignInLimiter
from sitepulse.auth.routes import auth_routes
from sitepulse.auth.sessions import SESSION_COOKIE, Sessions
from sitepulse.auth.token_api import Forbidden, create_token, revoke_token, token_routes
from sitepulse.auth.tokens import NewToken, TokenInfo, Tokens
from sitepulse.auth.users import User, Users

__all__ = [
    "ACCESS_HANDLERS",
    "AUTH_DB_FILE",
    "CONTENT_SECURITY_POLICY",
    "CSRF_FIELD",
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "SCOPE_KEY",
    "SESSION_COOKIE",
    "AccessDenied",
    "AuditEntry",
    "AuditLog",
    "AuthDB",
    "AuthDBError",
    "AuthError",
    "AuthMiddleware",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NewToken",
    "NotFound",
    "Principal",
    "Role",
    "Sessions",
    "SignInLimiter",
    "TokenInfo",
    "Tokens",
    "User",
    "Users",
    "audit",
    "auth_db_path",
    "auth_routes",
    "create_token",
    "default_is_public",
    "hash_password",
    "principal_of",
    "require_role",
    "revoke_token",
    "token_routes",
    "verify_password",
]
