"""Twin of an IKA stirrer-hotplate (C-MAG HS 7, RCT digital) speaking IKA's NAMUR commands.

Protocol (operating instructions, chapter "Interfaces and outputs", NAMUR command table):
- `IN_NAME` -> the device name (`C-MAG HS7`);
- `IN_PV_1` / `IN_PV_2` / `IN_PV_4` -> actual medium (external sensor) and hotplate temperature, actual speed;
  `IN_SP_1` / `IN_SP_4` -> temperature and speed setpoints; every value is answered `<value> <channel>`,
  e.g. `25.3 1`, one decimal, dot as the decimal separator;
- `OUT_SP_1 n`, `OUT_SP_4 n`, `START_1`, `STOP_1`, `START_4`, `STOP_4`, `RESET` (normal operating mode: heater and
  motor off) act and are not answered;
- the device only speaks when asked, and the manual documents no error answer: an unknown command, a setting
  outside the device's range (temperature 0…`max_c`, speed 0…`max_rpm`) or a setting without a readable number
  is ignored, silently, as IKA hotplates do. That is why the driver reads every setpoint back.
- `error_reply` (the server's `device_error` fault) answers a query with the display's error code instead of a
  value, `Er <code>` (default `Er 2`, the watchdog code the command table names: "Er02 is displayed"); the manual
  documents no such answer on the line, so this is an assumption: a device in an error state that still answers
  shows its code rather than a number. Commands that are never answered get no error answer either.

Physics, integrated lazily on `bench.clock.now()` in steps of at most `step_s` simulated seconds (at every
request and whenever the bench syncs before a move): the plate ramps towards the setpoint at `ramp_c_per_min`
while heating and cools towards `bench.ambient_c` at `cool_c_per_min` otherwise (and towards a setpoint below
it); the medium follows the plate with a first-order lag of `lag_s`; the speed ramps towards its setpoint (or 0).
A vessel standing at the instrument is the medium: its temperature follows, and it reacts at that temperature and
the actual speed (`vessel.react`).
"""

from __future__ import annotations

import math
import re

from simulators.twins.bench import Bench, Vessel
from simulators.twins.server import TwinProtocol

_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
ANSWERED = frozenset({"IN_NAME", "IN_PV_1", "IN_PV_2", "IN_PV_4", "IN_SP_1", "IN_SP_4"})


