"""`zoo.core.runtime.pollers`: which threads get SCHED_IDLE, and that MAX's log poller is one of them."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from zoo.core.runtime import pollers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")


@pytest.fixture
def fresh(monkeypatch):
    """A process in which the pollers were not looked for yet; scheduler changes are recorded, not made."""
    changed: list[int] = []
    monkeypatch.setattr(pollers, "_tries_left", pollers.TRIES)
    monkeypatch.setattr(pollers.os, "sched_setscheduler", lambda tid, policy, param: changed.append((tid, policy)))
    monkeypatch.delenv(pollers.SWITCH, raising=False)
    return changed


def fake_wakeups(monkeypatch, before: dict[int, int], after: dict[int, int], times: int = 1) -> None:
    counts = iter([before, after] * times)
    monkeypatch.setattr(pollers, "_wakeups", lambda: next(counts))


def test_only_busy_native_threads_are_changed(fresh, monkeypatch):
    python_thread = threading.get_native_id()
    before = {101: 5, 102: 7, 103: 0, python_thread: 0}
    after = {101: 60, 102: 9, 103: 10, 104: 500, python_thread: 400}
    fake_wakeups(monkeypatch, before, after)
    # 101 woke 55 times: a poller. 102 twice: idle. 103 exactly the threshold.
    # 104 started during the window; the Python thread is never touched.
    assert pollers.quiet_busy_pollers() == [101, 103]
    assert fresh == [(101, os.SCHED_IDLE), (103, os.SCHED_IDLE)]


def test_stops_looking_once_it_found_one(fresh, monkeypatch):
    fake_wakeups(monkeypatch, {101: 0}, {101: 60})
    assert pollers.quiet_busy_pollers() == [101]
    assert pollers.quiet_busy_pollers() == []
    assert len(fresh) == 1


def test_gives_up_after_a_few_tries(fresh, monkeypatch):
    fake_wakeups(monkeypatch, {101: 0}, {101: 2}, times=pollers.TRIES)
    assert [pollers.quiet_busy_pollers() for _ in range(pollers.TRIES + 2)] == [[]] * (pollers.TRIES + 2)
    assert fresh == []


def test_switch_leaves_every_thread_alone(fresh, monkeypatch):
    monkeypatch.setenv(pollers.SWITCH, "1")
    fake_wakeups(monkeypatch, {101: 0}, {101: 60})
    assert pollers.quiet_busy_pollers() == []
    assert fresh == []


def test_a_thread_that_refuses_is_skipped(fresh, monkeypatch):
    def refuse(tid, policy, param):
        raise PermissionError("not allowed")

    monkeypatch.setattr(pollers.os, "sched_setscheduler", refuse)
    fake_wakeups(monkeypatch, {101: 0}, {101: 60})
    assert pollers.quiet_busy_pollers() == []


def test_wakeups_reads_this_process_threads():
    counts = pollers._wakeups()
    assert threading.get_native_id() in counts
    assert all(count >= 0 for count in counts.values())
