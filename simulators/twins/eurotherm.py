"""Twin of a box furnace run by a Eurotherm 3200-series controller, speaking Modbus RTU.

Protocol (`instruments.modbus` for the framing, `instruments.drivers.eurotherm` for the register map): functions 03,
06 and 16 on the controller's registers; a request for another slave address, or with a bad CRC, is not answered
(Modbus over Serial Line 2.4.1: a slave answers only frames addressed to it and intact); an unknown function code
is answered with exception 01, a register the controller does not have with 02, a value outside what a register
takes (a target above SP.HI or below SP.LO, a mode that is not 0-2, a write to a read-only register) with 03, as
a 3216 does. The server's `device_error` fault answers with exception 04 (slave device failure).

Physics, integrated lazily on `bench.clock.now()` in steps of at most `step_s` simulated seconds: in operating mode
the working setpoint moves towards the target at the rate limit SP.RAT (in RAMP.U units; 0: it steps); the
controller drives the heating power P (0-1, WRK.OP = 100 P) so that the chamber follows the working setpoint with a
time constant `track_s`, within what the elements can give: dT/dt = P heat_c_per_min / 60 - (T - ambient) /
cool_tau_s, so heating is capped near full power and cooling is never faster than the furnace's own losses (in
standby P = 0). The sample in its crucible follows the chamber with a first-order lag `lag_s`.

The sample: the vessel standing at this instrument on the bench is fired: every step's sample temperature and
length is appended to its `heated` profile, and once it has been hotter than `react_above_c` its phases are
carried forward through each stretch of the profile it lives above that temperature by the `fire` function given
(`SolidStateFiring`, the solid-state simulator's reaction network, by default), from its precursors (`powders_g`)
and its mixing (`homogeneity`). What a diffractometer twin later sees follows from what the balance, the mixer and
this furnace did to that sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from instruments import modbus
from instruments.drivers.eurotherm import REGISTERS
from instruments.errors import ProtocolError
from instruments.transport import hex_bytes
from simulators.twins.bench import Bench, Vessel
from simulators.twins.server import TwinProtocol

# fire(sample key, precursors in grams, new (temperature degC, hours) steps, mixing 0-1] -> phase weight fractions:
# called with each stretch of the profile as the sample lives it, so the model carries the sample's state.
Firing = Callable[[str, Mapping[str, float], Sequence[tuple[float, float]], float], dict[str, float]]
WRITABLE = {REGISTERS["TG.SP"], REGISTERS["SP.RAT"], REGISTERS["IM"]}


def profile_summary(heated: Sequence[tuple[float, float]], window_c: float = 15.0) -> tuple[float, float, float]:
    """A firing profile as (peak temperature degC, hours within `window_c` of it, mean heating rate degC/min from
    200 degC up to the window): how a person would describe the program a sample went through."""
    if not heated:
        return 0.0, 0.0, 0.0
    peak = max(t for t, _ in heated)
    hold_s = sum(dt for t, dt in heated if t >= peak - window_c)
    rising_s, start = 0.0, None
    for t, dt in heated:
        if t >= peak - window_c:
            break
        if t >= 200.0:
            start = t if start is None else start
            rising_s += dt
    ramp = (peak - window_c - start) / (rising_s / 60.0) if start is not None and rising_s > 0 else 0.0
    return peak, hold_s / 3600.0, max(0.0, ramp)


class SolidStateFiring:
    """Fires samples through the solid-state simulator (`simulators.solid_state.react`) step by step: each sample's
    amounts (mmol of each phase) are carried from one stretch of its profile to the next, so the phases follow from
    every temperature it lived, ramps and cooling included."""

    def __init__(self) -> None:
        self._amounts: dict[str, dict[str, float]] = {}

    def __call__(
        self, key: str, precursors_g: Mapping[str, float], steps: Sequence[tuple[float, float]], mixing: float
    ) -> dict[str, float]:
        from simulators import solid_state  # imported when a sample is first fired: a furnace without one needs none

        amounts = self._amounts.get(key)
        if amounts is None:
            amounts = solid_state.mmol_from_grams(precursors_g)
        amounts = solid_state.react(amounts, steps, mixing)
        self._amounts[key] = amounts
        return solid_state.weight_fractions(amounts)


class EurothermFurnaceTwin(TwinProtocol):
    """A box furnace on a Bench behind a Eurotherm 3216: setpoint ramp, heating power, thermal lag, the fired sample."""

    request_terminator = b""
    reply_terminator = b""
    encoding = "latin-1"
    drop_partial_on_silence = True

    def __init__(
        self,
        bench: Bench,
        instrument: str = "furnace",
        slave: int = 1,
        identity: int = 0x3216,
        decimal_places: int = 1,
        setpoint_high_c: float = 1200.0,
        setpoint_low_c: float = 0.0,
        ramp_units: int = 0,
        heat_c_per_min: float = 30.0,
        cool_tau_s: float = 10800.0,
        track_s: float = 60.0,
        lag_s: float = 300.0,
        step_s: float = 10.0,
        noise_c: float = 0.2,
        react_above_c: float = 300.0,
        fire: Firing | None = None,
    ) -> None:
        if ramp_units not in (0, 1, 2):
            raise ValueError("ramp_units must be 0 (per minute), 1 (per hour) or 2 (per second)")
        if min(heat_c_per_min, cool_tau_s, track_s, lag_s, step_s) <= 0:
            raise ValueError("heat_c_per_min, cool_tau_s, track_s, lag_s and step_s must be positive")
        self.bench = bench
        self.instrument = instrument
        self.slave = slave
        self.scale = 10**decimal_places
        self.heat_c_per_s = heat_c_per_min / 60.0
        self.cool_tau_s = cool_tau_s
        self.track_s = track_s
        self.lag_s = lag_s
        self.step_s = step_s
        self.noise_c = noise_c
        self.react_above_c = react_above_c
        self.fire: Firing = fire if fire is not None else SolidStateFiring()
        self.per_second = {0: 1 / 60.0, 1: 1 / 3600.0, 2: 1.0}[ramp_units]
        # registers, as the controller holds them (integers)
        self.registers: dict[int, int] = {
            REGISTERS["ID"]: identity,
            REGISTERS["SP.HI"]: round(setpoint_high_c * self.scale),
            REGISTERS["SP.LO"]: round(setpoint_low_c * self.scale),
            REGISTERS["RAMP.U"]: ramp_units,
            REGISTERS["TG.SP"]: round(bench.ambient_c * self.scale),
            REGISTERS["SP.RAT"]: 0,
            REGISTERS["IM"]: 1,  # standby until told to operate: nothing heats on power-up
        }
        self.chamber_c = bench.ambient_c
        self.working_c = bench.ambient_c
        self.sample_c = bench.ambient_c
        self.power = 0.0
        self._vessel_key: str | None = None
        self._t = bench.clock.now()
        bench.register(self.sync)

    # --- physics ----------------------------------------------------------------------------------------------------

    @property
    def target_c(self) -> float:
        return modbus.to_signed(self.registers[REGISTERS["TG.SP"]]) / self.scale

    @property
    def operating(self) -> bool:
        return self.registers[REGISTERS["IM"]] == 0

    def sync(self) -> None:
        with self.bench.lock:
            now = self.bench.clock.now()
            remaining = now - self._t
            self._t = now
            vessel = self.bench.vessel_at(self.instrument)
            if vessel is not None and vessel.key != self._vessel_key:
                self.sample_c = vessel.temperature_c  # a crucible just put in: it starts at its own temperature
            self._vessel_key = vessel.key if vessel is not None else None
            lived = len(vessel.heated) if vessel is not None else 0
            while remaining > 0:
                dt = min(remaining, self.step_s)
                self._step(dt, vessel)
                remaining -= dt
            if vessel is not None and vessel.powders_g:
                hot = [(t, dt / 3600.0) for t, dt in vessel.heated[lived:] if t >= self.react_above_c]
                if hot:
                    mixing = min(1.0, max(0.01, vessel.homogeneity))
                    vessel.phases = self.fire(vessel.key, vessel.powders_g, hot, mixing)

    def _step(self, dt: float, vessel: Vessel | None) -> None:
        ambient = self.bench.ambient_c
        rate = self.registers[REGISTERS["SP.RAT"]] / self.scale * self.per_second
        if self.operating:
            if rate <= 0:
                self.working_c = self.target_c
            elif self.working_c < self.target_c:
                self.working_c = min(self.target_c, self.working_c + rate * dt)
            else:
                self.working_c = max(self.target_c, self.working_c - rate * dt)
            loss = (self.chamber_c - ambient) / self.cool_tau_s
            wanted = (self.working_c - self.chamber_c) / self.track_s
            self.power = min(1.0, max(0.0, (wanted + loss) / self.heat_c_per_s))
        else:
            self.working_c = self.chamber_c  # in standby the working setpoint follows the process value
            self.power = 0.0
        self.chamber_c += (self.power * self.heat_c_per_s - (self.chamber_c - ambient) / self.cool_tau_s) * dt
        self.sample_c += (self.chamber_c - self.sample_c) * (1.0 - math.exp(-dt / self.lag_s))
        if vessel is not None:
            vessel.temperature_c = self.sample_c
            vessel.heated.append((self.sample_c, dt))

    # --- protocol ---------------------------------------------------------------------------------------------------

    def split_request(self, buffer: bytes) -> tuple[bytes, bytes] | None:
        length = modbus.request_length(buffer)
        if length is None or len(buffer) < length:
            return None
        return buffer[:length], buffer[length:]

    def decode_request(self, raw: bytes) -> str:
        return hex_bytes(raw)

    def answers(self, request: str) -> bool:
        try:
            return modbus.parse_request(bytes.fromhex(request)).slave == self.slave
        except (ValueError, ProtocolError):
            return False

    def error_reply(self, request: str) -> list[bytes]:
        if not self.answers(request):
            return []
        return [modbus.exception_reply(self.slave, bytes.fromhex(request)[1], 0x04)]

    def handle(self, request: str) -> list[bytes]:
        try:
            parsed = modbus.parse_request(bytes.fromhex(request))
        except (ValueError, ProtocolError):
            return []  # a bad CRC or a broken frame: a slave stays silent
        if parsed.slave != self.slave:
            return []
        with self.bench.lock:
            self.sync()
            return [self._serve(parsed)]

    def _serve(self, request: modbus.Request) -> bytes:
        function = request.function
        if function == modbus.READ_HOLDING_REGISTERS:
            if not 1 <= request.count <= modbus.MAX_READ_COUNT:
                return modbus.exception_reply(self.slave, function, 0x03)
            addresses = range(request.address, request.address + request.count)
            if any(self._read(a) is None for a in addresses):
                return modbus.exception_reply(self.slave, function, 0x02)
            return modbus.read_reply(self.slave, [self._read(a) or 0 for a in addresses])
        if function in (modbus.WRITE_SINGLE_REGISTER, modbus.WRITE_MULTIPLE_REGISTERS):
            addresses = range(request.address, request.address + len(request.values))
            if any(self._read(a) is None for a in addresses):
                return modbus.exception_reply(self.slave, function, 0x02)
            if not all(self._valid(a, v) for a, v in zip(addresses, request.values, strict=True)):
                return modbus.exception_reply(self.slave, function, 0x03)
            for address, value in zip(addresses, request.values, strict=True):
                self.registers[address] = value
            word = request.values[0] if function == modbus.WRITE_SINGLE_REGISTER else len(request.values)
            return modbus.echo_reply(self.slave, function, request.address, word)
        return modbus.exception_reply(self.slave, function, 0x01)

    def _read(self, address: int) -> int | None:
        """A register's value now (None: the controller has no such register)."""
        live = {
            REGISTERS["PV.IN"]: self.chamber_c + self.bench.noise(self.noise_c),
            REGISTERS["WKG.SP"]: self.working_c,
            REGISTERS["WRK.OP"]: 100.0 * self.power,
        }
        if address in live:
            return round(live[address] * self.scale) & 0xFFFF
        if address == 3:  # MAN.OP, the manual output: not used by the furnace, reads 0
            return 0
        return self.registers.get(address)

    def _valid(self, address: int, value: int) -> bool:
        if address not in WRITABLE:
            return False
        if address == REGISTERS["IM"]:
            return value in (0, 1)  # configuration mode is a front-panel affair (and would stop the furnace)
        signed = modbus.to_signed(value)
        if address == REGISTERS["TG.SP"]:
            low = modbus.to_signed(self.registers[REGISTERS["SP.LO"]])
            high = modbus.to_signed(self.registers[REGISTERS["SP.HI"]])
            return low <= signed <= high
        return 0 <= signed <= 9999  # SP.RAT
