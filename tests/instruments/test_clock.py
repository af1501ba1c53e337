"""Clocks: the wall clock by default, a manual clock that moves only when something sleeps on it or a test says."""

from __future__ import annotations

import time

from instruments.clock import SYSTEM_CLOCK, ManualClock, SystemClock
from instruments.drivers.ika_namur import IkaNamurHotplate


def test_a_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(start=5.0)
    assert clock.now() == 5.0
    started = time.monotonic()
    clock.sleep(3600.0)  # an hour, at once
    assert time.monotonic() - started < 1.0
    assert clock.now() == 3605.0
    clock.advance(0.25)
    assert clock.now() == 3605.25
    clock.sleep(-10.0)  # time does not run backwards
    assert clock.now() == 3605.25


def test_the_system_clock_is_the_wall_clock() -> None:
    assert isinstance(SYSTEM_CLOCK, SystemClock)
    before = time.monotonic()
    SYSTEM_CLOCK.sleep(0.01)
    assert SYSTEM_CLOCK.now() - before >= 0.01
    SYSTEM_CLOCK.sleep(-1.0)  # a negative wait is no wait, not an error


def test_a_driver_waits_on_its_clock() -> None:
    """A driver and its transport share the clock they are given; without one, the wall clock."""

    clock = ManualClock()
    driver = IkaNamurHotplate("loop://", clock=clock)
    assert driver.clock is clock and driver.transport.clock is clock
    assert IkaNamurHotplate("loop://").clock is SYSTEM_CLOCK
