"""New Era Pump Systems syringe pumps (NE-1000 family: NE-1000, NE-1010, NE-500, NE-4000…) over RS-232, Basic mode.

Implemented from New Era Pump Systems Inc., "Multi-Phaser Model NE-1000 Syringe Pump User Manual", Publication
#1200-01 (edition 08/01/14, firmware V3.9xx), chapter 10 "RS-232 Communications" (the NE-500/NE-501 and
NE-1600/NE-1800 manuals carry the same protocol under chapters 8 and 9):
- §10.2.1, syntax legend: `<float>` is at most 4 digits plus one decimal point, at most 3 digits right of the
  point; `<volume units>` are `UL` | `ML`;
- §10.2.2, Basic mode: a command is `<command data> CR`; the pump strips spaces and control characters and
  upper-cases it; the answer is `STX <response data> ETX`, and the pump only ever talks when spoken to;
- §10.2.4, common syntax: `<command data> => [<address>] [<command>]`, `<response data> => <address> <status>
  [<data>]` with the address as two digits (0–99), `<status>` one of the prompts `I` infusing, `W` withdrawing,
  `S` program stopped, `P` program paused, `T` pause phase, `U` user (trigger) wait, `X` purging, or an alarm
  `A?R` reset (power interrupted), `A?S` motor stalled, `A?T` safe-mode communications time-out, `A?E` pumping
  program error, `A?O` program phase out of range;
- the command-error list that follows it: `?` not recognised, `?NA` not applicable now, `?OOR` data out of range,
  `?COM` invalid packet, `?IGN` ignored (simultaneous new phase start); an alarm is answered (and so
  acknowledged) in reply to the next valid command, which is not carried out;
- §10.4, command set: a command without parameters is a query, answered with its data in the set format; a set
  command is answered with a status only. `DIA [<float>]` syringe inside diameter in mm, `RAT [<float>
  [UM|MM|UH|MH]]` pumping rate and units, `VOL [<float> | <volume units>]` volume to be dispensed (0 pumps on
  without end; the units default to µL at or below 14.00 mm diameter, mL above), `DIR [INF | WDR | REV]`,
  `RUN`, `STP` (pauses a running program; a second STP stops it), `DIS` (`I <float> W <float> <volume units>`,
  volumes infused and withdrawn), `CLD INF | WDR` (clear one of them), `VER` (model and firmware, e.g.
  `NE1000V3.928`). Line defaults (Quick Start / §10.1): 19200 baud, 8N1.

Idempotency: the set-up commands (DIA, RAT, VOL, DIR, CLD) set values, so sending one twice equals sending it once
and the transport may retry them; queries (DIS, DIA, RAT, VOL, VER) likewise. Only `RUN` moves liquid: it is sent
with `idempotent=False` and never re-sent, and the dispense that follows is watched through `DIS` queries until
the pump stops by itself at the target, then checked against what was asked.

Numbers are written in the manual's `<float>` format and never rounded: a value it cannot carry exactly (too
many digits, below its resolution) is refused before anything is sent, because a silently rounded volume is a
wrong experiment recorded as a right one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from instruments.contract import Action, Argument, Driver
from instruments.errors import (
    DeviceError,
    InstrumentError,
    InstrumentTimeout,
    InvalidAction,
    LimitViolation,
    ProtocolError,
)
from instruments.transport import SerialSettings

STX = "\x02"
ETX = "\x03"

# §10.2.4 <prompt>: the operational state the pump reports in every answer.
PROMPTS: dict[str, str] = {
    "I": "infusing",
    "W": "withdrawing",
    "S": "stopped",
    "P": "paused",
    "T": "pause phase",
    "U": "user wait",
    "X": "purging",
}
# The prompts of a pumping program in progress (the pump has not finished what RUN started).
RUNNING_PROMPTS = frozenset("IWTUX")

# §10.2.4 <alarm type>: answered as `A?<type>` in place of a prompt.
ALARMS: dict[str, str] = {
    "R": "pump was reset (power was interrupted)",
    "S": "pump motor stalled",
    "T": "safe mode communications time out",
    "E": "pumping program error",
    "O": "pumping program phase is out of range",
}

# The command errors (`? <error>` as the answer's data) listed after §10.2.4.
COMMAND_ERRORS: dict[str, str] = {
    "": "command is not recognised",
    "NA": "command is not currently applicable",
    "OOR": "command data is out of range",
    "COM": "invalid communications packet received",
    "IGN": "command ignored due to a simultaneous new phase start",
}

# <rate units> (§10.4 RAT): how many of each unit make one mL/min.
RATE_UNITS: dict[str, float] = {"MM": 1.0, "UM": 1000.0, "MH": 60.0, "UH": 60000.0}
# <volume units> (§10.2.1): how many of each unit make one mL.
VOLUME_UNITS: dict[str, float] = {"ML": 1.0, "UL": 1000.0}

# The syntax legend's <float>: digits and at most one decimal point (the pump's answers obey the same grammar).
_FLOAT = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_FLOAT_RE = re.compile(_FLOAT)
_ADDRESS_RE = re.compile(r"[0-9]{2}")
_ALARM_RE = re.compile(r"A\?([RSTEO])")
_RATE_RE = re.compile(rf"({_FLOAT})(MM|UM|MH|UH)")
_VOLUME_RE = re.compile(rf"({_FLOAT})(ML|UL)")
_DISPENSED_RE = re.compile(rf"I({_FLOAT})W({_FLOAT})(ML|UL)")
_VERSION_RE = re.compile(r"NE([0-9]+)([A-Z0-9]*?)V([0-9]+(?:\.[0-9]+)*)")
_DIRECTIONS = ("INF", "WDR", "STK")

# The pump's number format (§10.2.1).
MAX_DIGITS = 4
MAX_DECIMALS = 3

DIAMETER_RANGE_MM = (0.1, 50.0)  # §10.4 DIA: the syringe inside diameters the NE-1000 takes
# The drive's top speed (the manual's specification: 2120 mL/h with a B-D 60 mL syringe, 26.59 mm) with the widest
# syringe it takes (50 mm): about 125 mL/min. The pump itself refuses (`?OOR`) a rate its syringe cannot reach.
MAX_RATE_ML_MIN = 125.0
MIN_RATE_ML_MIN = 0.001 / RATE_UNITS["UH"]  # 0.001 µL/h, the smallest rate the number format can write
MAX_VOLUME_ML = 9999.0  # the largest volume the number format can write (in mL)
# VOL 0 means "pump without end", never a dispense: the smallest volume is the smallest the format writes (0.001 µL)
MIN_VOLUME_ML = 0.001 / VOLUME_UNITS["UL"]

_RELATIVE_TOLERANCE = 1e-9  # float noise, not rounding: 0.1 + 0.2 is written as 0.3, 1.2345 is refused


# --- parsing: small pure functions that raise only typed errors ---------------------------------------------------


@dataclass(frozen=True)
class PumpReply:
    """One Basic-mode answer (§10.2.2/§10.2.4): the pump's address, its prompt (state) and the data after it."""

    address: int
    prompt: str
    data: str

    @property
    def state(self) -> str:
        return PROMPTS[self.prompt]

    @property
    def running(self) -> bool:
        return self.prompt in RUNNING_PROMPTS


