"""Keeps MAX's background log poller from taking CPU time away from the model.

MAX 26.7 starts a native thread at a process's first graph execution that
wakes every 100 microseconds to drain an event log, whether or not anything
runs (measured here: ~5,300 wake-ups and ~17% of a core per second while
idle). On a machine with few cores each wake-up preempts a thread doing model
work: on 2 cores a decode step's projections took 20 ms with it and 17 ms with
it out of the way, and torch code in the same process loses the same share.

Linux's SCHED_IDLE policy lets a thread run only on a core nothing else wants,
so the poller still drains its log, in the gaps. The thread has no name, so it
is found by what it does: a native (non-Python) thread of this process that
wakes up thousands of times a second while the process sleeps. Set
`ZOO_KEEP_MAX_POLLER=1` to leave it alone.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

SWITCH = "ZOO_KEEP_MAX_POLLER"
WINDOW_S = 0.01  # how long to watch; the poller wakes ~50 times in it
MIN_WAKEUPS = 10  # idle threads wake a handful of times a second at most
TRIES = 3  # on a busy machine the poller may not get to run while we watch

_tries_left = TRIES


def still_looking() -> bool:
    """Whether `quiet_busy_pollers` would still look (no poller quieted yet, tries left)."""
    return _tries_left > 0 and os.environ.get(SWITCH, "") in ("", "0")


def quiet_busy_pollers() -> list[int]:
    """After a graph has run: gives busy native pollers SCHED_IDLE.

    Looks until it has changed a thread, at most `TRIES` times per process.
    Returns the thread ids it changed (empty when not looking, off Linux, or when switched off).
    """
    global _tries_left
    if _tries_left <= 0 or not sys.platform.startswith("linux") or not hasattr(os, "SCHED_IDLE"):
        return []
    if os.environ.get(SWITCH, "") not in ("", "0"):
        _tries_left = 0
        return []
    _tries_left -= 1
    before = _wakeups()
    time.sleep(WINDOW_S)
    after = _wakeups()
    python_threads = {thread.native_id for thread in threading.enumerate()}
    pollers = [
        tid
        for tid, count in after.items()
        if tid not in python_threads and tid in before and count - before[tid] >= MIN_WAKEUPS
    ]
    changed = []
    for tid in pollers:
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            continue
        changed.append(tid)
    if changed:
        _tries_left = 0
    return changed


def _wakeups() -> dict[int, int]:
    """Voluntary context switches (times a thread went to sleep) of each thread of this process."""
    counts = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                counts[int(task.name)] = int(line.split()[1])
                break
    return counts
