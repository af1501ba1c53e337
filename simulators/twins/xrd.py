"""Device twin of a powder X-ray diffractometer speaking the generic line protocol of `instruments.drivers.xrd`
(peirce's own, documented there; not a vendor's), diffracting the powder on the bench.

A scan, started by `RUN` with the set range, goes IDLE -> SCANNING (one step after another, each taking its counting
time on the bench's clock) -> DONE; `STOP` ends it at once (ABORTED, no data). The pattern is computed when the
scan starts, from the sample standing at the instrument then (`simulators.solid_state.diffract`: the reference
cards' peaks with width, a background, Poisson counts), with a seed drawn from the bench's seeded generator; the
counts scale with the counting time per step (0.5 s counts what `diffract` states).

The sample's phases: the weight fractions a furnace's twin left on it (`Vessel.phases`); failing those, its
precursor powders as dosed (`Vessel.powders_g`, unfired); an empty holder gives the background only. Faults:
`device_error` answers `ERR 6` (interlock) without acting.
"""

from __future__ import annotations

import math
import re

import numpy as np

from instruments.drivers.xrd import PER_LINE
from simulators.solid_state import diffract
from simulators.twins.bench import Bench, Vessel
from simulators.twins.server import TwinProtocol

SCAN_RANGES: tuple[tuple[str, float, float], ...] = (
    ("start_deg", 5.0, 90.0),
    ("stop_deg", 5.0, 90.0),
    ("step_deg", 0.005, 0.5),
    ("seconds_per_step", 0.01, 10.0),
)
REFERENCE_SECONDS = 0.5  # counting time per step at which `diffract` gives its stated counts
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def sample_phases(vessel: Vessel | None) -> dict[str, float]:
    """Weight fractions of the phases of the powder in the holder: what firing made of it, else its precursors as
    dosed, else nothing (an empty holder)."""
    if vessel is None:
        return {}
    if vessel.phases:
        return dict(vessel.phases)
    total = sum(vessel.powders_g.values())
    return {name: grams / total for name, grams in vessel.powders_g.items()} if total > 0 else {}


class XrdTwin(TwinProtocol):
    """A Bragg-Brentano powder diffractometer with a Cu tube and a sample holder at `instrument` on the bench."""

    request_terminator = b"\r\n"
    reply_terminator = b"\r\n"

    def __init__(
        self,
        bench: Bench,
        instrument: str = "xrd",
        serial: str = "XRD0001",
        *,
        firmware: str = "1.0",
    ) -> None:
        self.bench = bench
        self.instrument = instrument
        self.serial = serial
        self.firmware = firmware
        self.scan: tuple[float, ...] | None = None
        self.scans = 0
        self.aborted = False
        self._started: float | None = None  # bench time the current scan started
        self._scan_run: tuple[float, ...] = ()
        self._counts: np.ndarray | None = None
        self.patterns_taken = 0

    # --- the scan's timeline ----------------------------------------------------------------------------------------

    def _points(self, scan: tuple[float, ...]) -> int:
        start, stop, step, _ = scan
        return math.floor((stop - start) / step + 1e-9) + 1

    def points_done(self) -> int:
        if self._started is None:
            return 0
        if self.aborted:
            return 0
        seconds = self._scan_run[3]
        done = int((self.bench.clock.now() - self._started) / seconds)
        return min(done, self._points(self._scan_run))

    def state(self) -> str:
        if self.aborted:
            return "ABORTED"
        if self._started is None:
            return "IDLE"
        return "DONE" if self.points_done() >= self._points(self._scan_run) else "SCANNING"

    # --- TwinProtocol -------------------------------------------------------------------------------------------------

    def handle(self, request: str) -> list[str]:
        with self.bench.lock:
            self.bench.sync()
            return self._answer(request.strip())

    def error_reply(self, request: str) -> list[str]:
        return ["ERR 6"]  # interlock (door, cooling water): nothing done

    def _answer(self, request: str) -> list[str]:
        command, _, argument = request.partition(" ")
        command = command.upper()
        if command == "*IDN?" and not argument:
            return [f"GENERIC,XRD-1,{self.serial},{self.firmware}"]
        if command == "SCAN?" and not argument:
            if self.scan is None:
                return ["ERR 4"]
            return ["SCAN " + ",".join(f"{value:.4f}" for value in self.scan)]
        if command == "SCAN":
            return [self._set(argument)]
        if command == "RUN" and not argument:
            return [self._run()]
        if command == "STAT?" and not argument:
            return [f"STAT {self.state()},{self.scans},{self.points_done()}"]
        if command == "DATA?" and not argument:
            return self._data()
        if command == "STOP" and not argument:
            if self.state() == "SCANNING":
                self.aborted = True
                self._counts = None
            return ["OK"]
        return ["ERR 1"]

    def _set(self, argument: str) -> str:
        if self.state() == "SCANNING":
            return "ERR 3"
        fields = [field.strip() for field in argument.split(",")]
        if len(fields) != len(SCAN_RANGES) or not all(_NUMBER.fullmatch(field) for field in fields):
            return "ERR 2"
        values = tuple(round(float(field), 4) for field in fields)
        if not all(low <= value <= high for value, (_, low, high) in zip(values, SCAN_RANGES, strict=True)):
            return "ERR 2"
        if values[1] <= values[0]:
            return "ERR 2"
        self.scan = values
        return "OK"

    def _run(self) -> str:
        if self.state() == "SCANNING":
            return "ERR 3"
        if self.scan is None:
            return "ERR 4"
        start, _, step, seconds = self.scan
        two_theta = start + step * np.arange(self._points(self.scan))
        phases = sample_phases(self.bench.vessel_at(self.instrument))
        seed = int(self.bench.rng.integers(2**31))
        self._counts = diffract(phases, two_theta, seed, exposure=seconds / REFERENCE_SECONDS)
        self.scans += 1
        self.aborted = False
        self._scan_run = self.scan
        self._started = self.bench.clock.now()
        return f"OK {self.scans}"

    def _data(self) -> list[str]:
        if self.state() != "DONE" or self._counts is None:
            return ["ERR 5"]
        start, _, step, _ = self._scan_run
        counts = [str(int(v)) for v in self._counts]
        lines = [",".join(counts[i : i + PER_LINE]) for i in range(0, len(counts), PER_LINE)]
        self.patterns_taken += 1
        return [f"DATA {len(counts)},{start:.4f},{step:.4f}", *lines, "END"]


__all__ = ["XrdTwin", "sample_phases"]
