"""Device twin of a sputter-deposition controller speaking the generic line protocol of
`instruments.drivers.sputter` (peirce's own, documented there; not a vendor's), growing films on the bench.

A run, started by `RUN` with the loaded recipe, goes IDLE -> HEATING (the substrate ramps from ambient to its
setpoint at `ramp_c_per_min`) -> DEPOSITING (for the recipe's minutes, the quartz monitor's thickness growing at
the film's rate) -> COOLING (to `vent_c` at `cool_c_per_min`, before the sample may leave the vacuum) -> DONE. All
of it on the bench's clock, so an hours-long run takes seconds at a high `time_scale`. `STOP` ends a run at once
(ABORTED: plasma, gas and heater off; a film stopped half-way is no sample, it reads as an open circuit).

The film is the surrogate's (`simulators.templates.tokyo.film`, Nb-doped TiO2 by default), with run-to-run scatter
drawn from the bench's seeded generator when the run starts; at the end of the deposition it is put on the
substrate that stood at the instrument when the run started: the four-point probe then reads its
`resistance_ohm`. Faults: `device_error` answers `ERR 5` (interlock) without acting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from simulators.templates import tokyo
from simulators.twins.bench import Bench
from simulators.twins.server import TwinProtocol

RECIPE_RANGES: tuple[tuple[str, float, float], ...] = (
    ("ar_sccm", 0.0, 100.0),
    ("o2_sccm", 0.0, 10.0),
    ("power_w", 0.0, 300.0),
    ("substrate_c", 0.0, 600.0),
    ("time_min", 0.1, 600.0),
)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
FilmModel = Callable[..., tokyo.Film]


class SputterTwin(TwinProtocol):
    """A sputter chamber with one target, an Ar and an O2 mass-flow controller, an RF supply, a substrate heater and
    a quartz-crystal thickness monitor."""

    request_terminator = b"\r\n"
    reply_terminator = b"\r\n"

    def __init__(
        self,
        bench: Bench,
        instrument: str = "sputter",
        serial: str = "SP0001",
        *,
        firmware: str = "1.0",
        ramp_c_per_min: float = 10.0,
        cool_c_per_min: float = 5.0,
        vent_c: float = 60.0,
        film: FilmModel = tokyo.film,
    ) -> None:
        if min(ramp_c_per_min, cool_c_per_min) <= 0 or not math.isfinite(vent_c):
            raise ValueError("ramp_c_per_min and cool_c_per_min must be positive, vent_c finite")
        self.bench = bench
        self.instrument = instrument
        self.serial = serial
        self.firmware = firmware
        self.ramp_c_per_s = ramp_c_per_min / 60.0
        self.cool_c_per_s = cool_c_per_min / 60.0
        self.vent_c = vent_c
        self.film_model = film
        self.recipe: tuple[float, ...] | None = None
        self.runs = 0
        self.aborted = False
        self._started: float | None = None  # bench time the current run started
        self._run_recipe: tuple[float, ...] = ()
        self._film: tokyo.Film | None = None
        self._substrate: str | None = None
        self._delivered = False
        bench.register(self.sync)

    # --- the run's timeline -----------------------------------------------------------------------------------------

    def _phases(self) -> tuple[float, float, float]:
        """Seconds of heating, deposition and cooling of the current run."""
        substrate_c, minutes = self._run_recipe[3], self._run_recipe[4]
        heat = max(0.0, substrate_c - self.bench.ambient_c) / self.ramp_c_per_s
        cool = max(0.0, substrate_c - self.vent_c) / self.cool_c_per_s
        return heat, minutes * 60.0, cool

    def _elapsed(self) -> float:
        assert self._started is not None
        return self.bench.clock.now() - self._started

    def state(self) -> str:
        if self.aborted:
            return "ABORTED"
        if self._started is None:
            return "IDLE"
        heat, deposit, cool = self._phases()
        elapsed = self._elapsed()
        if elapsed < heat:
            return "HEATING"
        if elapsed < heat + deposit:
            return "DEPOSITING"
        return "COOLING" if elapsed < heat + deposit + cool else "DONE"

    def sync(self) -> None:
        """Put the finished film on its substrate once the deposition is over (called before every move)."""
        if self._started is None or self.aborted or self._delivered or self._film is None:
            return
        heat, deposit, _ = self._phases()
        if self._elapsed() >= heat + deposit:
            self._delivered = True
            if self._substrate is not None and self._substrate in self.bench.vessels:
                self.bench.vessels[self._substrate].resistance_ohm = self._film.four_point_ohm

    def thickness_nm(self) -> float:
        if self._started is None or self._film is None:
            return 0.0
        heat, deposit, _ = self._phases()
        share = min(max(self._elapsed() - heat, 0.0), deposit) / deposit
        return self._film.thickness_nm * share

    def substrate_c(self) -> float:
        ambient = self.bench.ambient_c
        if self._started is None or self.aborted:
            return ambient
        heat, deposit, _ = self._phases()
        elapsed, setpoint = self._elapsed(), self._run_recipe[3]
        if elapsed < heat:
            return ambient + self.ramp_c_per_s * elapsed
        if elapsed < heat + deposit:
            return setpoint
        return max(min(self.vent_c, setpoint), setpoint - self.cool_c_per_s * (elapsed - heat - deposit))

    # --- TwinProtocol -------------------------------------------------------------------------------------------------

    def handle(self, request: str) -> list[str]:
        with self.bench.lock:
            self.bench.sync()
            return [self._answer(request.strip())]

    def error_reply(self, request: str) -> list[str]:
        return ["ERR 5"]  # interlock (vacuum, cooling water): nothing done

    def _answer(self, request: str) -> str:
        command, _, argument = request.partition(" ")
        command = command.upper()
        if command == "*IDN?" and not argument:
            return f"GENERIC,SPUTTER-1,{self.serial},{self.firmware}"
        if command == "RCP?" and not argument:
            if self.recipe is None:
                return "ERR 4"
            return "RCP " + ",".join(f"{value:.2f}" for value in self.recipe)
        if command == "RCP":
            return self._load(argument)
        if command == "RUN" and not argument:
            return self._run()
        if command == "STAT?" and not argument:
            state = self.state()
            return f"STAT {state},{self.runs},{self.substrate_c():.1f},{self.thickness_nm():.1f}"
        if command == "STOP" and not argument:
            if self.state() in ("HEATING", "DEPOSITING", "COOLING"):
                self.aborted = not self._delivered  # a film already grown stays; one cut short is no sample
            return "OK"
        return "ERR 1"

    def _load(self, argument: str) -> str:
        if self.state() in ("HEATING", "DEPOSITING", "COOLING"):
            return "ERR 3"
        fields = [field.strip() for field in argument.split(",")]
        if len(fields) != len(RECIPE_RANGES) or not all(_NUMBER.fullmatch(field) for field in fields):
            return "ERR 2"
        values = tuple(float(field) for field in fields)
        if not all(low <= value <= high for value, (_, low, high) in zip(values, RECIPE_RANGES, strict=True)):
            return "ERR 2"
        self.recipe = tuple(round(value, 2) for value in values)
        return "OK"

    def _run(self) -> str:
        if self.state() in ("HEATING", "DEPOSITING", "COOLING"):
            return "ERR 3"
        if self.recipe is None:
            return "ERR 4"
        ar, o2, power, substrate_c, minutes = self.recipe
        scatter = (self.bench.noise(1.0), self.bench.noise(1.0))
        if ar + o2 <= 0 or power <= 0:
            self._film = None  # no plasma, no film
        else:
            self._film = self.film_model(ar, o2, power, substrate_c, minutes, scatter=scatter)
        vessel = self.bench.vessel_at(self.instrument)
        self._substrate = vessel.key if vessel is not None else None
        self.runs += 1
        self.aborted = False
        self._delivered = False
        self._run_recipe = self.recipe
        self._started = self.bench.clock.now()
        return f"OK {self.runs}"