@dataclass(frozen=True)
class Dispensed:
    """The `DIS` answer in mL, with the resolution (one unit of the last digit shown) of each volume."""

    infused_ml: float
    withdrawn_ml: float
    units: str
    infused_resolution_ml: float
    withdrawn_resolution_ml: float


def parse_reply(line: str, address: int) -> PumpReply:
    """Parse `STX <address> <status> [<data>]` (the ETX is the transport's terminator, already removed).

    Raises ProtocolError for anything the protocol does not allow (no STX, another pump's address, an unknown
    prompt), and DeviceError with the wire code (`A?S`, `?OOR`…) when the pump answers with an alarm or an error.
    """
    if not isinstance(line, str) or not line.startswith(STX):
        raise ProtocolError("answer does not start with STX", received=str(line))
    body = line[1:]
    if STX in body or ETX in body:
        raise ProtocolError("more than one packet in one answer", received=line)
    if not _ADDRESS_RE.fullmatch(body[:2]) or len(body) < 3:
        raise ProtocolError("answer without a two-digit address and a status", received=line)
    got = int(body[:2])
    if got != address:
        raise ProtocolError(f"answer from pump address {got:02d}, expected {address:02d}", received=line)
    status, data = body[2], body[3:]
    if any(not " " <= c <= "~" for c in data):
        raise ProtocolError("non-printable data in answer", received=line)
    if status == "A":
        alarm = _ALARM_RE.match(body[2:])
        if alarm is None:
            raise ProtocolError("malformed alarm status", received=line)
        kind = alarm.group(1)
        raise DeviceError(f"pump alarm A?{kind}: {ALARMS[kind]}", code=f"A?{kind}")
    if status not in PROMPTS:
        raise ProtocolError(f"unknown status {status!r}", received=line)
    if data.startswith("?"):
        error = data[1:]
        if error not in COMMAND_ERRORS:
            raise ProtocolError("unknown command error", received=line)
        raise DeviceError(f"{COMMAND_ERRORS[error]} (pump {PROMPTS[status]})", code=data)
    return PumpReply(got, status, data)


