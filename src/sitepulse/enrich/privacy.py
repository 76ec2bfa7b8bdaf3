"""IP anonymisation and the cookieless visitor id (daily-rotating salt)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import threading
from collections.abc import Callable

_HEX = frozenset("0123456789abcdef")
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def anonymise_ip(ip: str) -> str:
    """Zero the host part: IPv4 keeps /24, IPv6 keeps /48. Garbage gives ''."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)


def hash64(*parts: bytes) -> int:
    """A 64-bit keyed hash of the parts, as an unsigned int (never 0)."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(len(part).to_bytes(4, "little"))
        h.update(part)
    return int.from_bytes(h.digest(), "little") or 1


def is_wire_id(value: str) -> bool:
    """Whether `value` is an id in sitepulse's own wire form (16 hex digits)."""
    return len(value) == 16 and _HEX.issuperset(value)


def id_from_string(site: str, value: str) -> int:
    """Map an id given by a client to our 64-bit id; our own 16-hex ids map to themselves."""
    if is_wire_id(value):
        return int(value, 16) or 1
    return hash64(b"id", site.encode(), value.encode())


def format_id(value: int) -> str:
    """The wire form of a 64-bit id: 16 lowercase hex digits."""
    return f"{value:016x}"


class DailySalt:
    """The salt of the current UTC day, created once and shared through the store.

    Old salts are deleted by the store, so a visitor id can be linked across
    days only with the visitor's consented first-party id.
    """

    def __init__(self, fetch: Callable[[str, bytes], bytes]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._day = -1
        self._salt = b""

    def for_time(self, now_ms: int) -> bytes:
        day = now_ms // 86_400_000  # UTC day number; cheap enough for every request
        if day != self._day:
            with self._lock:
                if day != self._day:
                    iso = dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
                    self._salt = self._fetch(iso, os.urandom(32))
                    self._day = day
        return self._salt


def visitor_hash(salt: bytes, site: str, ip: str, user_agent: str) -> int:
    """The cookieless visitor id: stable for one day, unlinkable after the salt is gone."""
    return hash64(salt, site.encode(), ip.encode(), user_agent.encode())
