"""Delivery to the ingest endpoints: retries that honour back pressure, every outcome counted."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]
# (status, JSON body) of the final answer, or why there was none.
Outcome = tuple[int, dict[str, Any]] | str


@dataclass
class SendStats:
    """What was sent and what the server made of it; rejections are keyed by reason."""

    requests: int = 0
    retries: int = 0
    # Why requests were retried: http_429 (queue full), http_503, transport_error.
    retry_reasons: Counter[str] = field(default_factory=Counter)
    events_sent: int = 0
    events_accepted: int = 0
    events_duplicate: int = 0
    events_rejected: Counter[str] = field(default_factory=Counter)
    leads_sent: int = 0
    leads_accepted: int = 0
    leads_duplicate: int = 0
    leads_rejected: Counter[str] = field(default_factory=Counter)


class Sender:
    """POSTs with retries: 429 and 503 wait for Retry-After, network errors back off."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        stats: SendStats,
        *,
        base_url: str,
        max_retries: int,
        sleep: Sleep,
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._max_retries = max_retries
        self._stats = stats
        self._sleep = sleep
        self._logged: set[str] = set()
        self._stopping = False

    def stop(self) -> None:
        """Finish requests on the wire but retry nothing more: the run is shutting down."""
        self._stopping = True

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """(status, JSON body) of the final answer, or why there was none."""
        url = self._base_url + path
        reason, wait = "", 0.0
        for attempt in range(self._max_retries + 1):
            if attempt:
                if self._stopping:
                    return f"{reason}_stopped"
                self._stats.retries += 1
                self._stats.retry_reasons[reason] += 1
                await self._sleep(wait)
            self._stats.requests += 1
            try:
                response = await self._client.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                reason, wait = "transport_error", min(0.25 * 2**attempt, 4.0)
                self._log_once(reason, f"{path}: {exc!r}")
                continue
            if response.status_code in (429, 503):
                reason, wait = f"http_{response.status_code}", _retry_after(response, attempt)
                continue
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            if response.status_code >= 300:
                self._log_once(
                    f"http_{response.status_code}",
                    f"{path}: {response.status_code} {answer or response.text[:200]}",
                )
            return response.status_code, answer if isinstance(answer, dict) else {}
        self._log_once("gave_up", f"{path}: gave up after {self._max_retries} retries ({reason})")
        return f"{reason}_gave_up"

    def _log_once(self, key: str, message: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning("demo traffic: %s", message)


def _retry_after(response: httpx.Response, attempt: int) -> float:
    try:
        wait = float(response.headers.get("retry-after", ""))
    except ValueError:
        wait = 0.5 * 2**attempt
    return min(max(wait, 0.05), 30.0)


def count_events(stats: SendStats, outcome: Outcome, sent: int) -> None:
    """Book an events request's answer: accepted, duplicate, or rejected by reason."""
    if isinstance(outcome, str):
        stats.events_rejected[outcome] += sent
        return
    status, answer = outcome
    if status != 202:
        stats.events_rejected[f"http_{status}"] += sent
        return
    accepted = int(answer.get("accepted", sent))
    duplicates = int(answer.get("duplicates", 0))
    stats.events_accepted += accepted
    stats.events_duplicate += duplicates
    if sent - accepted - duplicates > 0:
        # Stored fewer than sent without an error: bots dropped by `bots.action: drop`.
        stats.events_rejected["not_stored"] += sent - accepted - duplicates


def count_lead(stats: SendStats, outcome: Outcome) -> None:
    """Book a lead's answer: 201 accepted, 200 a duplicate, anything else rejected."""
    if isinstance(outcome, str):
        stats.leads_rejected[outcome] += 1
    elif outcome[0] == 201:
        stats.leads_accepted += 1
    elif outcome[0] == 200:
        stats.leads_duplicate += 1
    else:
        stats.leads_rejected[f"http_{outcome[0]}"] += 1