def parse_float(text: str) -> float:
    """A `<float>` of the syntax legend (§10.2.1): digits with at most one decimal point."""
    if not isinstance(text, str) or not _FLOAT_RE.fullmatch(text):
        raise ProtocolError("expected a number", received=str(text))
    return float(text)


def _resolution(text: str) -> float:
    """One unit of the last digit a number was written with ("1.500" -> 0.001, "14.57" -> 0.01, "500" -> 1)."""
    _, point, decimals = text.partition(".")
    return 10.0 ** -len(decimals) if point else 1.0


def parse_diameter(data: str) -> float:
    """The `DIA` query's answer (§10.4): the syringe inside diameter in mm."""
    return parse_float(data)


def parse_rate(data: str) -> float:
    """The `RAT` query's answer `<float> <rate units>` (§10.4), in mL/min."""
    match = _RATE_RE.fullmatch(data) if isinstance(data, str) else None
    if match is None:
        raise ProtocolError("expected a rate with its units (MM, UM, MH, UH)", received=str(data))
    return float(match.group(1)) / RATE_UNITS[match.group(2)]


def parse_volume(data: str) -> tuple[float, str]:
    """The `VOL` query's answer `<float> <volume units>` (§10.4): the volume to be dispensed in mL, and the units."""
    match = _VOLUME_RE.fullmatch(data) if isinstance(data, str) else None
    if match is None:
        raise ProtocolError("expected a volume with its units (ML, UL)", received=str(data))
    return float(match.group(1)) / VOLUME_UNITS[match.group(2)], match.group(2)


def parse_dispensed(data: str) -> Dispensed:
    """The `DIS` answer `I <float> W <float> <volume units>` (§10.4): volumes infused and withdrawn, in mL."""
    match = _DISPENSED_RE.fullmatch(data) if isinstance(data, str) else None
    if match is None:
        raise ProtocolError("expected I<volume>W<volume><units>", received=str(data))
    infused, withdrawn, units = match.groups()
    per_ml = VOLUME_UNITS[units]
    return Dispensed(
        float(infused) / per_ml,
        float(withdrawn) / per_ml,
        units,
        _resolution(infused) / per_ml,
        _resolution(withdrawn) / per_ml,
    )


def parse_direction(data: str) -> str:
    """The `DIR` query's answer (§10.4): INF, WDR (or STK, the sticky direction of a pumping program)."""
    if data not in _DIRECTIONS:
        raise ProtocolError("expected INF, WDR or STK", received=str(data))
    return data


def parse_version(data: str) -> dict[str, str]:
    """The `VER` answer (§10.4), e.g. `NE1000V3.928`: model number, model variant and firmware version."""
    match = _VERSION_RE.fullmatch(data) if isinstance(data, str) else None
    if match is None:
        raise ProtocolError("expected NE<model>V<version>", received=str(data))
    model, variant, version = match.groups()
    return {"vendor": "New Era Pump Systems", "model": f"NE-{model}{variant}", "firmware": f"V{version}"}


# --- writing numbers ----------------------------------------------------------------------------------------------


def format_float(value: float, what: str = "value") -> str:
    """`value` as the shortest `<float>` of §10.2.1 (≤ 4 digits, ≤ 3 decimals) that is exactly it.

    LimitViolation if it is negative or too large for 4 digits; InvalidAction if the format cannot carry it
    exactly (more significant digits, or finer than 0.001): refused, never rounded.
    """
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidAction(f"{what}: expected a finite number, got {value!r}")
    if value < 0:
        raise LimitViolation(f"{what} = {value!r}: the pump's numbers are not negative", limit=f"{what}.minimum")
    for decimals in range(MAX_DECIMALS + 1):
        text = f"{value:.{decimals}f}"
        if sum(c.isdigit() for c in text) > MAX_DIGITS:
            break  # more decimals only add digits
        if abs(float(text) - value) <= _RELATIVE_TOLERANCE * max(1.0, abs(value)):
            return text
    if value >= 10**MAX_DIGITS - 0.5:
        raise LimitViolation(f"{what} = {value:g} has more than {MAX_DIGITS} digits", limit=f"{what}.maximum")
    raise InvalidAction(
        f"{what} = {value!r} cannot be written exactly in the pump's number format "
        f"({MAX_DIGITS} digits, at most {MAX_DECIMALS} decimals)"
    )


