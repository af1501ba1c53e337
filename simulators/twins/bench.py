"""The physical world the device twins share: vessels, a clock, and the chemistry that happens in them.

The twins of one station act on one `Bench`, so what one instrument does shows in what another measures: the
pump doses reagent into the vessel standing at it, the hotplate heats (and so reacts) the vessel on it, the balance
weighs the vessel on its pan, the photometer reads the light the product absorbs. The station moves a vessel
to an instrument with `place(instrument, vessel)` (in a real lab a robot arm or a person does this).

The chemistry is a surrogate with a real shape, not a lookup: A (dosed by the pump) + B (charged in the vial)
→ P (the product, absorbing at 450 nm), and P → D (decomposition), both Arrhenius, the first order in each
reactant. Stirring below ~300 rpm limits the rate (mass transfer). So the yield has an optimum in temperature and
time and rises with the dose of A, as a real reaction screen does.

The bench's clock runs `time_scale` times faster than its wall clock, so a 20-minute hold takes 2 s at 600×;
twins integrate lazily (whenever asked, and before every move) in steps of at most `step_s` simulated seconds.
The wall clock is the real one by default; a test hands in an `instruments.clock.ManualClock` (`wall_clock=`),
shares it with the driver on a loopback link, and the same hold then costs no wall time at all.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from instruments.clock import SYSTEM_CLOCK, Clock

GAS_CONSTANT = 8.314  # J / (mol K)


@dataclass(frozen=True)
class Chemistry:
    """Constants of the surrogate reaction A + B → P → D in a vial."""

    charge_b_mmol: float = 0.5  # B in the vial before dosing
    charge_volume_ml: float = 2.0  # solvent charged with B
    reagent_a_molar: float = 0.5  # concentration of A in the pump's syringe (mol/L = mmol/mL)
    density_g_ml: float = 0.87  # solution density (toluene-like)
    vial_tare_g: float = 11.482  # empty vial with stir bar
    # A + B → P: k1 = A1 exp(-E1/RT)  in L/(mol s); P → D: k2 = A2 exp(-E2/RT) in 1/s
    a1: float = 4.0e7
    e1: float = 7.0e4
    a2: float = 5.0e13
    e2: float = 1.25e5
    molar_absorptivity: float = 20.0  # of P at 450 nm, L/(mol cm)
    path_cm: float = 1.0
    stir_half_rpm: float = 150.0  # rate factor = rpm / (rpm + this)


@dataclass
class Vessel:
    key: str
    chemistry: Chemistry
    volume_ml: float = 0.0
    a_mmol: float = 0.0
    b_mmol: float = 0.0
    p_mmol: float = 0.0
    d_mmol: float = 0.0
    temperature_c: float = 22.0
    # What a four-point probe on the sample reads (V/I across its inner pins): a film deposited on a substrate
    # sets it; infinite where nothing conducts (a liquid in a vial, a bare glass substrate).
    resistance_ohm: float = math.inf
    # (temperature in C, seconds) of every step the vessel spent on a heater, in order: what a film's anneal is
    # computed from (simulators.templates.ada). A heater's twin records it through `react`.
    heated: list[tuple[float, float]] = field(default_factory=list)
    # A powder sample (solid-state synthesis): the precursors dosed onto it in grams, how well they are mixed (0 as
    # dosed, towards 1 well milled), and what firing made of it (phase -> weight fraction). The twins of the doser,
    # the mixer, the furnace and the diffractometer of a synthesis station write and read them.
    powders_g: dict[str, float] = field(default_factory=dict)
    homogeneity: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @classmethod
    def charged(cls, key: str, chemistry: Chemistry, ambient_c: float) -> Vessel:
        return cls(key, chemistry, chemistry.charge_volume_ml, 0.0, chemistry.charge_b_mmol, temperature_c=ambient_c)

    @property
    def mass_g(self) -> float:
        return self.chemistry.vial_tare_g + self.volume_ml * self.chemistry.density_g_ml + sum(self.powders_g.values())

    @property
    def absorbance(self) -> float:
        if self.volume_ml <= 0:
            return 0.0
        molar = self.p_mmol / self.volume_ml  # mmol/mL = mol/L
        return self.chemistry.molar_absorptivity * molar * self.chemistry.path_cm

    def dose(self, volume_ml: float) -> None:
        self.volume_ml += volume_ml
        self.a_mmol += volume_ml * self.chemistry.reagent_a_molar

    def react(self, temperature_c: float, stir_rpm: float, seconds: float) -> None:
        """Advance the reaction by `seconds` at `temperature_c` (explicit Euler on sub-steps small enough)."""
        if seconds <= 0:
            return
        self.heated.append((temperature_c, seconds))
        if self.volume_ml <= 0:
            return
        c = self.chemistry
        kelvin = temperature_c + 273.15
        mixing = stir_rpm / (stir_rpm + c.stir_half_rpm) if stir_rpm > 0 else 0.05
        k1 = c.a1 * math.exp(-c.e1 / (GAS_CONSTANT * kelvin)) * mixing
        k2 = c.a2 * math.exp(-c.e2 / (GAS_CONSTANT * kelvin))
        volume_l = self.volume_ml / 1000
        remaining = seconds
        while remaining > 0:
            # mmol/s: k1 [A][B] V = k1 (a/V)(b/V) V / 1000 with amounts in mmol and V in L
            rate1 = k1 * (self.a_mmol / 1000 / volume_l) * (self.b_mmol / 1000 / volume_l) * volume_l * 1000
            rate2 = k2 * self.p_mmol
            limit = min(self.a_mmol, self.b_mmol)
            dt = min(remaining, 1.0, 0.05 * limit / rate1 if rate1 > 0 else remaining)
            dt = max(dt, min(remaining, 1e-3))
            made = min(rate1 * dt, limit)
            lost = min(rate2 * dt, self.p_mmol + made)
            self.a_mmol -= made
            self.b_mmol -= made
            self.p_mmol += made - lost
            self.d_mmol += lost
            remaining -= dt


class ScaledClock:
    """Simulated seconds since it was made, running `time_scale` times its wall clock (a `Clock` itself)."""

    def __init__(self, time_scale: float = 1.0, wall: Clock | None = None) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self.wall: Clock = wall if wall is not None else SYSTEM_CLOCK
        self._start = self.wall.now()

    def now(self) -> float:
        return (self.wall.now() - self._start) * self.time_scale

    def sleep(self, seconds: float) -> None:
        """Let `seconds` simulated seconds pass: `seconds / time_scale` on the wall clock."""
        self.wall.sleep(max(0.0, seconds) / self.time_scale)


@dataclass
class Bench:
    """Vessels, where each stands, and the instruments that act on them. Thread-safe."""

    time_scale: float = 1.0
    seed: int = 0
    ambient_c: float = 22.0
    chemistry: Chemistry = field(default_factory=Chemistry)
    wall_clock: Clock | None = None  # None: the real one

    def __post_init__(self) -> None:
        self.clock: Clock = ScaledClock(self.time_scale, self.wall_clock)
        self.lock = threading.RLock()
        self.rng = np.random.default_rng(self.seed)
        self.vessels: dict[str, Vessel] = {}
        self._positions: dict[str, str] = {}  # instrument -> vessel key
        self._syncers: list[Callable[[], None]] = []

    def register(self, syncer: Callable[[], None]) -> None:
        """A twin whose physics runs between requests (a hotplate, a running pump) brings itself up to now here."""
        self._syncers.append(syncer)

    def sync(self) -> None:
        with self.lock:
            for syncer in self._syncers:
                syncer()

    def place(self, instrument: str, vessel: str) -> Vessel:
        """Move a vessel (made, charged with B, on first use) to an instrument; it leaves wherever it stood."""
        with self.lock:
            self.sync()  # what happened at the old place happened before the move
            if vessel not in self.vessels:
                self.vessels[vessel] = Vessel.charged(vessel, self.chemistry, self.ambient_c)
            for where, key in list(self._positions.items()):
                if key == vessel:
                    del self._positions[where]
            self._positions[instrument] = vessel
            return self.vessels[vessel]

    def remove(self, instrument: str) -> None:
        with self.lock:
            self.sync()
            self._positions.pop(instrument, None)

    def vessel_at(self, instrument: str) -> Vessel | None:
        with self.lock:
            key = self._positions.get(instrument)
            return self.vessels[key] if key is not None else None

    def noise(self, sd: float) -> float:
        with self.lock:
            return float(self.rng.normal(0.0, sd)) if sd > 0 else 0.0

    def sleep(self, simulated_seconds: float) -> None:
        """Let this many simulated seconds pass on the bench's clock (a twin taking its time to settle)."""
        self.clock.sleep(simulated_seconds)
