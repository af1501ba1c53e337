"""Twin of a New Era NE-1000-family syringe pump in RS-232 Basic mode, pumping liquid on the shared Bench.

The protocol is the one of `instruments.drivers.newera_pump` (NE-1000 User Manual, Publication #1200-01,
chapter 10): requests `[<address>] <command> [<parameters>] CR`, stripped of spaces and control characters and
upper-cased (§10.2.2); answers `STX <address, 2 digits> <prompt> [<data>] ETX` (§10.2.4), a set command answered
with a status only, a query with its data in the set format (§10.4); errors `?`, `?NA`, `?OOR`, `?COM`; alarms
`A?<type>` answered (and so acknowledged) in reply to the next command, which is not carried out.

Modelled commands (§10.4): `DIA`, `RAT`, `VOL` (number or units), `DIR` (INF, WDR, REV), `RUN`, `STP`, `DIS`,
`CLD`, `VER`, and the empty command (a status query). Others answer `?` (not recognised): this twin is one phase
of a pumping program, not the 41-phase program memory.

Behaviour the manual states, kept here: a rate outside what the syringe can reach, a diameter outside 0.1–50 mm
or a number with more than 4 digits / 3 decimals is `?OOR`; the volume units default to µL at or below 14.00 mm
diameter and to mL above (re-set whenever the diameter is set); the rate may change while pumping, its units may
not; the direction may change while pumping only when the volume to be dispensed is 0; `STP` pauses a running
program (`P`) and a second `STP` stops it (`S`), and `RUN` resumes a paused one to its target. Where the manual
is silent this twin reads "not currently applicable" (`?NA`): `RUN` while pumping, `DIA`/`VOL` while pumping.

Rate range: the NE-1000 specification (2120 mL/h with a B-D 60 mL syringe of 26.59 mm, 0.73 µL/h with a B-D 1 mL
syringe of 4.699 mm) fixes the plunger's fastest and slowest speed; the range for a diameter is those speeds times
the syringe's cross-section.

Physics: while pumping, volume accrues at the rate in simulated time (`bench.clock.now()`), integrated lazily at
every request and whenever the bench syncs (before a vessel moves), and the pump stops by itself at the target.
Infused liquid is dosed into the vessel standing at the pump (`bench.vessel_at(instrument)`); with none there it is
lost on the bench but still counted as infused. Withdrawing draws an aliquot of the vessel's contents back up the
same line (all species in proportion); with no vessel the syringe fills from its reservoir.
"""

from __future__ import annotations

import math
import re

from simulators.twins.bench import Bench, Vessel
from simulators.twins.server import TwinProtocol

STX = "\x02"

PUMPING = ("I", "W")  # prompts with the motor turning
RATE_UNITS = {"MM": 1.0, "UM": 1000.0, "MH": 60.0, "UH": 60000.0}  # units per mL/min
VOLUME_UNITS = {"ML": 1.0, "UL": 1000.0}  # units per mL
DIAMETER_RANGE_MM = (0.1, 50.0)
UL_UNITS_UP_TO_MM = 14.0  # default volume units: µL at or below this diameter, mL above


def _area_mm2(diameter_mm: float) -> float:
    return math.pi * diameter_mm * diameter_mm / 4.0


# Plunger speeds in mm/min from the specification's rates (mm³ per minute over the syringe's cross-section).
MAX_SPEED_MM_MIN = 2120.0 * 1000.0 / 60.0 / _area_mm2(26.59)
MIN_SPEED_MM_MIN = 0.73 / 60.0 / _area_mm2(4.699)

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_REQUEST = re.compile(r"([0-9]{1,2})?([A-Z]{3})?(.*)", re.DOTALL)
_RATE_PARAMETERS = re.compile(r"([0-9.]+)(MM|UM|MH|UH)?")
_EPSILON_ML = 1e-12