def _in_units(value: float, units: dict[str, float], what: str) -> tuple[str, str]:
    """The first of `units` (in their order) in which `value` can be written exactly: (number, unit)."""
    for unit, per in units.items():
        try:
            return format_float(value * per, what), unit
        except (InvalidAction, LimitViolation):
            continue
    raise InvalidAction(
        f"{what} = {value!r} cannot be written exactly in the pump's number format in any of its units "
        f"({', '.join(units)}; {MAX_DIGITS} digits, at most {MAX_DECIMALS} decimals)"
    )


def format_rate(rate_ml_min: float) -> tuple[str, str]:
    """A rate in mL/min as `<float>` and `<rate units>` for `RAT` (§10.4): mL/min if exact, else µL/min, mL/h, µL/h."""
    return _in_units(rate_ml_min, RATE_UNITS, "rate_ml_min")


def format_volume(volume_ml: float) -> tuple[str, str]:
    """A volume in mL as `<float>` and `<volume units>` for `VOL` (§10.4): mL if exact, else µL."""
    return _in_units(volume_ml, VOLUME_UNITS, "volume_ml")


# --- the driver ----------------------------------------------------------------------------------------------------

_VOLUME = Argument(
    "volume_ml",
    unit="mL",
    minimum=MIN_VOLUME_ML,
    maximum=MAX_VOLUME_ML,
    description="volume to move; written exactly in mL or µL (≤ 4 digits, ≤ 3 decimals) or refused",
)
_RATE = Argument(
    "rate_ml_min",
    unit="mL/min",
    minimum=MIN_RATE_ML_MIN,
    maximum=MAX_RATE_ML_MIN,
    description="pumping rate; the pump refuses (?OOR) a rate its syringe diameter cannot reach",
)


