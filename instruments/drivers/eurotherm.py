"""Eurotherm 3200-series temperature controllers (3216, 3208, 3204) over Modbus RTU: a furnace's setpoint, its ramp
rate limit, its process value, standby.

Implemented from Eurotherm, "3200 Series PID Temperature Controllers, Engineering Handbook" (HA027986), chapter
"Digital Communications" (Modbus RTU, the parameter address table), whose addresses are those of the 2000 series
("2000 Series Communications Handbook", HA026230, the "lower" 16-bit register area), and from the Modbus
specifications for the framing (`instruments.modbus`). The register addresses below were taken from those tables
as open-source drivers of these controllers reproduce them, not checked against a copy of the handbook itself; ID
(122) and IM (199, with its numbering of modes) are the least certain. Before driving a real controller, check
each address against its own handbook (and with `peirce instruments` read-only actions first). The registers used:

| register | mnemonic | what | access |
|---|---|---|---|
| 1 | PV.IN | process value: the furnace's thermocouple | read |
| 2 | TG.SP | target setpoint | read, write |
| 4 | WRK.OP | working output, % | read |
| 5 | WKG.SP | working setpoint: where the ramp has got to | read |
| 35 | SP.RAT | setpoint rate limit, in RAMP.U units; 0 = no limit (the setpoint steps) | read, write |
| 111, 112 | SP.HI, SP.LO | setpoint high and low limits (the controller refuses a target outside them) | read |
| 122 | ID | instrument identity (e.g. 0x3216 for a 3216) | read |
| 199 | IM | instrument mode: 0 operating, 1 standby (control outputs off), 2 configuration | read, write |
| 531 | RAMP.U | units of SP.RAT: 0 per minute, 1 per hour, 2 per second | read |

What the manuals prescribe, and what this driver does with it:
- the line: RTU only, 8 data bits, 1 stop bit, no parity by default, 9600 baud (set in the controller's comms
  list, as its address ADDR, 1 by default, is);
- function codes 03 (read holding registers), 06 (write one register) and 16 (write several); registers are
  16-bit integers, a value with the controller's decimal places scaled by 10^places (25.3 degC reads 253 at one
  place, the display's resolution); `decimal_places` must match the controller's (1 here, as a 3216 shipped for a
  furnace is usually set);
- a request the controller refuses comes back as a Modbus exception (02: no such register, 03: a value outside
  what the register takes, e.g. a target above SP.HI); the driver raises it as a DeviceError naming the register;
- a reply with a bad CRC is line noise: a ProtocolError that says so, and an idempotent exchange is asked again.

Every write here is idempotent (a register set twice to the same value is set once), so the transport may retry
them all after a lost reply; each write is read back through the controller's own echo (06) and, for the target
setpoint, by reading the register again, so a setpoint the controller did not take never goes unnoticed.

Hours-long steps: `wait_for_temperature` polls the process value every `poll_s` on the driver's clock until the
furnace is within tolerance, or raises at its timeout (wall seconds: with a twin at `time_scale` 3600, an hour's
ramp is a second).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from instruments import modbus
from instruments.contract import Action, Argument, Driver
from instruments.errors import DeviceError, InstrumentTimeout
from instruments.transport import SerialSettings

# The registers this driver uses, by mnemonic (3200-series Engineering Handbook, Modbus address table).
REGISTERS: dict[str, int] = {
    "PV.IN": 1,
    "TG.SP": 2,
    "WRK.OP": 4,
    "WKG.SP": 5,
    "SP.RAT": 35,
    "SP.HI": 111,
    "SP.LO": 112,
    "ID": 122,
    "IM": 199,
    "RAMP.U": 531,
}
NAMES = {address: name for name, address in REGISTERS.items()}
MODES = {0: "operating", 1: "standby", 2: "configuration"}
# SP.RAT is in RAMP.U units: degrees per minute is that value times this factor.
RAMP_UNITS_PER_MINUTE = {0: 1.0, 1: 1.0 / 60.0, 2: 60.0}


def register_name(address: int) -> str:
    """`TG.SP (register 2)`, or `register 7` for one without a mnemonic here."""
    return f"{NAMES[address]} (register {address})" if address in NAMES else f"register {address}"


class EurothermController(Driver):
    """A Eurotherm 3200-series controller on a furnace: ramp rate limit, target setpoint, wait, read, standby."""

    name = "eurotherm-modbus"
    title = "Eurotherm 3200-series temperature controller (Modbus RTU)"
    manual = (
        "Eurotherm, 3200 Series Engineering Handbook HA027986, ch. Digital Communications (Modbus RTU; parameter "
        "addresses PV.IN 1, TG.SP 2, WRK.OP 4, WKG.SP 5, SP.RAT 35, SP.HI 111, SP.LO 112, ID 122, IM 199, RAMP.U "
        "531, as the 2000 Series Communications Handbook HA026230); MODBUS Application Protocol V1.1b3 (functions "
        "03, 06, 16; exceptions) and MODBUS over Serial Line V1.02 (RTU framing, CRC-16)"
    )
    serial = SerialSettings(
        baudrate=9600, bytesize=8, parity="N", stopbits=1, write_terminator=b"", read_terminator=b""
    )

    slave = 1  # the controller's comms address (ADDR), 1 as shipped
    decimal_places = 1  # the controller's display resolution, which scales every temperature register
    poll_s = 0.1  # how often wait_for_temperature reads the process value (wall seconds)
    setpoint_tolerance_c = 0.05  # a read-back within half a display digit at one place is the value sent

    actions: ClassVar[tuple[Action, ...]] = (
        Action(
            "set_ramp_rate",
            "Set the setpoint rate limit (SP.RAT): the working setpoint then moves towards a new target at this "
            "rate, which is how the controller ramps a furnace. 0 switches the limit off (the setpoint steps).",
            arguments=(Argument("rate_c_per_min", unit="degC/min", minimum=0.0, maximum=99.9),),
        ),
        Action(
            "set_temperature",
            "Put the controller in operating mode and set the target setpoint (TG.SP), read back; the furnace "
            "ramps to it at the rate limit.",
            arguments=(Argument("temperature_c", unit="degC", minimum=0.0, maximum=1600.0),),
        ),
        Action(
            "wait_for_temperature",
            "Poll the process value (PV.IN) until it is within the tolerance of the temperature.",
            arguments=(
                Argument("temperature_c", unit="degC", minimum=0.0, maximum=1600.0),
                Argument("tolerance_c", unit="degC", minimum=0.1, maximum=200.0, default=5.0),
                Argument("timeout_s", unit="s", minimum=0.1, maximum=172800.0, default=3600.0),
            ),
            returns={"temperature_c": "degC", "waited_s": "s"},
        ),
        Action(
            "read_temperature",
            "The process value, the working setpoint (where the ramp is) and the working output.",
            returns={"temperature_c": "degC", "working_setpoint_c": "degC", "output_percent": "%"},
        ),
        Action("standby", "Instrument mode standby (IM = 1): the control outputs off, the furnace cools freely."),
    )

    def __init__(self, port: str, *, slave: int | None = None, decimal_places: int | None = None, **kwargs: Any):
        super().__init__(port, **kwargs)
        if slave is not None:
            self.slave = slave
        if decimal_places is not None:
            self.decimal_places = decimal_places
        self.ramp_units = 0

    # --- the contract ---------------------------------------------------------------------------------------------

    def identify(self) -> dict[str, str]:
        """The identity (ID, a hex code such as 3216), the setpoint limits (SP.LO, SP.HI) and the ramp units."""
        (identity,) = self.read_registers(REGISTERS["ID"])
        high, low = self.read_registers(REGISTERS["SP.HI"], 2)
        (units,) = self.read_registers(REGISTERS["RAMP.U"])
        if units not in RAMP_UNITS_PER_MINUTE:
            raise DeviceError(
                f"{register_name(REGISTERS['RAMP.U'])} reads {units}, not a ramp unit (0 min, 1 h, 2 s)",
                code="ramp-units",
                instrument=self.instrument,
            )
        self.ramp_units = units
        return {
            "model": f"Eurotherm {identity:04X}",
            "slave": str(self.slave),
            "setpoint_range": f"{self.to_value(low):g}-{self.to_value(high):g} degC",
            "ramp_units": {0: "per minute", 1: "per hour", 2: "per second"}[units],
        }

    def read_status(self) -> dict[str, Any]:
        pv, target, _, output, working = self.read_registers(REGISTERS["PV.IN"], 5)
        (rate,) = self.read_registers(REGISTERS["SP.RAT"])
        (mode,) = self.read_registers(REGISTERS["IM"])
        return {
            "temperature_c": self.to_value(pv),
            "target_setpoint_c": self.to_value(target),
            "working_setpoint_c": self.to_value(working),
            "output_percent": self.to_value(output),
            "ramp_rate_c_per_min": self.to_value(rate) * RAMP_UNITS_PER_MINUTE[self.ramp_units],
            "mode": MODES.get(mode, str(mode)),
        }

    def safe_state(self) -> None:
        """Standby: the control outputs off, whatever the setpoint (a furnace left heating is the hazard)."""
        self.write_register(REGISTERS["IM"], 1)

    # --- actions --------------------------------------------------------------------------------------------------

    def do_set_ramp_rate(self, rate_c_per_min: float) -> dict[str, Any]:
        """Write SP.RAT in the controller's ramp units (read at connect)."""
        rate = rate_c_per_min / RAMP_UNITS_PER_MINUTE[self.ramp_units]
        self.write_register(REGISTERS["SP.RAT"], self.to_word(rate), shown=f"{rate:g}")
        return {}

    def do_set_temperature(self, temperature_c: float) -> dict[str, Any]:
        """IM = 0 (operating), TG.SP = the temperature, TG.SP read back."""
        self.write_register(REGISTERS["IM"], 0)
        word = self.to_word(temperature_c)
        self.write_register(REGISTERS["TG.SP"], word, shown=f"{temperature_c:g} degC")
        (got,) = self.read_registers(REGISTERS["TG.SP"])
        if abs(self.to_value(got) - self.to_value(word)) > self.setpoint_tolerance_c:
            raise DeviceError(
                f"{register_name(REGISTERS['TG.SP'])} reads {self.to_value(got):g} after {self.to_value(word):g} was "
                "written (changed at the front panel, or by another master?)",
                code="not-taken",
                instrument=self.instrument,
            )
        return {}

    def do_wait_for_temperature(self, temperature_c: float, tolerance_c: float, timeout_s: float) -> dict[str, Any]:
        start = self.clock.now()
        deadline = start + timeout_s
        while True:
            (pv,) = self.read_registers(REGISTERS["PV.IN"])
            reading = self.to_value(pv)
            now = self.clock.now()
            if abs(reading - temperature_c) <= tolerance_c:
                return {"temperature_c": reading, "waited_s": round(now - start, 3)}
            if now >= deadline:
                raise InstrumentTimeout(
                    f"the furnace did not reach {temperature_c:g} ± {tolerance_c:g} °C within {timeout_s:g} s: it "
                    f"reads {reading:g} °C (is it in standby, the target right, the ramp too slow for the timeout?)",
                    instrument=self.instrument,
                    command=f"read {register_name(REGISTERS['PV.IN'])}",
                )
            self.clock.sleep(max(0.0, min(self.poll_s, deadline - now)))

    def do_read_temperature(self) -> dict[str, Any]:
        pv, _, _, output, working = self.read_registers(REGISTERS["PV.IN"], 5)
        return {
            "temperature_c": self.to_value(pv),
            "working_setpoint_c": self.to_value(working),
            "output_percent": self.to_value(output),
        }

    def do_standby(self) -> dict[str, Any]:
        self.write_register(REGISTERS["IM"], 1)
        return {}

    # --- registers ------------------------------------------------------------------------------------------------

    def to_value(self, word: int) -> float:
        """A register's signed integer as a value with the controller's decimal places."""
        return round(modbus.to_signed(word) / 10**self.decimal_places, self.decimal_places)

    def to_word(self, value: float) -> int:
        """A value as the register's integer (two's complement for negative values)."""
        scaled = round(value * 10**self.decimal_places)
        if not -0x8000 <= scaled <= 0x7FFF:
            raise DeviceError(
                f"{value:g} does not fit a register at {self.decimal_places} decimal place(s)", code="range"
            )
        return scaled & 0xFFFF

    def read_registers(self, address: int, count: int = 1) -> tuple[int, ...]:
        """Function 03: `count` registers from `address` (idempotent: retried after a lost or garbled reply)."""
        what = f"read {register_name(address)}" + (f" and {count - 1} after it" if count > 1 else "")
        return self._exchange(
            modbus.read_registers_request(self.slave, address, count),
            what,
            lambda frame: modbus.parse_read_reply(frame, self.slave, count, what),
        )

    def write_register(self, address: int, word: int, *, shown: str | None = None) -> None:
        """Function 06: one register, confirmed by the controller's echo. `shown` is the value as errors name it
        (the temperature rather than its scaled integer)."""
        what = f"write {register_name(address)} = {shown if shown is not None else word}"
        self._exchange(
            modbus.write_register_request(self.slave, address, word),
            what,
            lambda frame: modbus.parse_write_reply(frame, self.slave, address, word, what),
        )

    def write_registers(self, address: int, words: Sequence[int]) -> None:
        """Function 16: consecutive registers from `address`, confirmed by the count the controller returns."""
        what = f"write {len(words)} registers from {register_name(address)}"
        self._exchange(
            modbus.write_registers_request(self.slave, address, words),
            what,
            lambda frame: modbus.parse_write_multiple_reply(frame, self.slave, address, len(words), what),
        )

    def _exchange(self, request: bytes, what: str, parse: Callable[[bytes], Any]) -> Any:
        try:
            return self.transport.exchange(request, modbus.reply_length, idempotent=True, parse=parse, label=what)
        except DeviceError as exc:
            exc.instrument = exc.instrument or self.instrument
            raise