class _Reject(Exception):
    """A command the pump answers with an error (the `?…` data) and does not carry out."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def display(value: float) -> str:
    """A number as the pump shows it: 4 significant digits, at most 3 decimals (§10.2.1's <float>)."""
    for decimals in (3, 2, 1):
        text = f"{value:.{decimals}f}"
        if sum(c.isdigit() for c in text) <= 4:
            return text
    return f"{value:.0f}"


def _number(text: str) -> float:
    """A request's <float>: syntax error `?`, more digits than the format allows `?OOR`."""
    if not _NUMBER.fullmatch(text):
        raise _Reject("?")
    _, _, decimals = text.partition(".")
    if sum(c.isdigit() for c in text) > 4 or len(decimals) > 3:
        raise _Reject("?OOR")
    return float(text)


class NewEraPumpTwin(TwinProtocol):
    """One NE-1000 at one network address; its syringe doses into the vessel at `instrument` on the bench."""

    request_terminator = b"\r"
    reply_terminator = b"\x03"

    def __init__(
        self,
        bench: Bench,
        instrument: str = "pump",
        address: int = 0,
        diameter_mm: float = 14.57,
        firmware: str = "NE1000V3.928",
        alarm: str | None = None,
    ) -> None:
        if not 0 <= int(address) <= 99:
            raise ValueError("address must be 0–99")
        if alarm is not None and alarm not in "RSTEO":
            raise ValueError("alarm must be one of R, S, T, E, O")
        self.bench = bench
        self.instrument = instrument
        self.address = int(address)
        self.firmware = firmware
        self.diameter_mm = float(diameter_mm)
        self.volume_units = self._default_units()
        self.rate_value = 1.0  # as set, in rate_units
        self.rate_units = "MM"
        self.target_ml = 0.0  # the volume to be dispensed; 0 pumps without end
        self.direction = "INF"
        self.infused_ml = 0.0
        self.withdrawn_ml = 0.0
        self.state = "S"
        self.alarm = alarm  # pending alarm type, answered to the next command
        self._remaining_ml: float | None = None  # left in the current run (None: without end, or no run)
        self._last = bench.clock.now()
        bench.register(self.sync)

    # --- physics ------------------------------------------------------------------------------------------------------

    @property
    def rate_ml_min(self) -> float:
        return self.rate_value / RATE_UNITS[self.rate_units]

    def rate_range_ml_min(self, diameter_mm: float | None = None) -> tuple[float, float]:
        """The rates the syringe can reach: the plunger's slowest and fastest speed times its cross-section."""
        area_ml_per_mm = _area_mm2(self.diameter_mm if diameter_mm is None else diameter_mm) / 1000.0
        return MIN_SPEED_MM_MIN * area_ml_per_mm, MAX_SPEED_MM_MIN * area_ml_per_mm

    def sync(self) -> None:
        """Bring the pump up to the bench's clock: move what the running motor moved since the last sync."""
        with self.bench.lock:
            now = self.bench.clock.now()
            elapsed = now - self._last
            self._last = now
            if self.state in PUMPING and elapsed > 0:
                self._pump_for(elapsed)

    def _pump_for(self, seconds: float) -> None:
        """Run the motor for `seconds` of simulated time, stopping at the target."""
        delta = self.rate_ml_min / 60.0 * seconds
        finished = self._remaining_ml is not None and delta >= self._remaining_ml - _EPSILON_ML
        if finished:
            delta = max(0.0, self._remaining_ml or 0.0)
        self._displace(delta)
        if self._remaining_ml is not None:
            self._remaining_ml -= delta
        if finished:
            self.state = "S"
            self._remaining_ml = None

    def _displace(self, volume_ml: float) -> None:
        """Move `volume_ml` through the line in the current direction, into or out of the vessel at the pump."""
        if volume_ml <= 0:
            return
        vessel = self.bench.vessel_at(self.instrument)
        if self.state == "I":
            self.infused_ml += volume_ml
            if vessel is not None:
                vessel.dose(volume_ml)
        else:
            self.withdrawn_ml += volume_ml
            if vessel is not None:
                _draw(vessel, volume_ml)

    def raise_alarm(self, kind: str) -> None:
        """An alarm condition (§10.2.4): the motor stops (a stall, a program error…) and the next command is
        answered with `A?<kind>` instead of being carried out."""
        if kind not in "RSTEO" or len(kind) != 1:
            raise ValueError("alarm must be one of R, S, T, E, O")
        with self.bench.lock:
            self.sync()
            self.state = "S"
            self._remaining_ml = None
            self.alarm = kind

    def _default_units(self) -> str:
        return "UL" if self.diameter_mm <= UL_UNITS_UP_TO_MM else "ML"

    # --- protocol -----------------------------------------------------------------------------------------------------

    def _parse(self, request: str) -> tuple[int, str, str]:
        """(address, command, parameters) after the pump strips spaces and control characters and upper-cases."""
        text = "".join(c for c in request if c > " " and c != "\x7f").upper()
        match = _REQUEST.fullmatch(text)
        assert match is not None  # the pattern matches any text
        address, command, parameters = match.groups()
        return (int(address) if address else 0), command or "", parameters

    def answers(self, request: str) -> bool:
        """Only the addressed pump answers; the others on the line stay silent."""
        return self._parse(request)[0] == self.address

    def error_reply(self, request: str) -> list[str]:
        """What the pump answers a packet that arrived corrupted: `?COM`, not acted on."""
        with self.bench.lock:
            self.sync()
            return [self._packet("?COM")]

    def _packet(self, data: str = "") -> str:
        return f"{STX}{self.address:02d}{self.state}{data}"

    def handle(self, request: str) -> list[str]:
        address, command, parameters = self._parse(request)
        if address != self.address:
            return []
        with self.bench.lock:
            self.sync()
            if self.alarm is not None:
                kind, self.alarm = self.alarm, None
                return [f"{STX}{self.address:02d}A?{kind}"]
            try:
                data = self._execute(command, parameters)
            except _Reject as reject:
                return [self._packet(reject.code)]
            return [self._packet(data)]

    def _execute(self, command: str, parameters: str) -> str:
        if command == "":
            if parameters:
                raise _Reject("?")
            return ""
        handler = getattr(self, f"_cmd_{command.lower()}", None)
        if handler is None:
            raise _Reject("?")
        return handler(parameters)

    # --- commands (§10.4) --------------------------------------------------------------------------------------------

    def _cmd_dia(self, parameters: str) -> str:
        if not parameters:
            return display(self.diameter_mm)
        value = _number(parameters)
        if not DIAMETER_RANGE_MM[0] <= value <= DIAMETER_RANGE_MM[1]:
            raise _Reject("?OOR")
        if self.state in PUMPING:
            raise _Reject("?NA")
        self.diameter_mm = value
        self.volume_units = self._default_units()
        return ""

    def _cmd_rat(self, parameters: str) -> str:
        if not parameters:
            return f"{display(self.rate_value)}{self.rate_units}"
        match = _RATE_PARAMETERS.fullmatch(parameters)
        if match is None:
            raise _Reject("?")
        value = _number(match.group(1))
        units = match.group(2) or self.rate_units
        if units != self.rate_units and self.state in PUMPING:
            raise _Reject("?NA")  # "Rate units cannot be changed while pumping."
        low, high = self.rate_range_ml_min()
        rate_ml_min = value / RATE_UNITS[units]
        if not low <= rate_ml_min <= high:
            raise _Reject("?OOR")
        self.rate_value, self.rate_units = value, units  # takes effect now: the motion so far was synced
        return ""

    def _cmd_vol(self, parameters: str) -> str:
        if not parameters:
            return f"{display(self.target_ml * VOLUME_UNITS[self.volume_units])}{self.volume_units}"
        if self.state in PUMPING:
            raise _Reject("?NA")
        if parameters in VOLUME_UNITS:
            self.volume_units = parameters
            return ""
        self.target_ml = _number(parameters) / VOLUME_UNITS[self.volume_units]
        return ""

    def _cmd_dir(self, parameters: str) -> str:
        if not parameters:
            return self.direction
        if parameters not in ("INF", "WDR", "REV"):
            raise _Reject("?")
        if self.state in PUMPING and self.target_ml != 0:
            raise _Reject("?NA")
        if parameters == "REV":
            parameters = "WDR" if self.direction == "INF" else "INF"
        self.direction = parameters
        if self.state in PUMPING:
            self.state = "I" if parameters == "INF" else "W"
        return ""

    def _cmd_run(self, parameters: str) -> str:
        if parameters not in ("", "1"):
            raise _Reject("?OOR")  # a phase of a program this one-phase twin does not hold
        if self.state in PUMPING:
            raise _Reject("?NA")
        if self.state != "P":  # a paused program resumes to its target; a stopped one starts afresh
            self._remaining_ml = self.target_ml if self.target_ml > 0 else None
        self.state = "I" if self.direction == "INF" else "W"
        return ""

    def _cmd_stp(self, parameters: str) -> str:
        if parameters:
            raise _Reject("?")
        if self.state in PUMPING:
            self.state = "P"
        else:
            self.state = "S"
            self._remaining_ml = None
        return ""

    def _cmd_dis(self, parameters: str) -> str:
        if parameters:
            raise _Reject("?")
        per = VOLUME_UNITS[self.volume_units]
        return f"I{display(self.infused_ml * per)}W{display(self.withdrawn_ml * per)}{self.volume_units}"

    def _cmd_cld(self, parameters: str) -> str:
        if parameters == "INF":
            self.infused_ml = 0.0
        elif parameters == "WDR":
            self.withdrawn_ml = 0.0
        else:
            raise _Reject("?")
        return ""

    def _cmd_ver(self, parameters: str) -> str:
        if parameters:
            raise _Reject("?")
        return self.firmware


def _draw(vessel: Vessel, volume_ml: float) -> None:
    """Take `volume_ml` of a vessel's well-mixed contents (every species in proportion); air once it is empty."""
    if vessel.volume_ml <= 0:
        return
    keep = max(0.0, 1.0 - volume_ml / vessel.volume_ml)
    vessel.volume_ml *= keep
    vessel.a_mmol *= keep
    vessel.b_mmol *= keep
    vessel.p_mmol *= keep
    vessel.d_mmol *= keep
