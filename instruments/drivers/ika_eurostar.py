"""IKA overhead stirrers (EUROSTAR 60 control, EUROSTAR 100 control) over RS 232, with IKA's NAMUR commands: a
mixer's speed, its torque, on and off.

Implemented from the IKA EUROSTAR 60 control / 100 control operating instructions, chapter "Interfaces and outputs"
(RS 232 interface, "Command syntax and format", the NAMUR command table), the same command set and line format as
IKA's hotplates (`instruments.drivers.ika_namur`, whose parsers this driver shares):
- line: 9600 bit/s, 7 data bits, even parity, 1 stop bit; commands and answers end with CR LF; a command and its
  parameter are separated by a blank; the device speaks only when asked;
- `IN_NAME` (device name), `IN_PV_4` (actual speed, rpm), `IN_PV_5` (actual torque, Ncm), `IN_SP_4` (speed
  setpoint) are answered `<value> <channel>`; `OUT_SP_4 n` (set the speed), `START_4`, `STOP_4` (motor on, off)
  and `RESET` are not answered;
- speed range 30 to 2000 rpm (EUROSTAR 60 control; the 100 control's is 30 to 1300 rpm).
Settings are not answered, so, as for the hotplates, the speed setpoint is read back after it is set (and sent once
more if it was not taken), and `START_4`/`STOP_4` are sent twice and the line confirmed with a query: the protocol
cannot say whether the motor is on, and a lost `STOP_4` must not leave a mixer running.
"""

from __future__ import annotations

from typing import Any, ClassVar

from instruments.contract import Action, Argument, Driver
from instruments.drivers.ika_namur import parse_name_response, parse_value_response
from instruments.errors import DeviceError, Disconnected
from instruments.transport import SerialSettings

SPEED_CHANNEL = 4
TORQUE_CHANNEL = 5


class IkaEurostarMixer(Driver):
    """An IKA EUROSTAR overhead stirrer driving a mixer: speed set and read back, motor on and off, torque."""

    name = "ika-eurostar"
    title = "IKA EUROSTAR overhead stirrer (NAMUR)"
    manual = (
        "IKA EUROSTAR 60 control / EUROSTAR 100 control operating instructions, chapter 'Interfaces and outputs' "
        "(RS 232 interface, command syntax and format, NAMUR commands IN_NAME, IN_PV_4, IN_PV_5, IN_SP_4, "
        "OUT_SP_4, START_4, STOP_4, RESET)"
    )
    serial = SerialSettings(
        baudrate=9600, bytesize=7, parity="E", stopbits=1, write_terminator=b"\r\n", read_terminator=b"\r\n"
    )

    speed_tolerance_rpm: ClassVar[float] = 5.0  # a device rounding to its setting step has still taken the setpoint
    setpoint_resends: ClassVar[int] = 1
    settle_s: ClassVar[float] = 0.1  # unanswered settings: a moment before the read-back

    actions: ClassVar[tuple[Action, ...]] = (
        Action(
            "set_speed",
            "Set the speed (OUT_SP_4), check it was taken (IN_SP_4), and start the motor (START_4).",
            arguments=(Argument("speed_rpm", unit="rpm", minimum=30.0, maximum=2000.0),),
        ),
        Action("stop", "Stop the motor (STOP_4); the setpoint is kept."),
        Action(
            "read_speed",
            "The actual speed (IN_PV_4) and torque (IN_PV_5).",
            returns={"speed_rpm": "rpm", "torque_ncm": "Ncm"},
        ),
    )

    # --- the contract ---------------------------------------------------------------------------------------------

    def identify(self) -> dict[str, str]:
        return {"model": self.query("IN_NAME", parse=parse_name_response), "protocol": "NAMUR"}

    def read_status(self) -> dict[str, Any]:
        return {
            "speed_setpoint_rpm": self._read(SPEED_CHANNEL, "IN_SP_4"),
            "speed_rpm": self._read(SPEED_CHANNEL, "IN_PV_4"),
            "torque_ncm": self._read(TORQUE_CHANNEL, "IN_PV_5"),
        }

    def safe_state(self) -> None:
        self._switch("STOP_4")

    # --- actions --------------------------------------------------------------------------------------------------

    def do_set_speed(self, speed_rpm: float) -> dict[str, Any]:
        text = str(round(speed_rpm))
        got = float("nan")
        for attempt in range(1 + self.setpoint_resends):
            self._send_settled(f"OUT_SP_4 {text}")
            got = self._read(SPEED_CHANNEL, "IN_SP_4")
            if abs(got - speed_rpm) <= self.speed_tolerance_rpm:
                break
            if attempt < self.setpoint_resends:
                self.transport.transcript.record("note", f"'OUT_SP_4 {text}' not taken (IN_SP_4 reads {got:g})")
        else:
            raise DeviceError(
                f"setpoint {text} was not taken: IN_SP_4 reads {got:g} after {1 + self.setpoint_resends} attempt(s) "
                "(outside the device's range, or the command was lost on the line)",
                code="not-taken",
                instrument=self.instrument,
                command=f"OUT_SP_4 {text}",
            )
        self._switch("START_4")
        return {}

    def do_stop(self) -> dict[str, Any]:
        self._switch("STOP_4")
        return {}

    def do_read_speed(self) -> dict[str, Any]:
        return {
            "speed_rpm": self._read(SPEED_CHANNEL, "IN_PV_4"),
            "torque_ncm": self._read(TORQUE_CHANNEL, "IN_PV_5"),
        }

    # --- helpers --------------------------------------------------------------------------------------------------

    def _read(self, channel: int, command: str) -> float:
        return float(self.query(command, parse=lambda line: parse_value_response(line, channel)))

    def _send_settled(self, command: str) -> None:
        self.send(command)
        self.clock.sleep(self.settle_s)

    def _switch(self, command: str) -> None:
        """An unanswered START_4/STOP_4 sent twice and the line confirmed by a query; all again (at most twice
        more) if the line dropped meanwhile, since the copies may then have gone nowhere."""
        for _ in range(3):
            opened = self.transport.opened
            try:
                self._send_settled(command)
                self._send_settled(command)
                self._read(SPEED_CHANNEL, "IN_SP_4")
            except Disconnected:
                self.transport.transcript.record("note", f"line lost around {command!r}; sending it again")
                continue
            if self.transport.opened == opened:
                return
            self.transport.transcript.record("note", f"line reopened after {command!r}; sending it again")
        raise Disconnected(
            f"{command} could not be confirmed: the line kept dropping", instrument=self.instrument, command=command
        )
