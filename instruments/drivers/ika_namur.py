"""IKA magnetic stirrer-hotplates (C-MAG HS 7, IKA Plate / RCT digital) over RS 232, with IKA's NAMUR commands.

Implemented from the IKA operating instructions of the C-MAG HS 7 (control), chapter "Interfaces and outputs"
(sections "RS 232 interface", "Command syntax and format" and the NAMUR command table), checked against the same
chapter of the IKA Plate (RCT digital) operating instructions, whose table gives the setting ranges
(`OUT_SP_1 x`, x = 0…310; `OUT_SP_4 x`, x = 0…1500) and the watchdog's display code "Er02".

What the manual prescribes, and what this driver does with it:
- line: 9600 bit/s, 1 start bit, 7 character bits, even parity, 1 stop bit, no flow control ("Character format");
- commands are capital letters, a command and its parameter are separated by at least one blank (hex 20), the
  decimal separator is a dot, and every command and every answer ends with CR LF (the manual prints the end as
  "Blank CR LF"; a blank before the end of an answer is tolerated by the parsers, and commands are sent with CR LF);
- the device speaks only when asked ("Even fault indications cannot be sent spontaneously");
- reading commands (`IN_NAME`, `IN_PV_1`, `IN_PV_2`, `IN_PV_4`, `IN_SP_1`, `IN_SP_4`) are answered with one line;
  a value is answered as `<value> <channel>`, e.g. `25.3 1` to `IN_PV_1` (the channel number after the value is
  what IKA hotplates send, and what the open drivers written against real devices strip off);
- setting and switching commands (`OUT_SP_1 n`, `OUT_SP_4 n`, `START_1`, `STOP_1`, `START_4`, `STOP_4`,
  `RESET`) are not answered at all. So a setting lost on the line, or one the device refused (outside its range,
  above its safety temperature), would go unnoticed; this driver therefore reads every setpoint back (`IN_SP_1`
  after `OUT_SP_1`, `IN_SP_4` after `OUT_SP_4`), sends it once more if it was not taken (a setpoint is harmless
  to repeat), and raises DeviceError (code `not-taken`) if it still was not;
- the manual documents no error answer on the interface, only the codes the display shows ("Error codes" table,
  e.g. `Er02` after a watchdog event). Where a device answers a query with such a code (`Er 2`, `ER 2`, `Er02`,
  `E2`), the parsers raise DeviceError with the code's number, never read it as a value.
The heater and motor on/off state has no reading command in the hotplates' documented table, so `START_1`/`STOP_1`
and `START_4`/`STOP_4` cannot be read back; the setpoints, temperatures and speed can, and are.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from instruments.contract import Action, Argument, Driver
from instruments.errors import DeviceError, Disconnected, InstrumentError, InstrumentTimeout, ProtocolError
from instruments.transport import SerialSettings

# NAMUR channel numbers of the hotplates' command table.
MEDIUM_CHANNEL = 1  # external sensor (Pt 1000 / ETS-D) in the medium; also the temperature setpoint's channel
PLATE_CHANNEL = 2  # hotplate sensor
SPEED_CHANNEL = 4  # motor

MAX_ANSWER = 80  # "have a maximum length of 80 characters" (Command syntax and format)

_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_CHANNEL = re.compile(r"[0-9]{1,3}")
# The display's error codes as a device might answer them: "Er 2", "ER 2", "Er02", "E2", "E 02".
_ERROR = re.compile(r"(?:ER|Er|er|E) ?0*([0-9]{1,3})")

# The display's error codes ("Error codes" table of the hotplates' operating instructions), paraphrased. A code not
# listed here is still reported as a DeviceError with its number.
ERROR_CODES: dict[str, str] = {
    "2": "watchdog: communication with the PC interrupted (heating and stirring switched off)",
    "3": "temperature inside the device too high",
    "4": "motor blocked or speed deviation",
    "5": "medium temperature sensor: no temperature rise (sensor not in the medium?)",
    "6": "safety circuit of the external sensor interrupted",
    "14": "external temperature sensor short-circuited",
    "24": "hotplate temperature above the safety temperature",
    "25": "heating element monitoring failed",
}


def check_device_error(line: str) -> None:
    """Raise DeviceError if the line is one of the display's error codes (`Er 2`); return otherwise."""
    match = _ERROR.fullmatch(line.strip())
    if match is None:
        return
    code = str(int(match.group(1)))
    meaning = ERROR_CODES.get(code, "see the error code table of the operating instructions")
    raise DeviceError(f"device reports error Er {code}: {meaning}", code=code)


