"""Twin of an IKA EUROSTAR overhead stirrer driving a powder mixer, speaking IKA's NAMUR commands.

Protocol (operating instructions, chapter "Interfaces and outputs", NAMUR command table): `IN_NAME` -> the device
name; `IN_PV_4` -> actual speed, `IN_PV_5` -> actual torque (Ncm), `IN_SP_4` -> speed setpoint, each answered
`<value> <channel>`; `OUT_SP_4 n`, `START_4`, `STOP_4`, `RESET` act and are not answered. A setting outside the
speed range (`min_rpm`…`max_rpm`; 0 is taken as the setpoint of a stopped motor), an unknown or malformed command
is ignored silently, as IKA devices do, which is why the driver reads the setpoint back. The server's
`device_error` fault answers a query with the display's error code (`Er 4`, motor blocked or speed deviation).

Physics, integrated lazily on `bench.clock.now()` in steps of at most `step_s`: the speed ramps towards the
setpoint (or 0) at `speed_ramp_rpm_per_s`; the torque is the bearing's friction plus the powder's drag. A powder
sample at this instrument (the bench's vessel with `powders_g`) is mixed towards the homogeneity its blade's speed
can reach, h_eq = 1 - (1 - `dosed`) exp(-rpm / `rpm_e`) (a slow blade leaves agglomerates a fast one breaks up), by
1 - exp(-revolutions / `revolutions_e`) of the way each stretch of revolutions; it never unmixes. So a few minutes
at a speed settle the powder's homogeneity: the speed decides it, not seconds more or less of running.
"""

from __future__ import annotations

import math
import re

from simulators.twins.bench import Bench, Vessel
from simulators.twins.server import TwinProtocol

_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
ANSWERED = frozenset({"IN_NAME", "IN_PV_4", "IN_PV_5", "IN_SP_4"})


class IkaEurostarTwin(TwinProtocol):
    """An IKA EUROSTAR 60 control on a Bench: speed setpoint, motor, torque, and the powder it mixes."""

    request_terminator = b"\r\n"
    reply_terminator = b"\r\n"

    def __init__(
        self,
        bench: Bench,
        instrument: str = "mixer",
        name: str = "EUROSTAR 60 control",
        min_rpm: float = 30.0,
        max_rpm: float = 2000.0,
        speed_ramp_rpm_per_s: float = 200.0,
        revolutions_e: float = 300.0,
        rpm_e: float = 600.0,
        dosed: float = 0.1,
        friction_ncm: float = 2.0,
        drag_ncm_per_g: float = 1.5,
        step_s: float = 1.0,
        error_code: int = 4,
    ) -> None:
        if min(revolutions_e, rpm_e, speed_ramp_rpm_per_s, step_s) <= 0:
            raise ValueError("revolutions_e, rpm_e, speed_ramp_rpm_per_s and step_s must be positive")
        self.bench = bench
        self.instrument = instrument
        self.name = name
        self.min_rpm = min_rpm
        self.max_rpm = max_rpm
        self.speed_ramp_rpm_per_s = speed_ramp_rpm_per_s
        self.revolutions_e = revolutions_e
        self.rpm_e = rpm_e
        self.dosed = dosed
        self.friction_ncm = friction_ncm
        self.drag_ncm_per_g = drag_ncm_per_g
        self.step_s = step_s
        self.error_code = error_code
        self.speed_setpoint_rpm = 0.0
        self.running = False
        self.speed_rpm = 0.0
        self.revolutions = 0.0  # turned since power-up (what mixed the samples)
        self._t = bench.clock.now()
        bench.register(self.sync)

    # --- physics ----------------------------------------------------------------------------------------------------

    def sync(self) -> None:
        with self.bench.lock:
            now = self.bench.clock.now()
            remaining = now - self._t
            self._t = now
            vessel = self.bench.vessel_at(self.instrument)
            while remaining > 0:
                dt = min(remaining, self.step_s)
                self._step(dt, vessel)
                remaining -= dt

    def _step(self, dt: float, vessel: Vessel | None) -> None:
        wanted = self.speed_setpoint_rpm if self.running else 0.0
        change = self.speed_ramp_rpm_per_s * dt
        before = self.speed_rpm
        if self.speed_rpm < wanted:
            self.speed_rpm = min(wanted, self.speed_rpm + change)
        else:
            self.speed_rpm = max(wanted, self.speed_rpm - change)
        turns = (before + self.speed_rpm) / 2 * dt / 60.0
        self.revolutions += turns
        if vessel is not None and vessel.powders_g and turns > 0:
            reachable = self.reachable_homogeneity((before + self.speed_rpm) / 2)
            if reachable > vessel.homogeneity:
                vessel.homogeneity += (reachable - vessel.homogeneity) * (1.0 - math.exp(-turns / self.revolutions_e))

    def reachable_homogeneity(self, rpm: float) -> float:
        """The homogeneity mixing at `rpm` tends to."""
        return 1.0 - (1.0 - self.dosed) * math.exp(-rpm / self.rpm_e)

    def torque_ncm(self) -> float:
        vessel = self.bench.vessel_at(self.instrument)
        load = sum(vessel.powders_g.values()) if vessel is not None else 0.0
        if self.speed_rpm <= 0:
            return 0.0
        return self.friction_ncm + self.drag_ncm_per_g * load * math.sqrt(self.speed_rpm / 1000.0)

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
            if command == "OUT_SP_4" and len(arguments) == 1 and _NUMBER.fullmatch(arguments[0]):
                value = float(arguments[0])
                if value == 0 or self.min_rpm <= value <= self.max_rpm:
                    self.speed_setpoint_rpm = float(round(value))
            elif len(parts) == 1 and command in ("START_4", "STOP_4", "RESET"):
                self.running = command == "START_4"
            return []  # settings are not answered; unknown or malformed commands are ignored silently

    def _query(self, command: str) -> str:
        if command == "IN_NAME":
            return self.name
        if command == "IN_PV_4":
            return f"{round(self.speed_rpm):.0f} 4"
        if command == "IN_PV_5":
            torque = self.torque_ncm()
            return f"{torque + self.bench.noise(0.05) if torque > 0 else 0.0:.1f} 5"
        return f"{self.speed_setpoint_rpm:.0f} 4"  # IN_SP_4