class IkaNamurTwin(TwinProtocol):
    """An IKA stirrer-hotplate on a Bench: setpoints, heater and motor, plate and medium temperatures, speed."""

    request_terminator = b"\r\n"
    reply_terminator = b"\r\n"

    def __init__(
        self,
        bench: Bench,
        instrument: str = "hotplate",
        name: str = "C-MAG HS7",
        ramp_c_per_min: float = 10.0,
        cool_c_per_min: float = 2.0,
        max_c: float = 340.0,
        max_rpm: float = 1500.0,
        lag_s: float = 20.0,
        speed_ramp_rpm_per_s: float = 250.0,
        step_s: float = 2.0,
        noise_c: float = 0.02,
        error_code: int = 2,
    ) -> None:
        self.bench = bench
        self.instrument = instrument
        self.name = name
        self.ramp_c_per_s = ramp_c_per_min / 60.0
        self.cool_c_per_s = cool_c_per_min / 60.0
        self.max_c = max_c
        self.max_rpm = max_rpm
        self.lag_s = lag_s
        self.speed_ramp_rpm_per_s = speed_ramp_rpm_per_s
        self.step_s = step_s
        self.noise_c = noise_c
        self.error_code = error_code
        # device state
        self.temperature_setpoint_c = 0.0
        self.speed_setpoint_rpm = 0.0
        self.heating = False
        self.stirring = False
        self.plate_c = bench.ambient_c
        self.medium_c = bench.ambient_c
        self.speed_rpm = 0.0
        self._vessel_key: str | None = None
        self._t = bench.clock.now()
        bench.register(self.sync)

    # --- physics ----------------------------------------------------------------------------------------------------

    def sync(self) -> None:
        """Integrate from the last sync up to the bench's now, in steps of at most `step_s`."""
        with self.bench.lock:
            now = self.bench.clock.now()
            remaining = now - self._t
            self._t = now
            vessel = self.bench.vessel_at(self.instrument)
            if vessel is not None and vessel.key != self._vessel_key:
                self.medium_c = vessel.temperature_c  # a vessel just placed: the sensor now reads it
            self._vessel_key = vessel.key if vessel is not None else None
            while remaining > 0:
                dt = min(remaining, self.step_s)
                self._step(dt, vessel)
                remaining -= dt

    def _step(self, dt: float, vessel: Vessel | None) -> None:
        ambient = self.bench.ambient_c
        target = max(ambient, min(self.temperature_setpoint_c, self.max_c)) if self.heating else ambient
        if self.plate_c < target:
            self.plate_c = min(target, self.plate_c + self.ramp_c_per_s * dt)
        elif self.plate_c > target:
            self.plate_c = max(target, self.plate_c - self.cool_c_per_s * dt)
        self.medium_c += (self.plate_c - self.medium_c) * (1.0 - math.exp(-dt / self.lag_s))
        wanted = self.speed_setpoint_rpm if self.stirring else 0.0
        change = self.speed_ramp_rpm_per_s * dt
        self.speed_rpm = (
            min(wanted, self.speed_rpm + change) if self.speed_rpm < wanted else max(wanted, self.speed_rpm - change)
        )
        if vessel is not None:
            vessel.temperature_c = self.medium_c
            vessel.react(self.medium_c, self.speed_rpm, dt)

    # --- protocol ---------------------------------------------------------------------------------------------------

    def answers(self, request: str) -> bool:
        return request.strip() in ANSWERED

    def error_reply(self, request: str) -> list[str]:
        return [f"Er {self.error_code}"] if self.answers(request) else []

    def handle(self, request: str) -> list[str]:
        with self.bench.lock:
            self.sync()
            parts = request.split()
            if not parts:
                return []
            command, arguments = parts[0], parts[1:]
            if len(parts) == 1 and command in ANSWERED:
                return [self._query(command)]
            if command in ("OUT_SP_1", "OUT_SP_4") and len(arguments) == 1:
                self._set(command, arguments[0])
            elif len(parts) == 1 and command in ("START_1", "STOP_1", "START_4", "STOP_4", "RESET"):
                self._switch(command)
            return []  # settings are not answered; unknown or malformed commands are ignored silently

    def _query(self, command: str) -> str:
        if command == "IN_NAME":
            return self.name
        if command == "IN_PV_1":
            return _value(self.medium_c + self.bench.noise(self.noise_c), 1)
        if command == "IN_PV_2":
            return _value(self.plate_c + self.bench.noise(self.noise_c), 2)
        if command == "IN_PV_4":
            return _value(round(self.speed_rpm), 4)
        if command == "IN_SP_1":
            return _value(self.temperature_setpoint_c, 1)
        return _value(self.speed_setpoint_rpm, 4)  # IN_SP_4

    def _set(self, command: str, text: str) -> None:
        if _NUMBER.fullmatch(text) is None:
            return
        value = float(text)
        if command == "OUT_SP_1":
            if 0.0 <= value <= self.max_c:
                self.temperature_setpoint_c = round(value, 1)
        elif 0.0 <= value <= self.max_rpm:
            self.speed_setpoint_rpm = float(round(value))

    def _switch(self, command: str) -> None:
        if command == "START_1":
            self.heating = True
        elif command == "STOP_1":
            self.heating = False
        elif command == "START_4":
            self.stirring = True
        elif command == "STOP_4":
            self.stirring = False
        else:  # RESET: back to normal operating mode, heater and motor off
            self.heating = self.stirring = False


def _value(value: float, channel: int) -> str:
    return f"{value:.1f} {channel}"