def parse_value_response(line: str, channel: int) -> float:
    """The value of a `<value> <channel>` answer (e.g. `25.3 1` to `IN_PV_1`), checked to be for `channel`.

    An answer for another channel is a ProtocolError: it is a late answer to an earlier command, not this one's.
    """
    text = line.strip()
    check_device_error(text)
    parts = text.split(" ")
    parts = [p for p in parts if p]
    if len(parts) != 2:
        raise ProtocolError(f"expected '<value> {channel}'", received=line)
    value, echoed = parts
    if _NUMBER.fullmatch(value) is None or _CHANNEL.fullmatch(echoed) is None:
        raise ProtocolError(f"expected '<value> {channel}'", received=line)
    if int(echoed) != channel:
        raise ProtocolError(f"answer for channel {int(echoed)}, expected channel {channel}", received=line)
    number = float(value)
    if not math.isfinite(number):
        raise ProtocolError("value out of range", received=line)
    return number


def parse_name_response(line: str) -> str:
    """The device name answered to `IN_NAME` (e.g. `C-MAG HS7`): printable text, at most 80 characters."""
    text = line.strip()
    check_device_error(text)
    if not text:
        raise ProtocolError("empty device name", received=line)
    if len(text) > MAX_ANSWER or not text.isascii() or not text.isprintable():
        raise ProtocolError("not a device name", received=line)
    return text


