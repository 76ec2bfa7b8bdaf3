"""The dashboard archive: what is served, what is computed, and when, on a hand-moved clock."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from sitepulse.analyse.archive import DashboardArchive, ViewKey

MAX_AGE = 60.0
KEY: ViewKey = ("executive", "acme", (("days", "30"),))
OTHER: ViewKey = ("marketing", "acme", (("days", "30"),))


@dataclass
class World:
    """A clock moved by hand, a data version, and a computation that counts its calls."""

    now: float = 1000.0
    version: int = 0
    calls: list[ViewKey] = field(default_factory=list)
    fail: bool = False

    def clock(self) -> float:
        return self.now

    def compute(self, key: ViewKey) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("the analyses failed")
        self.calls.append(key)
        return {"key": key, "version": self.version, "computation": len(self.calls)}

    def archive(self, max_age: float = MAX_AGE, **kwargs: Any) -> DashboardArchive:
        return DashboardArchive(
            self.compute, lambda: self.version, max_age_secs=max_age, clock=self.clock, **kwargs
        )


def test_an_answer_is_served_while_young_and_computed_again_when_old() -> None:
    world = World()
    archive = world.archive()
    first = archive.answer(KEY)
    assert (first.status, first.data["computation"]) == ("computed", 1)
    world.now += MAX_AGE - 1
    again = archive.answer(KEY)
    assert (again.status, again.data["computation"], again.age_secs) == ("fresh", 1, MAX_AGE - 1)
    world.now += 1  # exactly the maximum age: no longer served
    late = archive.answer(KEY)
    assert (late.status, late.data["computation"]) == ("computed", 2)
    assert world.calls == [KEY, KEY]


def test_changed_data_is_served_stale_once_and_recomputed_off_the_request() -> None:
    world = World()
    archive = world.archive()
    archive.answer(KEY)
    world.version += 1
    world.now += 5
    stale = archive.answer(KEY)
    assert (stale.status, stale.data["version"]) == ("stale", 0)
    assert len(world.calls) == 1, "the request itself does not compute"
    assert archive.refresh_due() == 1  # what the archive's thread does next
    fresh = archive.answer(KEY)
    assert (fresh.status, fresh.data["version"]) == ("fresh", 1)


def test_the_flush_runs_only_when_the_request_computes() -> None:
    world = World()
    archive = world.archive()
    flushed: list[float] = []
    archive.answer(KEY, lambda: flushed.append(world.now))
    world.now += 10
    archive.answer(KEY, lambda: flushed.append(world.now))
    world.now += MAX_AGE
    archive.answer(KEY, lambda: flushed.append(world.now))
    assert flushed == [1000.0, 1070.0]


@pytest.mark.parametrize(
    ("keep", "age", "found_stale", "recomputed"),
    [
        (600, 29, False, False),  # watched but younger than half the maximum age
        (600, 30, False, True),  # watched and half the maximum age old
        (20, 45, False, False),  # nobody asked for longer than `keep`: left alone
        (600, 1, True, True),  # a request found it stale: recomputed however young
    ],
)
def test_which_views_the_background_keeps_fresh(
    keep: float, age: float, found_stale: bool, recomputed: bool
) -> None:
    world = World()
    archive = world.archive(keep_secs=keep)
    archive.answer(KEY)  # computed and asked for at 1000
    world.now = 1000 + age
    if found_stale:
        world.version += 1
        assert archive.answer(KEY).status == "stale"
    assert archive.refresh_due() == int(recomputed)
    assert len(world.calls) == 1 + int(recomputed)


def test_a_disabled_archive_computes_every_time_and_keeps_nothing() -> None:
    world = World()
    archive = world.archive(max_age=0)
    assert not archive.enabled
    statuses = [archive.answer(KEY).status for _ in range(3)]
    assert statuses == ["computed"] * 3
    assert archive.refresh_due() == 0
    assert len(world.calls) == 3


def test_forget_drops_every_answer() -> None:
    world = World()
    archive = world.archive()
    archive.answer(KEY)
    archive.answer(OTHER)
    archive.forget()
    assert archive.answer(KEY).status == "computed"
    assert archive.answer(OTHER).status == "computed"
    assert archive.refresh_due() == 0


def test_an_answer_computed_across_a_forget_is_not_kept() -> None:
    world = World()
    archive: DashboardArchive

    def compute(key: ViewKey) -> dict[str, Any]:
        archive.forget()  # a definition saved while the analyses ran
        return world.compute(key)

    archive = DashboardArchive(
        compute, lambda: world.version, max_age_secs=MAX_AGE, clock=world.clock
    )
    archive.answer(KEY)
    assert archive.answer(KEY).status == "computed"


def test_the_least_recently_asked_view_goes_first() -> None:
    world = World()
    archive = world.archive(capacity=2)
    third: ViewKey = ("executive", "acme", (("days", "7"),))
    archive.answer(KEY)
    archive.answer(OTHER)
    archive.answer(KEY)  # KEY is now the more recent
    archive.answer(third)  # evicts OTHER
    assert archive.answer(KEY).status == "fresh"
    assert archive.answer(third).status == "fresh"
    assert archive.answer(OTHER).status == "computed"


def test_a_failure_reaches_the_request_and_nothing_is_kept() -> None:
    world = World(fail=True)
    archive = world.archive()
    with pytest.raises(RuntimeError, match="the analyses failed"):
        archive.answer(KEY)
    world.fail = False
    assert archive.answer(KEY).status == "computed"


def test_requests_waiting_for_the_same_view_share_one_computation() -> None:
    world = World()
    started, release = threading.Event(), threading.Event()

    def slow(key: ViewKey) -> dict[str, Any]:
        started.set()
        assert release.wait(10)
        return world.compute(key)

    archive = DashboardArchive(slow, lambda: world.version, max_age_secs=MAX_AGE, clock=world.clock)
    answers: list[str] = []
    first = threading.Thread(target=lambda: answers.append(archive.answer(KEY).status))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: answers.append(archive.answer(KEY).status))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert answers == ["computed", "computed"]
    assert len(world.calls) == 1


def test_the_thread_recomputes_a_stale_view_on_its_own() -> None:
    world = World()
    archive = world.archive(max_age=0.4)  # its thread wakes every 0.1 s of real time
    archive.answer(KEY)
    archive.start()
    try:
        world.version += 1
        assert archive.answer(KEY).status == "stale"
        for _ in range(100):
            if len(world.calls) == 2:
                break
            threading.Event().wait(0.05)  # waiting for the archive's thread
    finally:
        archive.stop()
    assert len(world.calls) == 2
    assert archive.answer(KEY).data["version"] == 1
