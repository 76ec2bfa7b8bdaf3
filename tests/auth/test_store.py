"""The auth database: schema, users, passwords, sessions, tokens and the audit log."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from argon2 import PasswordHasher, extract_parameters

from sitepulse.auth import (
    AuditLog,
    AuthDB,
    AuthDBError,
    Conflict,
    InvalidInput,
    NotFound,
    Sessions,
    Tokens,
    Users,
    audit,
    hash_password,
    verify_password,
)
from sitepulse.auth.db import MIGRATIONS
from sitepulse.auth.passwords import DEFAULT_HASHER, _dummy_hash
from sitepulse.clock import ManualClock
from tests.auth.conftest import FAST_HASHER, PASSWORD, START_MS

OLD_HASHER = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_MS)


@pytest.fixture
def db(tmp_path: Path, clock: ManualClock) -> AuthDB:
    return AuthDB.in_folder(tmp_path / "data", clock=clock)


@pytest.fixture
def users(db: AuthDB) -> Users:
    return Users(db, hasher=FAST_HASHER)


def test_database_is_private_versioned_and_reopens(tmp_path: Path) -> None:
    first = AuthDB.in_folder(tmp_path / "data")
    assert first.schema_version == len(MIGRATIONS)
    assert first.query("PRAGMA journal_mode") == [("wal",)]
    Users(first, hasher=FAST_HASHER).add("alice", PASSWORD, "admin", actor="test")
    first.close()
    path = tmp_path / "data" / "auth.sqlite3"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = AuthDB.open(path)
    assert [u.username for u in Users(again).all()] == ["alice"]
    again.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "auth.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(AuthDBError, match="newer than this sitepulse"):
        AuthDB.open(path)


def test_threads_share_the_connection_safely(db: AuthDB, users: Users) -> None:
    users.add("alice", PASSWORD, "admin", actor="test")
    log = AuditLog(db)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                log.record(f"t{n}", "test.write", str(i))
                assert users.get("alice") is not None
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(log.recent(1000, action="test.write")) == 200


@pytest.mark.parametrize(
    ("username", "password", "role", "field"),
    [
        ("alice", PASSWORD, "admin", None),
        ("a.b-c_d@example.com", PASSWORD, "viewer", None),
        ("x" * 64, PASSWORD, "viewer", None),
        ("", PASSWORD, "viewer", "username"),
        ("x" * 65, PASSWORD, "viewer", "username"),
        ("al ice", PASSWORD, "viewer", "username"),
        ("alice/..", PASSWORD, "viewer", "username"),
        ("ålice", PASSWORD, "viewer", "username"),
        ("alice", "short", "viewer", "password"),
        ("alice", "123456789", "viewer", "password"),
        ("alice", "1234567890", "viewer", None),
        ("alice", PASSWORD, "owner", "role"),
    ],
)
def test_user_input_is_checked(
    users: Users, username: str, password: str, role: str, field: str | None
) -> None:
    if field is None:
        assert users.add(username, password, role, actor="test").username == username
        return
    with pytest.raises(InvalidInput) as caught:
        users.add(username, password, role, actor="test")
    assert caught.value.field == field
    assert users.all() == []


def test_password_policy_message_is_clear() -> None:
    with pytest.raises(InvalidInput, match=r"at least 10 characters \(got 5\)"):
        hash_password("short")


def test_usernames_are_unique_regardless_of_case(users: Users) -> None:
    users.add("Alice", PASSWORD, "viewer", actor="test")
    with pytest.raises(Conflict):
        users.add("alice", PASSWORD, "viewer", actor="test")
    # Sign-in accepts any case and answers with the stored spelling.
    found = users.authenticate("ALICE", PASSWORD)
    assert found is not None and found.username == "Alice"


def test_passwords_are_argon2id_and_verified() -> None:
    stored = hash_password(PASSWORD, FAST_HASHER)
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, PASSWORD, FAST_HASHER) == (True, None)
    assert verify_password(stored, PASSWORD + "x", FAST_HASHER) == (False, None)
    assert verify_password(stored, "x" * 5000, FAST_HASHER) == (False, None)
    assert verify_password(None, PASSWORD, FAST_HASHER) == (False, None)
    # The stand-in for unknown users costs what a real check costs.
    assert extract_parameters(_dummy_hash(FAST_HASHER)) == extract_parameters(stored)
    assert extract_parameters(_dummy_hash(DEFAULT_HASHER)).memory_cost == 65536


def test_sign_in_upgrades_hashes_made_with_old_parameters(db: AuthDB) -> None:
    Users(db, hasher=OLD_HASHER).add("alice", PASSWORD, "viewer", actor="test")
    before = db.query("SELECT password_hash FROM users")[0][0]
    assert Users(db, hasher=FAST_HASHER).authenticate("alice", "wrong password!") is None
    assert db.query("SELECT password_hash FROM users")[0][0] == before
    assert Users(db, hasher=FAST_HASHER).authenticate("alice", PASSWORD) is not None
    after = db.query("SELECT password_hash FROM users")[0][0]
    assert extract_parameters(after) == extract_parameters(hash_password(PASSWORD, FAST_HASHER))
    assert Users(db, hasher=FAST_HASHER).authenticate("alice", PASSWORD) is not None


def test_user_changes_end_sessions_and_keep_an_admin(db: AuthDB, users: Users) -> None:
    sessions = Sessions(db)
    users.add("root", PASSWORD, "admin", actor="test")
    users.add("vera", PASSWORD, "viewer", actor="test")
    changes: list[tuple[Callable[[], object], bool]] = [
        (lambda: users.set_role("vera", "admin", actor="root"), False),
        (lambda: users.set_password("vera", PASSWORD + "2", actor="root"), True),
        (lambda: users.set_disabled("vera", True, actor="root"), True),
    ]
    for change, ends in changes:
        users.set_disabled("vera", False, actor="root")
        cookie = sessions.create("vera").cookie_value
        change()
        assert (sessions.lookup(cookie) is None) is ends
    with pytest.raises(LookupError):
        sessions.create("vera")  # disabled
    users.set_disabled("vera", False, actor="root")
    users.set_role("vera", "viewer", actor="root")
    refusals: list[Callable[[], object]] = [
        lambda: users.remove("root", actor="test"),
        lambda: users.set_role("root", "viewer", actor="test"),
        lambda: users.set_disabled("root", True, actor="test"),
    ]
    for refused in refusals:
        with pytest.raises(Conflict, match="last enabled admin"):
            refused()
    with pytest.raises(NotFound):
        users.remove("nobody", actor="test")
    cookie = sessions.create("vera").cookie_value
    users.remove("vera", actor="root")
    assert sessions.lookup(cookie) is None and users.get("vera") is None


def test_session_cookie_values_are_checked_before_lookup(db: AuthDB, users: Users) -> None:
    users.add("alice", PASSWORD, "viewer", actor="test")
    sessions = Sessions(db)
    new = sessions.create("alice", address="192.0.2.1", user_agent="Firefox")
    principal = sessions.lookup(new.cookie_value)
    assert principal is not None and principal.via == "session" and len(principal.csrf) == 43
    for bad in ("", "x", new.cookie_value + "x", new.cookie_value[:-1] + "!", "' OR 1=1 --"):
        assert sessions.lookup(bad) is None
    assert sessions.end(new.cookie_value) and not sessions.end(new.cookie_value)


def test_expired_sessions_are_purged(db: AuthDB, users: Users, clock: ManualClock) -> None:
    users.add("alice", PASSWORD, "viewer", actor="test")
    sessions = Sessions(db, idle_timeout_ms=1000, absolute_lifetime_ms=10_000)
    sessions.create("alice")
    clock.advance(999)
    assert sessions.purge_expired() == 0
    clock.advance(1)
    assert sessions.purge_expired() == 1 and sessions.count("alice") == 0


def test_tokens_role_ceiling_names_and_listing(db: AuthDB, users: Users) -> None:
    tokens = Tokens(db)
    users.add("root", PASSWORD, "admin", actor="test")
    users.add("vera", PASSWORD, "viewer", actor="test")
    with pytest.raises(InvalidInput, match="cannot exceed the owner's role"):
        tokens.create("vera", "ci", "admin", actor="test")
    with pytest.raises(InvalidInput) as bad_name:
        tokens.create("vera", " leading space", "viewer", actor="test")
    assert bad_name.value.field == "name"
    with pytest.raises(NotFound):
        tokens.create("nobody", "ci", "viewer", actor="test")
    first = tokens.create("vera", "ci", "viewer", actor="test")
    assert first.secret.startswith("spt_") and len(first.secret) == 47
    assert first.info.prefix == first.secret[:8]
    with pytest.raises(Conflict):
        tokens.create("vera", "ci", "viewer", actor="test")
    tokens.create("root", "ci", "admin", actor="test")
    stored = db.query("SELECT token_hash FROM api_tokens")
    assert all(first.secret not in row[0] for row in stored)
    # A name is free again once its token is revoked.
    tokens.revoke(first.info.id, actor="test")
    second = tokens.create("vera", "ci", "viewer", actor="test")
    with pytest.raises(Conflict, match="several users"):
        tokens.find("ci")
    assert tokens.find("ci", "vera").id == second.info.id
    assert tokens.find(str(first.info.id)).revoked_at is not None
    assert [t.active for t in tokens.all("vera")] == [False, True]
    assert len(tokens.all(include_revoked=False)) == 2


def test_token_role_follows_its_owner(db: AuthDB, users: Users, clock: ManualClock) -> None:
    tokens = Tokens(db)
    users.add("root", PASSWORD, "admin", actor="test")
    users.add("ada", PASSWORD, "admin", actor="test")
    new = tokens.create("ada", "ops", "admin", actor="test")
    assert tokens.verify(new.secret) is not None
    principal = tokens.verify(new.secret)
    assert principal is not None and principal.role == "admin" and principal.token_name == "ops"
    users.set_role("ada", "viewer", actor="root")
    demoted = tokens.verify(new.secret)
    assert demoted is not None and demoted.role == "viewer"
    users.set_disabled("ada", True, actor="root")
    assert tokens.verify(new.secret) is None
    users.set_disabled("ada", False, actor="root")
    assert tokens.verify("spt_" + "A" * 43) is None and tokens.verify("sk_nope") is None


def test_token_last_used_is_written_at_most_once_a_minute(
    db: AuthDB, users: Users, clock: ManualClock
) -> None:
    tokens = Tokens(db)
    users.add("alice", PASSWORD, "viewer", actor="test")
    new = tokens.create("alice", "ci", "viewer", actor="test")
    assert tokens.all()[0].last_used_at is None
    tokens.verify(new.secret)
    clock.advance(59_999)
    tokens.verify(new.secret)
    assert tokens.all()[0].last_used_at == START_MS
    clock.advance(1)
    tokens.verify(new.secret)
    assert tokens.all()[0].last_used_at == START_MS + 60_000


def test_every_change_is_audited(db: AuthDB, users: Users, clock: ManualClock) -> None:
    tokens = Tokens(db)
    users.add("root", PASSWORD, "admin", actor="cli:ops", address="")
    users.add("vera", PASSWORD, "viewer", actor="root", address="192.0.2.1")
    users.set_password("vera", PASSWORD + "!", actor="root")
    users.set_role("vera", "admin", actor="root")
    users.set_disabled("vera", True, actor="root")
    users.set_disabled("vera", False, actor="root")
    new = tokens.create("vera", "ci", "viewer", actor="vera")
    tokens.revoke(new.info.id, actor="root")
    tokens.revoke(new.info.id, actor="root")  # already revoked: no second entry
    users.remove("vera", actor="root")
    log = AuditLog(db)
    log.record("root", "funnel.save", "pricing", {"steps": 3}, "192.0.2.9")
    entries = log.recent(100)
    assert [(e.actor, e.action, e.target) for e in reversed(entries)] == [
        ("cli:ops", audit.USER_ADD, "root"),
        ("root", audit.USER_ADD, "vera"),
        ("root", audit.USER_PASSWD, "vera"),
        ("root", audit.USER_ROLE, "vera"),
        ("root", audit.USER_DISABLE, "vera"),
        ("root", audit.USER_ENABLE, "vera"),
        ("vera", audit.TOKEN_CREATE, "vera/ci"),
        ("root", audit.TOKEN_REVOKE, "vera/ci"),
        ("root", audit.USER_REMOVE, "vera"),
        ("root", "funnel.save", "pricing"),
    ]
    assert entries[0].detail == {"steps": 3} and entries[0].address == "192.0.2.9"
    assert entries[-2].address == "192.0.2.1" and entries[-2].detail == {"role": "viewer"}
    assert all(e.ts == START_MS for e in entries)
    assert [e.id for e in log.recent(2, offset=1)] == [entries[1].id, entries[2].id]
    # A failed change leaves no entry.
    with pytest.raises(Conflict):
        users.add("root", PASSWORD, "viewer", actor="x")
    assert len(log.recent(100)) == len(entries)
    clock.advance(1)
    log.record("root", "funnel.save", "later")
    assert log.prune(START_MS + 1) == len(entries)
    assert [e.target for e in log.recent()] == ["later"]
