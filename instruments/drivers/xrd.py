"""A powder X-ray diffractometer over RS-232, in a generic line protocol documented here.

Laboratory diffractometers (a Bruker D8, a Malvern Panalytical Aeris, a Rigaku MiniFlex) are driven through their
makers' software and interfaces, mostly not public; this driver speaks a small generic protocol that states what
such an instrument must offer a closed loop (set a 2-theta scan, run it on the sample in the holder, follow it,
read the pattern back), so that a lab can put a converter (or a subclass of this driver speaking its instrument's
commands) in front of it. It is peirce's own, a stand-in, not any vendor's.

Line: 115200 baud, 8N1, no flow control; requests and answers end in CR LF; every request is answered.
- `*IDN?` -> `<maker>,<model>,<serial>,<firmware>`
- `SCAN <start_deg>,<stop_deg>,<step_deg>,<seconds_per_step>` -> `OK`: the next scan's 2-theta range, step and
  counting time per step (Cu K-alpha), kept to four decimals; setting it twice is setting it once.
  `SCAN?` -> `SCAN <the four values>`.
- `RUN` -> `OK <scan>`: open the shutter and scan the sample in the holder; `<scan>` counts the scans started
  since power-on. Never re-sent by the driver: after a lost answer, `STAT?` says whether it started.
- `STAT?` -> `STAT <state>,<scans>,<points_done>`, state one of IDLE SCANNING DONE ABORTED.
- `DATA?` -> `DATA <n>,<start_deg>,<step_deg>` then the n counts of the last finished scan, ten to a line separated
  by commas, then `END`: point i lies at start + i * step degrees.
- `STOP` -> `OK`: shutter closed, scan stopped (the safe state; harmless when nothing runs).
- errors: `ERR <code>`: 1 unknown command, 2 a value malformed or out of range, 3 busy (a scan is under way),
  4 no scan set, 5 no data (no scan finished), 6 interlock (door open, no cooling water): not acted on.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from instruments.arrays import ArrayData, Axis
from instruments.contract import Action, Argument, Driver
from instruments.drivers.generic_line import LineAnswers, answer_text
from instruments.errors import DeviceError, InstrumentTimeout, ProtocolError
from instruments.transport import SerialSettings

STATES = ("IDLE", "SCANNING", "DONE", "ABORTED")
ERRORS = {
    "1": "unknown command",
    "2": "value malformed or out of range",
    "3": "busy: a scan is under way",
    "4": "no scan set",
    "5": "no data: no scan has finished",
    "6": "interlock (door open or no cooling water): not acted on",
}
PER_LINE = 10  # counts per line of a DATA? answer
MAX_POINTS = 20000
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_STAT = re.compile(rf"STAT ({'|'.join(STATES)}),([0-9]{{1,9}}),([0-9]{{1,6}})")
_SCAN = re.compile(rf"SCAN ({_NUMBER}),({_NUMBER}),({_NUMBER}),({_NUMBER})")
_DATA = re.compile(rf"DATA ([0-9]{{1,6}}),({_NUMBER}),({_NUMBER})")
_COUNTS = re.compile(r"[0-9]{1,9}(?:,[0-9]{1,9}){0,9}")
_OK_RUN = re.compile(r"OK ([0-9]{1,9})")
SCAN = ("start_deg", "stop_deg", "step_deg", "seconds_per_step")


_ANSWERS = LineAnswers("diffractometer", ERRORS)
parse_ok = _ANSWERS.ok
parse_identity = _ANSWERS.identity


def parse_run(line: str) -> int:
    """`OK <scan>` to RUN: the number of the scan started."""
    text = _ANSWERS.text(line)
    match = _OK_RUN.fullmatch(text)
    if match is None:
        raise ProtocolError("answer to RUN is not OK <scan>", received=text)
    return int(match.group(1))


def parse_status(line: str) -> dict[str, Any]:
    """`STAT <state>,<scans>,<points_done>`."""
    text = _ANSWERS.text(line)
    match = _STAT.fullmatch(text)
    if match is None:
        raise ProtocolError("answer to STAT? is not STAT <state>,<scans>,<points_done>", received=text)
    return {"state": match.group(1), "scans": int(match.group(2)), "points_done": int(match.group(3))}


def parse_scan(line: str) -> tuple[float, ...]:
    """`SCAN <start>,<stop>,<step>,<seconds>`."""
    text = _ANSWERS.text(line)
    match = _SCAN.fullmatch(text)
    if match is None:
        raise ProtocolError("answer to SCAN? is not SCAN <four numbers>", received=text)
    return tuple(float(value) for value in match.groups())


def parse_data_header(line: str) -> tuple[int, float, float]:
    """`DATA <n>,<start>,<step>`: points to follow, and where they lie."""
    text = _ANSWERS.text(line)
    match = _DATA.fullmatch(text)
    if match is None:
        raise ProtocolError("answer to DATA? is not DATA <n>,<start>,<step>", received=text)
    n, start, step = int(match.group(1)), float(match.group(2)), float(match.group(3))
    if not 0 < n <= MAX_POINTS or not step > 0:
        raise ProtocolError(f"DATA header with {n} points of step {step:g}", received=text)
    return n, start, step


def parse_counts(line: str) -> list[int]:
    """One line of counts: one to ten whole numbers separated by commas."""
    text = _ANSWERS.text(line)
    if _COUNTS.fullmatch(text) is None:
        raise ProtocolError("a line of counts is not up to ten whole numbers separated by commas", received=text)
    return [int(value) for value in text.split(",")]


class PowderDiffractometer(Driver):
    """A powder diffractometer: set a 2-theta scan, run it, follow it, read the pattern; stop."""

    name = "generic-xrd"
    title = "Powder X-ray diffractometer (generic line protocol)"
    manual = "peirce generic diffractometer protocol (instruments/drivers/xrd.py module documentation)"
    serial = SerialSettings(
        baudrate=115200, bytesize=8, parity="N", stopbits=1, write_terminator=b"\r\n", read_terminator=b"\r\n"
    )
    poll_s: ClassVar[float] = 0.5  # wall seconds between status polls while a scan goes on
    actions: ClassVar[tuple[Action, ...]] = (
        Action(
            "measure_pattern",
            "Set the 2-theta scan (SCAN, read back with SCAN?), run it on the sample in the holder (RUN, sent "
            "once), follow it (STAT?) until DONE and read the pattern (DATA?): counts against 2-theta.",
            arguments=(
                Argument(
                    "start_deg", unit="deg", minimum=5.0, maximum=90.0, default=10.0, description="First 2-theta."
                ),
                Argument("stop_deg", unit="deg", minimum=5.0, maximum=90.0, default=80.0, description="Last 2-theta."),
                Argument("step_deg", unit="deg", minimum=0.005, maximum=0.5, default=0.02, description="2-theta step."),
                Argument(
                    "seconds_per_step", unit="s", minimum=0.01, maximum=10.0, default=0.5, description="Counting time."
                ),
                Argument("timeout_min", unit="min", minimum=1.0, maximum=1440.0, default=120.0),
            ),
            returns={"pattern": "counts", "peak_counts": "counts", "scan": ""},
            arrays=("pattern",),
            idempotent=False,
        ),
        Action(
            "read_scan",
            "The diffractometer's state, scans started and points counted of the current or last scan (STAT?).",
            returns={"state": "", "scans": "", "points_done": ""},
        ),
    )

    # --- the contract ---------------------------------------------------------------------------------------------

    def identify(self) -> dict[str, str]:
        return self.query("*IDN?", parse=parse_identity)

    def read_status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.query("STAT?", parse=parse_status)
        return status

    def safe_state(self) -> None:
        """STOP: shutter closed, scan stopped. Idempotent, so it may be retried."""
        self.query("STOP", parse=parse_ok)

    # --- actions --------------------------------------------------------------------------------------------------

    def do_measure_pattern(
        self, start_deg: float, stop_deg: float, step_deg: float, seconds_per_step: float, timeout_min: float
    ) -> dict[str, Any]:
        if stop_deg <= start_deg:
            raise DeviceError(f"stop_deg {stop_deg:g} is not after start_deg {start_deg:g}", code="2")
        values = (start_deg, stop_deg, step_deg, seconds_per_step)
        self.query("SCAN " + ",".join(f"{value:.4f}" for value in values), parse=parse_ok)
        loaded = self.query("SCAN?", parse=parse_scan)
        if any(abs(a - round(b, 4)) > 6e-5 for a, b in zip(loaded, values, strict=True)):
            raise ProtocolError("the diffractometer did not take the scan", received=str(loaded), command="SCAN")
        # Never re-sent: after a lost answer, STAT? (scans) tells whether it started; the station raises meanwhile.
        scan = self.query("RUN", idempotent=False, parse=parse_run)
        points = math.floor((stop_deg - start_deg) / step_deg + 1e-9) + 1
        deadline = self.clock.now() + timeout_min * 60.0
        while True:
            status = self.read_status()
            if status["state"] == "DONE" and status["scans"] == scan:
                break
            if status["state"] != "SCANNING":
                raise DeviceError(
                    f"scan {scan} is not under way (the diffractometer is {status['state']})", code=status["state"]
                )
            if self.clock.now() >= deadline:
                raise InstrumentTimeout(
                    f"scan {scan} was not done within {timeout_min:g} min ({status['points_done']} of {points} points)",
                    command="STAT?",
                )
            self.clock.sleep(self.poll_s)
        two_theta, counts = self.query("DATA?", parse=self._read_data)
        pattern = ArrayData.of(two_theta, counts, Axis("two_theta", "deg"), Axis("intensity", "counts"))
        return {"pattern": pattern, "peak_counts": float(max(counts)), "scan": scan}

    def do_read_scan(self) -> dict[str, Any]:
        return self.read_status()

    def _read_data(self, first: str) -> tuple[list[float], list[float]]:
        """The header, then the counts' lines (counted from the header), then END."""
        n, start, step = parse_data_header(first)
        counts: list[float] = []
        while len(counts) < n:
            line = parse_counts(self.transport.read_line(command="DATA?"))
            if len(line) > n - len(counts) or (len(line) < PER_LINE and len(counts) + len(line) < n):
                raise ProtocolError(
                    "a line of counts does not fit the header's points", received=",".join(map(str, line))
                )
            counts.extend(float(v) for v in line)
        end = answer_text(self.transport.read_line(command="DATA?"))
        if end != "END":
            raise ProtocolError("pattern not ended by END", received=end)
        return [round(start + i * step, 6) for i in range(n)], counts
