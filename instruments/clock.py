"""Clocks: where drivers, transports and device twins read the time and wait.

Every wait of a driver (a hotplate's settle time, polling a pump until it stops, a transport's timeout, its
back-off and its resynchronisation grace) goes through a `Clock`, so a test can run those waits without waiting:
`SystemClock` is the wall clock (the default everywhere); `ManualClock` only moves when something sleeps on it or
a test advances it, so a 10-minute heating ramp or a 0.3 s timeout costs no wall time at all. A manual clock is
for single-threaded, in-process set-ups (a driver on a loopback link to its twin); a real port or a twin served
from another thread needs the system clock, because the bytes there arrive in wall time.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds from an arbitrary origin (`now`), and a way to let seconds pass (`sleep`)."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The wall clock: monotonic seconds, and `time.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told: `sleep(s)` returns at once, `s` seconds later on this clock.

    Two runs that sleep the same amounts read the same times, so a test on it is exact and deterministic.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass (negative amounts are ignored: time does not run backwards)."""
        with self._lock:
            self._now += max(0.0, float(seconds))