class IkaNamurHotplate(Driver):
    """An IKA stirrer-hotplate: temperature of the medium (external sensor) and stirring speed."""

    name = "ika-namur"
    title = "IKA stirrer-hotplate (NAMUR)"
    manual = (
        "IKA C-MAG HS 7 (control) operating instructions, chapter 'Interfaces and outputs' (RS 232 interface, "
        "Command syntax and format, NAMUR commands); IKA Plate (RCT digital) operating instructions, same chapter"
    )
    serial = SerialSettings(
        baudrate=9600, bytesize=7, parity="E", stopbits=1, write_terminator=b"\r\n", read_terminator=b"\r\n"
    )

    # A device that rounds a setpoint to its setting step (1 K, 10 rpm on some models) has still taken it.
    temperature_tolerance_c: ClassVar[float] = 0.5
    speed_tolerance_rpm: ClassVar[float] = 5.0
    setpoint_resends: ClassVar[int] = 1  # extra OUT_SP_x after a read-back that shows it was not taken
    # The device does not answer settings, so nothing tells when it has acted on one; give it a moment before the
    # read-back (a real unit needs some tens of milliseconds between commands).
    settle_s: ClassVar[float] = 0.1
    poll_s: ClassVar[float] = 0.1  # wait_for_temperature's polling period

    actions = (
        Action(
            "set_temperature",
            "Set the temperature setpoint (OUT_SP_1), check it was taken (IN_SP_1), and switch the heater on "
            "(START_1). The device regulates the medium's temperature when its external sensor is connected.",
            arguments=(Argument("temperature_c", "number", "°C", 0.0, 340.0, description="setpoint"),),
        ),
        Action("heat_off", "Switch the heater off (STOP_1); the setpoint is kept."),
        Action(
            "set_speed",
            "Set the stirring speed (OUT_SP_4), check it was taken (IN_SP_4), and start the motor (START_4).",
            arguments=(Argument("speed_rpm", "number", "rpm", 0.0, 1500.0, description="setpoint"),),
        ),
        Action("stir_off", "Stop the motor (STOP_4); the setpoint is kept."),
        Action(
            "read_temperature",
            "Read the medium's temperature from the external sensor (IN_PV_1).",
            returns={"temperature_c": "°C"},
        ),
        Action(
            "wait_for_temperature",
            "Poll the medium's temperature (IN_PV_1) until it is within tolerance of the target; "
            "InstrumentTimeout if it is not within timeout_s.",
            arguments=(
                Argument("temperature_c", "number", "°C", 0.0, 340.0, description="target"),
                Argument("tolerance_c", "number", "°C", 0.05, 50.0, default=1.0),
                Argument("timeout_s", "number", "s", 0.0, 7200.0, default=600.0),
            ),
            returns={"temperature_c": "°C", "waited_s": "s"},
        ),
    )

    # --- the contract ---------------------------------------------------------------------------------------------

    def identify(self) -> dict[str, str]:
        """`IN_NAME`: the device name (command table: "Read the device name")."""
        return {"model": self.query("IN_NAME", parse=parse_name_response), "protocol": "NAMUR"}

    def read_status(self) -> dict[str, Any]:
        """Setpoints (`IN_SP_1`, `IN_SP_4`) and actual values (`IN_PV_1`, `IN_PV_2`, `IN_PV_4`)."""
        return {
            "temperature_setpoint_c": self._read(f"IN_SP_{MEDIUM_CHANNEL}", MEDIUM_CHANNEL),
            "medium_temperature_c": self._read(f"IN_PV_{MEDIUM_CHANNEL}", MEDIUM_CHANNEL),
            "plate_temperature_c": self._read(f"IN_PV_{PLATE_CHANNEL}", PLATE_CHANNEL),
            "speed_setpoint_rpm": self._read(f"IN_SP_{SPEED_CHANNEL}", SPEED_CHANNEL),
            "speed_rpm": self._read(f"IN_PV_{SPEED_CHANNEL}", SPEED_CHANNEL),
        }

    def safe_state(self) -> None:
        """`STOP_1` and `STOP_4`: heater and motor off, each confirmed as in `_switch`. Both are sent even if the
        first fails on the line."""
        failure: InstrumentError | None = None
        for command in ("STOP_1", "STOP_4"):
            try:
                self._switch(command)
            except InstrumentError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    # --- actions --------------------------------------------------------------------------------------------------

    def do_set_temperature(self, temperature_c: float) -> dict[str, Any]:
        """`OUT_SP_1 n` (adjust the set temperature), read back with `IN_SP_1`, then `START_1` (start the heater).

        The setpoint is read back once more after `START_1`: users report firmware that resets the setpoint when
        the heater starts, and a heater regulating to a setpoint nobody asked for must not go unnoticed.
        """
        self._apply_setpoint(MEDIUM_CHANNEL, temperature_c, f"{temperature_c:.1f}", self.temperature_tolerance_c)
        self._switch("START_1")
        self._check_setpoint(MEDIUM_CHANNEL, temperature_c, f"{temperature_c:.1f}", self.temperature_tolerance_c)
        return {}

    def do_heat_off(self) -> dict[str, Any]:
        """`STOP_1`: stop the heater (not answered; variables set with OUT_SP_1 are kept)."""
        self._switch("STOP_1")
        return {}

    def do_set_speed(self, speed_rpm: float) -> dict[str, Any]:
        """`OUT_SP_4 n` (adjust the set speed, whole rpm), read back with `IN_SP_4`, then `START_4` (start motor)."""
        text = str(round(speed_rpm))
        self._apply_setpoint(SPEED_CHANNEL, speed_rpm, text, self.speed_tolerance_rpm)
        self._switch("START_4")
        self._check_setpoint(SPEED_CHANNEL, speed_rpm, text, self.speed_tolerance_rpm)
        return {}

    def do_stir_off(self) -> dict[str, Any]:
        """`STOP_4`: stop the motor (not answered; the speed setpoint is kept)."""
        self._switch("STOP_4")
        return {}

    def do_read_temperature(self) -> dict[str, Any]:
        """`IN_PV_1`: the actual value of the external sensor, which stands in the medium."""
        return {"temperature_c": self._read(f"IN_PV_{MEDIUM_CHANNEL}", MEDIUM_CHANNEL)}

    def do_wait_for_temperature(self, temperature_c: float, tolerance_c: float, timeout_s: float) -> dict[str, Any]:
        """Poll `IN_PV_1` every `poll_s` until the medium is within `tolerance_c` of `temperature_c`."""
        start = self.clock.now()
        deadline = start + timeout_s
        while True:
            reading = self._read(f"IN_PV_{MEDIUM_CHANNEL}", MEDIUM_CHANNEL)
            now = self.clock.now()
            if abs(reading - temperature_c) <= tolerance_c:
                return {"temperature_c": reading, "waited_s": round(now - start, 3)}
            if now >= deadline:
                raise InstrumentTimeout(
                    f"the medium did not reach {temperature_c:g} ± {tolerance_c:g} °C within {timeout_s:g} s: "
                    f"it reads {reading:g} °C (is the heater on, the setpoint right, the sensor in the medium?)",
                    instrument=self.instrument,
                    command=f"IN_PV_{MEDIUM_CHANNEL}",
                )
            self.clock.sleep(max(0.0, min(self.poll_s, deadline - now)))

    # --- helpers --------------------------------------------------------------------------------------------------

    def _read(self, command: str, channel: int) -> float:
        """An idempotent reading. The parser runs in the transport's retry loop, so an answer for another channel
        (a late answer to an earlier command) is asked again like a garbled one; a device error is raised at once."""
        return self.query(command, parse=lambda line: parse_value_response(line, channel))

    def _switch(self, command: str) -> None:
        """Send an unanswered switching command (START/STOP) so that its loss cannot pass unseen.

        NAMUR has no query for whether the heater or the motor is on, so a lost `STOP_1` would leave a heater on
        with nobody the wiser. The command is idempotent, so it goes out twice (a single line error no longer
        loses it), and the link is then confirmed by a query; if the line dropped and was reopened meanwhile, the
        copies may have gone nowhere, and both are sent again (at most twice more), each step in the transcript.
        """
        for _ in range(3):
            opened = self.transport.opened
            try:
                self._send_settled(command)
                self._send_settled(command)
                self._read(f"IN_SP_{MEDIUM_CHANNEL}", MEDIUM_CHANNEL)  # confirms the line is up (retried if not)
            except Disconnected:
                self.transport.transcript.record("note", f"line lost around {command!r}; sending it again")
                continue
            if self.transport.opened == opened:
                return
            self.transport.transcript.record("note", f"line reopened after {command!r}; sending it again")
        raise Disconnected(
            f"{command} could not be confirmed: the line kept dropping", instrument=self.instrument, command=command
        )

    def _send_settled(self, command: str) -> None:
        self.send(command)
        self.clock.sleep(self.settle_s)

    def _apply_setpoint(self, channel: int, wanted: float, text: str, tolerance: float) -> None:
        """Send `OUT_SP_<channel> <text>` and read it back; once more if not taken; DeviceError if still not."""
        command = f"OUT_SP_{channel} {text}"
        attempts = 1 + self.setpoint_resends
        got = math.nan
        for attempt in range(1, attempts + 1):
            self._send_settled(command)
            got = self._read(f"IN_SP_{channel}", channel)
            if abs(got - wanted) <= tolerance:
                return
            if attempt < attempts:
                self.transport.transcript.record(
                    "note", f"{command!r} not taken (IN_SP_{channel} reads {got:g}); sending it again"
                )
        raise DeviceError(
            f"setpoint {text} was not taken: IN_SP_{channel} reads {got:g} after {attempts} attempt(s) "
            "(outside the device's range or its safety limit, or the command was lost on the line)",
            code="not-taken",
            instrument=self.instrument,
            command=command,
        )

    def _check_setpoint(self, channel: int, wanted: float, text: str, tolerance: float) -> None:
        """Read the setpoint back; re-apply it (with read-back) if it changed since it was set."""
        got = self._read(f"IN_SP_{channel}", channel)
        if abs(got - wanted) > tolerance:
            self.transport.transcript.record("note", f"IN_SP_{channel} changed to {got:g} after start; setting again")
            self._apply_setpoint(channel, wanted, text, tolerance)