class NewEraPump(Driver):
    """A New Era NE-1000-family syringe pump at one network address on an RS-232 line (Basic mode)."""

    name = "newera-pump"
    title = "New Era syringe pump (NE-1000 family)"
    manual = (
        "New Era Pump Systems, Multi-Phaser Model NE-1000 Syringe Pump User Manual, Publication #1200-01 "
        "(08/01/14, firmware V3.9xx), chapter 10 RS-232 Communications: §10.2.1 syntax legend, §10.2.2 Basic mode, "
        "§10.2.4 common syntax (prompts, alarms, command errors), §10.4 command set"
    )
    serial = SerialSettings(
        baudrate=19200, bytesize=8, parity="N", stopbits=1, write_terminator=b"\r", read_terminator=ETX.encode("ascii")
    )
    actions = (
        Action(
            "set_diameter",
            "Set the syringe inside diameter (DIA); it sets the pump's rate range and default volume units.",
            (
                Argument(
                    "diameter_mm",
                    unit="mm",
                    minimum=DIAMETER_RANGE_MM[0],
                    maximum=DIAMETER_RANGE_MM[1],
                    description="syringe inside diameter (the syringe maker's figure)",
                ),
            ),
            {"diameter_mm": "mm"},
        ),
        Action(
            "dispense",
            "Infuse a volume at a rate (DIR INF, RAT, VOL, CLD INF, RUN) and wait until the pump stops at it.",
            (_VOLUME, _RATE),
            {"dispensed_ml": "mL"},
            idempotent=False,
        ),
        Action(
            "withdraw",
            "Withdraw a volume at a rate (DIR WDR, RAT, VOL, CLD WDR, RUN) and wait until the pump stops at it.",
            (_VOLUME, _RATE),
            {"withdrawn_ml": "mL"},
            idempotent=False,
        ),
        Action("stop", "Stop the pumping program (STP, twice if the first only paused it).", (), {"state": ""}),
        Action(
            "read_dispensed",
            "Read the volumes infused and withdrawn since they were last cleared (DIS).",
            (),
            {"infused_ml": "mL", "withdrawn_ml": "mL"},
        ),
    )

    poll_interval_s: ClassVar[tuple[float, float]] = (0.02, 0.5)  # bounds of the wait between status polls
    start_margin_s: ClassVar[float] = 10.0  # on top of volume/rate: the pump's start-up, the line, a slow host
    stop_attempts: ClassVar[int] = 3

    def __init__(self, port: str, *, address: int = 0, **options: Any) -> None:
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 99:
            raise InvalidAction(f"newera-pump address must be a whole number 0–99 (§10.2.4), got {address!r}")
        super().__init__(port, **options)
        self.address = address

    # --- one exchange -----------------------------------------------------------------------------------------------

    def _command(self, command: str, *, idempotent: bool = True, timeout_s: float | None = None) -> PumpReply:
        """Send `<address><command>` (§10.2.4) and parse the answer.

        The parser runs inside the transport's retry loop, so an idempotent command whose answer breaks the
        protocol (noise that still decodes as ASCII, another address) is sent again; so is one the pump answers
        `?COM` (it received a corrupted packet and did nothing). A non-idempotent command is never re-sent.
        """
        wire = f"{self.address:02d}{command}"

        def parse(line: str) -> PumpReply:
            try:
                return parse_reply(line, self.address)
            except InstrumentError as exc:
                exc.command = wire
                raise

        attempts = 1 + (self.transport.settings.retries if idempotent else 0)
        for attempt in range(1, attempts + 1):
            try:
                return self.query(wire, idempotent=idempotent, timeout_s=timeout_s, parse=parse)
            except DeviceError as exc:
                if exc.code != "?COM" or attempt == attempts:
                    raise
                self.transport.transcript.record("note", f"retry {attempt}/{attempts - 1} of {wire!r}: ?COM")
        raise AssertionError("unreachable")

    def _set(self, command: str) -> PumpReply:
        """A set command (§10.4): the pump answers with a status only when it took the value."""
        reply = self._command(command)
        if reply.data:
            raise ProtocolError(
                "a set command is answered with a status only",
                received=reply.data,
                command=f"{self.address:02d}{command}",
            )
        return reply

    def _stop(self) -> PumpReply:
        """`STP` (§10.4) until the program is stopped (`S`): the first STP pauses a running program (`P`), and
        a paused program would resume on the next RUN. An alarm answer acknowledges the alarm without acting on
        the STP, so STP is sent again."""
        for _ in range(self.stop_attempts):
            try:
                reply = self._command("STP")
            except DeviceError as exc:
                if exc.code.startswith("A?"):
                    continue
                raise
            if reply.prompt == "S":
                return reply
        raise DeviceError(
            f"the pump is not stopped after {self.stop_attempts} STP commands",
            code="STP",
            command=f"{self.address:02d}STP",
        )

    # --- the contract -------------------------------------------------------------------------------------------------

    def identify(self) -> dict[str, str]:
        """`VER` (§10.4). A reset alarm (`A?R`, §10.2.4) in answer is the pump reporting its power-up: answering it
        acknowledged it, so VER is asked again; any other alarm is raised."""
        try:
            reply = self._command("VER")
        except DeviceError as exc:
            if exc.code != "A?R":
                raise
            self.transport.transcript.record("note", "power-up reset alarm (A?R) acknowledged")
            reply = self._command("VER")
        identity = parse_version(reply.data)
        identity["address"] = f"{self.address:02d}"
        identity["version_string"] = reply.data
        return identity

    def read_status(self) -> dict[str, Any]:
        """State and set-up: `DIS`, `DIR`, `DIA`, `RAT`, `VOL` queries (§10.4)."""
        reply = self._command("DIS")
        dispensed = parse_dispensed(reply.data)
        target_ml, units = parse_volume(self._command("VOL").data)
        return {
            "state": reply.state,
            "prompt": reply.prompt,
            "direction": parse_direction(self._command("DIR").data),
            "diameter_mm": parse_diameter(self._command("DIA").data),
            "rate_ml_min": parse_rate(self._command("RAT").data),
            "volume_target_ml": target_ml,
            "volume_units": units,
            "infused_ml": dispensed.infused_ml,
            "withdrawn_ml": dispensed.withdrawn_ml,
        }

    def safe_state(self) -> None:
        """Stop pumping: `STP` until the program is stopped (§10.4)."""
        self._stop()

    # --- actions -----------------------------------------------------------------------------------------------------

    def do_set_diameter(self, diameter_mm: float) -> dict[str, Any]:
        """`DIA <float>` then the `DIA` query (§10.4): the diameter the pump now holds."""
        text = format_float(diameter_mm, "diameter_mm")
        self._set(f"DIA {text}")
        held = parse_diameter(self._command("DIA").data)
        if abs(held - float(text)) > 0.5 * _resolution(text) + 1e-12:
            raise DeviceError(f"the pump holds diameter {held:g} mm after DIA {text}", code="DIA")
        return {"diameter_mm": held}

    def do_dispense(self, volume_ml: float, rate_ml_min: float) -> dict[str, Any]:
        """Infuse: `DIR INF`, `RAT`, `VOL`, `CLD INF`, `RUN` (once), `DIS` until stopped (§10.4)."""
        return {"dispensed_ml": self._pump("INF", volume_ml, rate_ml_min)}

    def do_withdraw(self, volume_ml: float, rate_ml_min: float) -> dict[str, Any]:
        """Withdraw: `DIR WDR`, `RAT`, `VOL`, `CLD WDR`, `RUN` (once), `DIS` until stopped (§10.4)."""
        return {"withdrawn_ml": self._pump("WDR", volume_ml, rate_ml_min)}

    def do_stop(self) -> dict[str, Any]:
        """`STP` until stopped (§10.4)."""
        return {"state": self._stop().state}

    def do_read_dispensed(self) -> dict[str, Any]:
        """`DIS` (§10.4): volumes infused and withdrawn since last cleared, in mL."""
        dispensed = parse_dispensed(self._command("DIS").data)
        return {"infused_ml": dispensed.infused_ml, "withdrawn_ml": dispensed.withdrawn_ml}

    # --- moving liquid ------------------------------------------------------------------------------------------------

    def _pump(self, direction: str, volume_ml: float, rate_ml_min: float) -> float:
        """Set up one pumping phase, start it once, wait for the pump to stop at the target, and check the volume.

        Every set-up command is a setting (§10.4), so the transport may retry it; `RUN` is sent once. A pump still
        running long after volume/rate is stopped and the wait raised as InstrumentTimeout.
        """
        rate_text, rate_units = format_rate(rate_ml_min)  # refused here, before anything is sent
        volume_text, volume_units = format_volume(volume_ml)
        self._set(f"DIR {direction}")
        self._set(f"RAT {rate_text} {rate_units}")
        self._set(f"VOL {volume_units}")
        self._set(f"VOL {volume_text}")
        self._set(f"CLD {direction}")
        expected_s = volume_ml / rate_ml_min * 60.0
        self._command("RUN", idempotent=False)
        started = self.clock.now()
        deadline = started + expected_s * 1.25 + self.start_margin_s
        # Poll soon after the start (a short dispense is over quickly), then less often: doubling up to a twentieth
        # of the expected time, within the bounds.
        low, high = self.poll_interval_s
        interval, longest = low, min(high, max(low, expected_s / 20))
        while True:
            reply = self._command("DIS")
            if not reply.running:
                break
            if self.clock.now() > deadline:
                moved = parse_dispensed(reply.data)
                self._stop()
                so_far = moved.infused_ml if direction == "INF" else moved.withdrawn_ml
                raise InstrumentTimeout(
                    f"the pump was still {reply.state} {self.clock.now() - started:.1f} s after RUN "
                    f"({so_far:g} of {volume_ml:g} mL at {rate_ml_min:g} mL/min should take {expected_s:.1f} s); "
                    "stopped it",
                    command=f"{self.address:02d}RUN",
                )
            self.clock.sleep(interval)
            interval = min(longest, interval * 2)
        moved = parse_dispensed(reply.data)
        if direction == "INF":
            amount, resolution = moved.infused_ml, moved.infused_resolution_ml
        else:
            amount, resolution = moved.withdrawn_ml, moved.withdrawn_resolution_ml
        if abs(amount - volume_ml) > resolution * (1 + 1e-6):
            raise DeviceError(
                f"the pump {reply.state} after {amount:g} mL of the {volume_ml:g} mL asked "
                f"(resolution {resolution:g} mL)",
                code="incomplete",
                command=f"{self.address:02d}DIS",
            )
        return amount
