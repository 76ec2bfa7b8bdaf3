"""Sign-in failure limits per client address and per username, in bounded memory."""

from __future__ import annotations

import ipaddress
import threading
from collections import OrderedDict, deque
from typing import Final

from sitepulse.clock import Clock, system_clock

MAX_FAILURES_PER_ADDRESS: Final = 5
# Higher than per address: it slows guessing spread over many addresses without letting
# one noisy address lock a user out.
MAX_FAILURES_PER_USERNAME: Final = 20
WINDOW_MS: Final = 15 * 60_000
MAX_TRACKED: Final = 10_000


def address_key(address: str) -> str:
    """The unit an address is limited as: IPv6 by /64, which one subscriber usually holds."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class SignInLimiter:
    """Counts failed sign-ins in a sliding window; refuses more until the window frees.

    Each address keeps (time, username) of its recent failures, so a success clears only
    that address's failures for that username: signing in to one's own account cannot
    wipe the record of guessing at others'. The least recently failing keys are evicted
    beyond `max_tracked`, bounding memory whatever the traffic.
    """

    def __init__(
        self,
        *,
        clock: Clock = system_clock,
        max_failures_per_address: int = MAX_FAILURES_PER_ADDRESS,
        max_failures_per_username: int = MAX_FAILURES_PER_USERNAME,
        window_ms: int = WINDOW_MS,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self._clock = clock
        self.max_per_address = max_failures_per_address
        self.max_per_username = max_failures_per_username
        self.window_ms = window_ms
        self.max_tracked = max_tracked
        self._by_address: OrderedDict[str, deque[tuple[int, str]]] = OrderedDict()
        self._by_username: OrderedDict[str, deque[int]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str, username: str) -> int:
        """Seconds until another attempt is allowed; 0 when it is allowed now."""
        now = self._clock()
        with self._lock:
            waits = [0]
            failures = self._by_address.get(address_key(address))
            if failures is not None and len(failures) >= self.max_per_address:
                waits.append(failures[-self.max_per_address][0] + self.window_ms - now)
            times = self._by_username.get(username.lower())
            if times is not None and len(times) >= self.max_per_username:
                waits.append(times[-self.max_per_username] + self.window_ms - now)
        longest = max(waits)
        return 0 if longest <= 0 else -(-longest // 1000)

    def failed(self, address: str, username: str) -> None:
        """Count one failed attempt."""
        now = self._clock()
        name = username.lower()
        with self._lock:
            key = address_key(address)
            failures = self._by_address.get(key)
            if failures is None:
                failures = self._by_address[key] = deque(maxlen=self.max_per_address)
            self._by_address.move_to_end(key)
            failures.append((now, name))
            times = self._by_username.get(name)
            if times is None:
                times = self._by_username[name] = deque(maxlen=self.max_per_username)
            self._by_username.move_to_end(name)
            times.append(now)
            # Only the last N failures matter (older ones expire by comparison), so each
            # deque is capped at N; the tables are capped by evicting the stalest keys.
            while len(self._by_address) > self.max_tracked:
                self._by_address.popitem(last=False)
            while len(self._by_username) > self.max_tracked:
                self._by_username.popitem(last=False)

    def succeeded(self, address: str, username: str) -> None:
        """Forget this address's failures for this username, and the username's failures."""
        name = username.lower()
        with self._lock:
            key = address_key(address)
            failures = self._by_address.get(key)
            if failures is not None:
                kept = [item for item in failures if item[1] != name]
                if kept:
                    self._by_address[key] = deque(kept, maxlen=self.max_per_address)
                else:
                    del self._by_address[key]
            self._by_username.pop(name, None)

    @property
    def tracked(self) -> int:
        """How many addresses and usernames are remembered."""
        with self._lock:
            return len(self._by_address) + len(self._by_username)
