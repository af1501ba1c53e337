"""Device twin of a powder-preparation station speaking the generic line protocol of
`instruments.drivers.powder_prep` (peirce's own, documented there; not a vendor's): it doses precursor powders into
the sample standing at it on the bench and mills them.

`NEW` empties the sample's vial (a fresh one); `DOSE <formula>,<mg>` puts that powder in it (`Vessel.powders_g`),
within `dose_sd` (relative, seeded by the bench) of what was asked, as a gravimetric dosing head does, and answers
the mass that landed; a hopper exists for every phase of the solid-state simulator's library
(`simulators.solid_state.PHASES`), other formulas are `ERR 3`. Powder as dosed is barely mixed (homogeneity
`dose_homogeneity`); `MILL <minutes>` mixes it towards 1 as 1 - (1 - h) exp(-minutes / `mill_tau_min`); the mill runs
its minutes on the bench's clock (`STAT?` says MILLING meanwhile, and the station takes no request but STAT? and
STOP). What a furnace's twin makes of the powder follows from both. Faults:
`device_error` answers `ERR 5` (interlock) without acting.
"""

from __future__ import annotations

import math
import re

from simulators.solid_state import PHASES
from simulators.twins.bench import Bench
from simulators.twins.server import TwinProtocol

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
MAX_MG = 10000.0


class PowderPrepTwin(TwinProtocol):
    """Hoppers of precursor powders over a balance, and a shaker mill, at `instrument` on the bench."""

    request_terminator = b"\r\n"
    reply_terminator = b"\r\n"

    def __init__(
        self,
        bench: Bench,
        instrument: str = "prep",
        serial: str = "PREP0001",
        *,
        firmware: str = "1.0",
        dose_sd: float = 0.003,
        dose_homogeneity: float = 0.1,
        mill_tau_min: float = 5.0,
    ) -> None:
        if not (dose_sd >= 0 and 0 <= dose_homogeneity <= 1 and mill_tau_min > 0):
            raise ValueError("dose_sd must be >= 0, dose_homogeneity in [0, 1], mill_tau_min positive")
        self.bench = bench
        self.instrument = instrument
        self.serial = serial
        self.firmware = firmware
        self.dose_sd = dose_sd
        self.dose_homogeneity = dose_homogeneity
        self.mill_tau_min = mill_tau_min
        self.vials = 0
        self.doses = 0
        self.vial_mg = 0.0
        self._mill_until = -math.inf  # bench time the mill stops

    def milling(self) -> bool:
        return self.bench.clock.now() < self._mill_until

    def handle(self, request: str) -> list[str]:
        with self.bench.lock:
            self.bench.sync()
            return [self._answer(request.strip())]

    def error_reply(self, request: str) -> list[str]:
        return ["ERR 5"]  # interlock: nothing done

    def _answer(self, request: str) -> str:
        command, _, argument = request.partition(" ")
        command = command.upper()
        if command == "*IDN?" and not argument:
            return f"GENERIC,POWDER-PREP-1,{self.serial},{self.firmware}"
        if command == "STAT?" and not argument:
            return f"STAT {self.vials},{self.doses},{self.vial_mg:.1f},{'MILLING' if self.milling() else 'IDLE'}"
        if command == "STOP" and not argument:
            self._mill_until = -math.inf
            return "OK"
        if self.milling() and command in ("NEW", "DOSE", "MILL"):
            return "ERR 6"
        if command == "NEW" and not argument:
            return self._new()
        if command == "DOSE":
            return self._dose(argument)
        if command == "MILL":
            return self._mill(argument)
        return "ERR 1"

    def _new(self) -> str:
        vessel = self.bench.vessel_at(self.instrument)
        if vessel is None:
            return "ERR 4"
        vessel.powders_g = {}
        vessel.phases = {}
        vessel.homogeneity = 0.0
        self.vials += 1
        self.doses, self.vial_mg = 0, 0.0
        return f"OK {self.vials}"

    def _dose(self, argument: str) -> str:
        name, _, amount = (field.strip() for field in argument.partition(","))
        if not _NUMBER.fullmatch(amount) or not 0 < float(amount) <= MAX_MG:
            return "ERR 2"
        if name not in PHASES:
            return "ERR 3"
        vessel = self.bench.vessel_at(self.instrument)
        if vessel is None or self.vials == 0:
            return "ERR 4"
        landed = round(float(amount) * (1.0 + self.bench.noise(self.dose_sd)), 1)
        vessel.powders_g = {**vessel.powders_g, name: vessel.powders_g.get(name, 0.0) + landed / 1000.0}
        vessel.homogeneity = self.dose_homogeneity
        self.doses += 1
        self.vial_mg += landed
        return f"OK {landed:.1f}"

    def _mill(self, argument: str) -> str:
        if not _NUMBER.fullmatch(argument) or not 0.1 <= float(argument) <= 120.0:
            return "ERR 2"
        vessel = self.bench.vessel_at(self.instrument)
        if vessel is None or self.vials == 0:
            return "ERR 4"
        minutes = float(argument)
        vessel.homogeneity = 1.0 - (1.0 - vessel.homogeneity) * math.exp(-minutes / self.mill_tau_min)
        self._mill_until = self.bench.clock.now() + minutes * 60.0
        return "OK"


__all__ = ["PowderPrepTwin"]
