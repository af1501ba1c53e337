"""Device twin of a Mettler Toledo balance speaking MT-SICS (levels 0 and 1), weighing the vessel on its pan.

Protocol as in METTLER TOLEDO, "MT-SICS Interface Commands for Excellence Balances, Reference Manual": chapter 1
for the formats (requests `<COMMAND>[ <parameter>...]` CR LF in capitals, responses `ID Status Parameters` CR LF,
weight values right-aligned in 10 characters followed by the unit) and the general errors (`ES` unknown command,
`ET` faulty bytes, `EL` command cannot be executed), chapter 2 for the commands `@`, `I2`, `I3`, `I4`, `S`, `SI`,
`Z`, `T`, `TA`, `TAC` and their statuses.

Physics: the gross load is the mass of the vessel standing at this instrument on the bench (0 without one). When
the load changes (another vessel, or the same one heavier: the twin compares key and mass with what it last saw)
the reading swings from the old load to the new one and the balance is unstable for `settle_s` simulated seconds,
counted from the bench move that changed it. `SI` answers at once (`S D` while unstable); `S`, `Z` and `T` wait
for stability, up to `stability_timeout_s`, and answer `S I` / `Z I` / `T I` if it does not come, as the balance
does. Readings carry seeded noise and are rounded to the readability; net = gross - zero point - tare.
The zero point can be set within `zero_range_g` of the power-on zero (default 2 % of the capacity; OIML R 76
allows at most 4 %), beyond it `Z +` / `Z -`. Above the capacity the balance answers `S +` / `T +`. The pan is
always in place, so this twin never underloads (`S -`).

Powder dosing (option `dose`, for a synthesis station): a gravimetric dosing head over the pan, as automatic
balances carry one, doses the precursors `dose` (grams of each) into a crucible once it has been tared empty; each
amount lands within `dose_sd` (relative, seeded by the bench) of its target, the powder as dosed is barely mixed
(`dose_homogeneity`), and the next stable weight is the powder's. The dosing head has no commands of its own here:
the robot's recipe is the twin's option, and the balance's weight is the record of what was dosed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal

from simulators.twins.bench import Bench
from simulators.twins.server import TwinProtocol

# Host units this twin can be set to (chapter 2, M21), in grams.
_UNITS = {"g": 1.0, "mg": 1e-3, "kg": 1e3}
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
# The reply of each command when the balance cannot execute it now (the device_error fault); `@` has none.
_BUSY = {
    "S": "S I",
    "SI": "S I",
    "Z": "Z I",
    "T": "T I",
    "TA": "TA I",
    "TAC": "TAC I",
    "I2": "I2 I",
    "I3": "I3 I",
    "I4": "I4 I",
}


class MettlerSicsTwin(TwinProtocol):
    """A Mettler Toledo analytical balance (an XPR205 by default) on the bench, at `instrument`."""

    request_terminator = b"\r\n"
    reply_terminator = b"\r\n"

    def __init__(
        self,
        bench: Bench,
        instrument: str = "balance",
        capacity_g: float = 220.0,
        readability_g: float = 0.0001,
        settle_s: float = 2.0,
        noise_sd_g: float = 0.00005,
        model: str = "XPR205",
        serial: str = "B123456789",
        *,
        product_line: str = "Excellence",
        software: str = "1.10",
        type_definition: str = "18.6.4.1361.772",
        unit: str = "g",
        stability_timeout_s: float = 5.0,
        zero_range_g: float | None = None,
        dose: Mapping[str, float] | None = None,
        dose_sd: float = 0.005,
        dose_homogeneity: float = 0.1,
    ) -> None:
        numbers = (capacity_g, readability_g, settle_s, noise_sd_g, stability_timeout_s)
        if not all(math.isfinite(n) for n in numbers) or (zero_range_g is not None and not math.isfinite(zero_range_g)):
            raise ValueError("the twin's numeric options must be finite")
        if capacity_g <= 0 or readability_g <= 0 or readability_g > capacity_g:
            raise ValueError("capacity_g and readability_g must be positive, readability_g below capacity_g")
        if settle_s < 0 or noise_sd_g < 0 or stability_timeout_s < 0:
            raise ValueError("settle_s, noise_sd_g and stability_timeout_s cannot be negative")
        if unit not in _UNITS:
            raise ValueError(f"unit must be one of {', '.join(_UNITS)}")
        texts = (model, serial, product_line, software, type_definition)
        if not model or not serial or any('"' in t or not t.isascii() for t in texts):
            raise ValueError("model and serial are needed; texts must be ASCII without quotes")
        self.bench = bench
        self.instrument = instrument
        self.capacity_g = capacity_g
        self.readability_g = readability_g
        self.settle_s = settle_s
        self.noise_sd_g = noise_sd_g
        self.model = model
        self.serial = serial
        self.product_line = product_line
        self.software = software
        self.type_definition = type_definition
        self.unit = unit
        self.stability_timeout_s = stability_timeout_s
        if dose is not None and not all(math.isfinite(g) and g > 0 for g in dose.values()):
            raise ValueError("dose: every precursor's grams must be a positive number")
        self.dose = dict(dose or {})
        self.dose_sd = dose_sd
        self.dose_homogeneity = dose_homogeneity
        self.zero_range_g = 0.02 * capacity_g if zero_range_g is None else zero_range_g
        self.decimals = max(0, -Decimal(str(readability_g)).normalize().as_tuple().exponent)  # type: ignore[operator]
        # Device state: the zero point (gross load shown as 0) and the tare memory, both in grams.
        self.power_on_zero_g = 0.0
        self.zero_g = 0.0
        self.tare_g = 0.0
        # What is on the pan: the load last seen, when it last changed and from what (for the swing while settling).
        self._seen = self._load_on_pan()
        self._seen_at = bench.clock.now()
        self._changed_at = -math.inf  # switched on long ago: stable
        self._from_g = self._seen[1]
        self._moved_at: float | None = None
        bench.register(self._on_bench_move)

    # --- the load on the pan ---------------------------------------------------------------------------------------

    def _on_bench_move(self) -> None:
        """Called by the bench before any vessel moves: a change of load seen later happened no earlier than this."""
        self._moved_at = self.bench.clock.now()

    def _load_on_pan(self) -> tuple[str | None, float]:
        with self.bench.lock:
            vessel = self.bench.vessel_at(self.instrument)
            return (vessel.key, vessel.mass_g) if vessel is not None else (None, 0.0)

    def _observe(self) -> float:
        """Look at the pan now; a different vessel or mass starts the settling. Returns the simulated time."""
        seen = self._load_on_pan()
        now = self.bench.clock.now()
        if seen != self._seen:
            moved = self._moved_at
            self._changed_at = moved if moved is not None and self._seen_at <= moved <= now else now
            self._from_g = self._seen[1]
            self._seen = seen
        self._seen_at = now
        return now

    @property
    def load_g(self) -> float:
        """The gross load once settled (the vessel's mass), without noise."""
        return self._seen[1]

    def _stable(self, now: float) -> bool:
        return now - self._changed_at >= self.settle_s

    def _gross_reading_g(self, now: float) -> float:
        """What the weighing cell shows now: swinging from the old load to the new one while settling, plus noise."""
        load = self.load_g
        elapsed = now - self._changed_at
        if elapsed < self.settle_s:
            load += (self._from_g - load) * math.exp(-10.0 * elapsed / self.settle_s)
        return load + self.bench.noise(self.noise_sd_g)

    def _overloaded(self) -> bool:
        return self.load_g - self.power_on_zero_g > self.capacity_g

    def _wait_until_stable(self) -> bool:
        """Wait (in simulated time) for stability, at most `stability_timeout_s`; whether it came."""
        deadline = self._observe() + self.stability_timeout_s
        while True:
            now = self._observe()
            if self._stable(now):
                return True
            if now >= deadline:
                return False
            self.bench.sleep(min(self._changed_at + self.settle_s, deadline) - now + 1e-6)

    # --- formats ----------------------------------------------------------------------------------------------------

    def _rounded_g(self, grams: float) -> float:
        steps = round(grams / self.readability_g)
        return 0.0 if steps == 0 else steps * self.readability_g

    def _value(self, grams: float) -> str:
        """A weight in the host unit, rounded to the readability, right-aligned in the 10-character field."""
        shift = {"g": 0, "mg": -3, "kg": 3}[self.unit]
        value = self._rounded_g(grams) / _UNITS[self.unit]
        text = f"{value:.{max(0, self.decimals + shift)}f}"
        if float(text) == 0:
            text = text.lstrip("-")
        return f"{text:>10} {self.unit}"

    # --- the protocol ------------------------------------------------------------------------------------------------

    def handle(self, request: str) -> list[str]:
        if any(not (32 <= ord(c) < 127) for c in request):
            return ["ET"]  # bytes the line garbled (a parity or framing error shows as an undecodable character)
        words = request.split()
        if not words:
            return ["ES"]
        command, parameters = words[0], words[1:]
        if command == "TA":
            return [self._tare_value(parameters)]
        handler = {
            "@": self._reset,
            "I2": self._device_data,
            "I3": self._software,
            "I4": self._serial_number,
            "S": self._stable_weight,
            "SI": self._immediate_weight,
            "Z": self._zero,
            "T": self._tare,
            "TAC": self._clear_tare,
        }.get(command)
        if handler is None:
            return ["ES"]
        if parameters:
            return ["EL"]  # a command that takes no parameters was given some
        return [handler()]

    def error_reply(self, request: str) -> list[str]:
        """The balance's answer when it cannot execute a command now: the command's `I` status (`S I`, `Z I`...)."""
        words = request.split()
        command = words[0] if words else ""
        if command == "@":
            return ["EL"]
        return [_BUSY.get(command, "ES")]

    def _reset(self) -> str:
        """`@`: as after switching on, without zeroing: the tare memory is cleared. Answers the serial number."""
        self.tare_g = 0.0
        return f'I4 A "{self.serial}"'

    def _device_data(self) -> str:
        capacity = f"{self.capacity_g:.{self.decimals}f}"
        kind = f"{self.model} {self.product_line}".strip()
        return f'I2 A "{kind} {capacity} g"'

    def _software(self) -> str:
        return f'I3 A "{self.software} {self.type_definition}"'

    def _serial_number(self) -> str:
        return f'I4 A "{self.serial}"'

    def _stable_weight(self) -> str:
        """`S`: the net weight once stable; `S I` when stability does not come within the timeout."""
        self._observe()
        if self._overloaded():
            return "S +"
        if not self._wait_until_stable():
            return "S I"
        now = self._observe()
        return f"S S {self._value(self._gross_reading_g(now) - self.zero_g - self.tare_g)}"

    def _immediate_weight(self) -> str:
        """`SI`: the net weight now; status `S` when stable, `D` (dynamic) while settling."""
        now = self._observe()
        if self._overloaded():
            return "S +"
        status = "S" if self._stable(now) else "D"
        return f"S {status} {self._value(self._gross_reading_g(now) - self.zero_g - self.tare_g)}"

    def _zero(self) -> str:
        """`Z`: the stable load becomes the zero point (the tare memory is cleared), within the zero range."""
        self._observe()
        if not self._wait_until_stable():
            return "Z I"
        offset = self.load_g - self.power_on_zero_g
        if offset > self.zero_range_g:
            return "Z +"
        if offset < -self.zero_range_g:
            return "Z -"
        self.zero_g = self.load_g
        self.tare_g = 0.0
        return "Z A"

    def _tare(self) -> str:
        """`T`: the stable net load (above the zero point) becomes the tare; answers the tare taken."""
        self._observe()
        if self._overloaded():
            return "T +"
        if not self._wait_until_stable():
            return "T I"
        if self.load_g - self.zero_g < -self.readability_g / 2:
            return "T -"  # a load below the zero point cannot be tared
        now = self._observe()
        self.tare_g = max(0.0, self._rounded_g(self._gross_reading_g(now) - self.zero_g))
        self._dose_into_the_tared_crucible()
        return f"T S {self._value(self.tare_g)}"

    def _dose_into_the_tared_crucible(self) -> None:
        """The dosing head doses its recipe into the crucible on the pan, once (see the module's account)."""
        with self.bench.lock:
            vessel = self.bench.vessel_at(self.instrument)
            if not self.dose or vessel is None or vessel.powders_g:
                return
            vessel.powders_g = {
                name: grams * (1.0 + self.bench.noise(self.dose_sd)) for name, grams in self.dose.items()
            }
            vessel.homogeneity = self.dose_homogeneity

    def _tare_value(self, parameters: list[str]) -> str:
        """`TA`: the tare memory; `TA <value> <unit>` presets it (`TA L` for a value or unit it cannot take)."""
        if parameters:
            if len(parameters) != 2 or not _NUMBER.fullmatch(parameters[0]) or parameters[1] not in _UNITS:
                return "TA L"
            grams = float(parameters[0]) * _UNITS[parameters[1]]
            if not 0 <= grams <= self.capacity_g:
                return "TA L"
            self.tare_g = self._rounded_g(grams)
        return f"TA A {self._value(self.tare_g)}"

    def _clear_tare(self) -> str:
        """`TAC`: the tare memory is cleared."""
        self.tare_g = 0.0
        return "TAC A"
