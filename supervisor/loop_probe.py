"""How late the daemon's event loop wakes: a timer that re-arms itself every few ms and
records the gap between when it was due and when it ran.

Every session's audio goes through this one loop at 50 frames/s; a callback that blocks it
(a sync call, a big JSON encode, a GC pass) delays every session at once. That shows here
as lateness, whatever caused it.

Two readings: the worst lateness since the probe started (``max_ms``), and the worst per
whole second of ``time.monotonic()`` for the last ``HISTORY_S`` seconds (``recent``).

Lateness has two causes: the loop's own work (a callback that runs long) and a machine
whose cores are all taken (the loop is runnable, not running). The probe tells them apart
with the loop thread's CPU clock: of a late tick's lateness, at most the CPU time the
thread spent since the previous tick can be its own work. That bound is the "busy" stall
(``busy_max_ms``, ``recent_busy_ms``); on a saturated machine the wall stall exceeds it.
CLOCK_MONOTONIC is system-wide on Linux, so another process (``callfleet bench``) can pick
out the seconds of its own measured window without resetting anything other readers see.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

# Half a 20 ms audio frame: a stall long enough to delay a frame is seen to within 10 ms.
# Each wake-up of an idle loop costs ~110 us of CPU on the 2-core dev VM: 5 ms would burn
# ~2% of a core on an idle daemon, 10 ms ~1% (under frame traffic most ticks share a wake-up).
INTERVAL_S = 0.010
HISTORY_S = 16  # enough for a reader polling once a second to miss nothing


class LoopProbe:
    """Measures event-loop lateness on the running loop once ``start``ed."""

    def __init__(self, interval_s: float = INTERVAL_S, history_s: int = HISTORY_S) -> None:
        self.interval_s = interval_s
        self.max_s = 0.0
        self.busy_max_s = 0.0
        self.ticks = 0
        self._due = 0.0
        self._cpu = 0.0  # the loop thread's CPU clock at the last tick
        # [second, worst lateness in it, worst busy stall in it]
        self._recent: deque[list[float]] = deque(maxlen=history_s)
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Arm the timer on the running loop; raises ``RuntimeError`` outside one."""
        self._loop = asyncio.get_running_loop()
        self._cpu = time.thread_time()
        self._arm(time.monotonic())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, now: float) -> None:
        assert self._loop is not None
        # Due relative to now, not to the last due time: after a stall, one late tick, no burst.
        self._due = now + self.interval_s
        self._handle = self._loop.call_later(self.interval_s, self._tick)

    def _tick(self) -> None:
        now, cpu = time.monotonic(), time.thread_time()
        late = max(0.0, now - self._due)
        self.record(now, late, min(late, cpu - self._cpu))
        self._cpu = cpu
        self._arm(now)

    def record(self, now: float, late_s: float, busy_s: float = 0.0) -> None:
        """Count one wake-up at ``now`` (monotonic seconds) that was ``late_s`` late, of
        which at most ``busy_s`` was the loop's own work."""
        self.ticks += 1
        self.max_s = max(self.max_s, late_s)
        self.busy_max_s = max(self.busy_max_s, busy_s)
        second = float(int(now))
        if self._recent and self._recent[-1][0] == second:
            entry = self._recent[-1]
            entry[1], entry[2] = max(entry[1], late_s), max(entry[2], busy_s)
        else:
            self._recent.append([second, late_s, busy_s])

    @property
    def max_ms(self) -> float:
        return round(self.max_s * 1000, 3)

    @property
    def busy_max_ms(self) -> float:
        return round(self.busy_max_s * 1000, 3)

    def recent_ms(self) -> list[list[float]]:
        """``[[monotonic second, worst lateness in ms], ...]``, oldest first; seconds with
        no wake-up at all (a stall longer than a second) are absent, the tick after it is not."""
        return [[second, round(late * 1000, 3)] for second, late, _ in self._recent]

    def recent_busy_ms(self) -> list[list[float]]:
        """The same seconds, with the worst busy stall (the loop's own work) in ms."""
        return [[second, round(busy * 1000, 3)] for second, _, busy in self._recent]
