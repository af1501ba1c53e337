"""Device twin of an Ocean Optics USB2000 / Flame spectrometer on RS-232, in ASCII data mode.

Speaks what `instruments.drivers.ocean_optics` implements, from the Flame user manual 225-00000-000-11-201604,
chapter 8: `aA` (ASCII mode, sent bare: answered ACK together with the next command), `bB`, `I{ms}` (3-65535),
`A{n}` (scans to add, 1-5000), `J{0|1}` (lamp), `P0` / `P3` x y n (pixel mode), `v`, `?x{i}` (0 serial number,
1-4 wavelength coefficients), `S` (STX, then 0xFFFF, size flag, scans, integration ms, baseline MSW/LSW, pixel
mode and its values, the data, 0xFFFD). Echo, then ACK or NAK, each line ending CR LF (the reading of the manual
the driver's docstring states). A value out of range is answered NAK and not applied (the `device_error` fault
answers NAK too).

Physics: a tungsten-halogen lamp (a 3000 K black body through the grating's response, peaking near
`lamp_counts_per_ms` counts per ms of integration) shines through the sample at `instrument`, which absorbs
A(wavelength) given by the `film` model: `vial` (default) reads the bench vessel's product band at 450 nm, the
band the photometer sees; `ada` the doped spiro-OMeTAD film of the Ada template (`simulators.templates.ada`).
Counts = dark baseline + lamp x 10^-A (lamp on) + seeded shot and read noise, saturating at 65535 per scan; scans
are added.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

import numpy as np

from simulators.twins.bench import Bench, Vessel
from simulators.twins.server import TwinProtocol

ACK = "\x06"
NAK = "\x15"
STX = "\x02"
PIXELS = 2048
# A USB2000 with grating #2 (about 340-1030 nm): wavelength = c0 + c1 p + c2 p^2 + c3 p^3.
COEFFICIENTS = (339.6, 0.3794, -1.46e-5, -1.2e-10)
FILMS = {"vial": "simulators.twins.ocean_optics:vial_absorbance", "ada": "simulators.templates.ada:film_absorbance"}


def vial_absorbance(vessel: Vessel, wavelengths: np.ndarray) -> np.ndarray:
    """The reaction bench's product P, absorbing in a band at 450 nm (its 450 nm value is the vessel's absorbance)."""
    return np.asarray(vessel.absorbance * np.exp(-0.5 * ((wavelengths - 450.0) / 40.0) ** 2))


def lamp_shape(wavelengths: np.ndarray, kelvin: float = 3000.0) -> np.ndarray:
    """Relative lamp x detector response: Planck's law at `kelvin`, times a silicon response falling off toward the
    UV and the near infrared, scaled to 1 at its maximum over the detector."""
    metres = wavelengths * 1e-9
    planck = 1.0 / (metres**5 * (np.exp(1.4388e-2 / (metres * kelvin)) - 1.0))
    response = np.exp(-0.5 * ((wavelengths - 650.0) / 210.0) ** 2)
    shape = planck * response
    return np.asarray(shape / shape.max())


class OceanOpticsTwin(TwinProtocol):
    request_terminator = b"\r"
    reply_terminator = b"\r\n"

    def __init__(
        self,
        bench: Bench,
        instrument: str = "spectrometer",
        serial_number: str = "USB2G12345",
        version: int = 3010,
        film: str = "vial",
        lamp_counts_per_ms: float = 300.0,
        dark_counts: float = 90.0,
        read_noise: float = 4.0,
    ) -> None:
        if film not in FILMS:
            raise ValueError(f"film: '{film}' is not one of {', '.join(FILMS)}")
        self.bench = bench
        self.instrument = instrument
        self.serial_number = serial_number
        self.version = version
        module, _, name = FILMS[film].partition(":")
        self.absorbance: Callable[[Vessel, np.ndarray], np.ndarray] = getattr(import_module(module), name)
        self.lamp_counts_per_ms = lamp_counts_per_ms
        self.dark_counts = dark_counts
        self.read_noise = read_noise
        pixels = np.arange(PIXELS)
        c0, c1, c2, c3 = COEFFICIENTS
        self.wavelengths = c0 + c1 * pixels + c2 * pixels**2 + c3 * pixels**3
        self.lamp = lamp_shape(self.wavelengths)
        self.ascii = False
        self.integration_ms = 100
        self.scans = 1
        self.lamp_on = False
        self.pixel_mode: tuple[int, ...] = (0,)  # (0,) or (3, x, y, n)
        self._pending: list[str] = []  # P3 awaiting its values
        self.spectra_taken = 0

    # --- protocol ---------------------------------------------------------------------------------------------------

    def handle(self, request: str) -> list[str]:
        replies: list[str] = []
        if request.startswith("aA"):  # the bare mode switch arrives glued to the next command
            self.ascii = True
            replies.append(ACK)
            request = request[2:]
            if not request:
                return replies
        elif request.startswith("bB"):
            self.ascii = False
            return [ACK]
        return [*replies, request, *self._act(request)]

    def error_reply(self, request: str) -> list[str]:
        return [request.removeprefix("aA"), NAK]

    def _act(self, request: str) -> list[str]:
        if self._pending:
            self._pending.append(request)
            if not request.isdigit():
                self._pending.clear()
                return [NAK]
            if len(self._pending) < 4:
                return []  # echoed only, until the last value
            _, x, y, n = (int(v) for v in self._pending)
            self._pending.clear()
            if not (0 <= x <= y < PIXELS and 1 <= n <= PIXELS):
                return [NAK]
            self.pixel_mode = (3, x, y, n)
            return [ACK]
        letter, value = request[:1], request[1:]
        if letter == "v" and not value:
            return [ACK, str(self.version)]
        if request.startswith("?x") and value[1:].isdigit():
            index = int(value[1:])
            if index == 0:
                return [ACK, self.serial_number]
            if 1 <= index <= 4:
                return [ACK, repr(COEFFICIENTS[index - 1])]
            return [NAK]
        if request == "S":
            return self._acquire()
        if not value.isdigit():
            return [NAK]
        number = int(value)
        if letter == "I" and 3 <= number <= 65535:
            self.integration_ms = number
        elif letter == "A" and 1 <= number <= 5000:
            self.scans = number
        elif letter == "J" and number in (0, 1):
            self.lamp_on = number == 1
        elif letter == "P" and number == 0:
            self.pixel_mode = (0,)
        elif letter == "P" and number == 3:
            self._pending = [value]
            return []
        else:
            return [NAK]
        return [ACK]

    # --- physics ----------------------------------------------------------------------------------------------------

    def counts(self) -> np.ndarray:
        """One acquisition's added counts at every pixel (shape (2048,)), from the sample now at the instrument."""
        with self.bench.lock:
            self.bench.sync()
            vessel = self.bench.vessel_at(self.instrument)
            absorbance = self.absorbance(vessel, self.wavelengths) if vessel is not None else 0.0
            light = self.lamp * self.lamp_counts_per_ms * self.integration_ms * 10 ** (-absorbance)
            light = light if self.lamp_on else np.zeros(PIXELS)
            total = np.zeros(PIXELS)
            for _ in range(self.scans):
                shot = np.sqrt(np.maximum(light, 0.0))
                noise = self.bench.rng.normal(0.0, 1.0, PIXELS) * np.hypot(shot, self.read_noise)
                total += np.clip(np.round(self.dark_counts + light + noise), 0, 65535)
            # Acquisition takes the integration time of each scan, on the bench's clock.
            self.bench.clock.sleep(self.integration_ms * self.scans / 1000.0)
        return total

    def _acquire(self) -> list[str]:
        total = self.counts()
        self.spectra_taken += 1
        if self.pixel_mode[0] == 3:
            _, x, y, n = self.pixel_mode
            pixels = list(range(x, y + 1, n))
        else:
            pixels = list(range(PIXELS))
        baseline = int(self.dark_counts)
        header = [0xFFFF, 1 if self.scans > 1 else 0, self.scans, min(self.integration_ms, 65535)]
        header += [baseline >> 16, baseline & 0xFFFF, self.pixel_mode[0], *self.pixel_mode[1:]]
        data = [int(total[p]) for p in pixels]
        return [STX, *map(str, header), *map(str, data), str(0xFFFD)]


def wavelength_of(pixel: int) -> float:
    c0, c1, c2, c3 = COEFFICIENTS
    return c0 + c1 * pixel + c2 * pixel**2 + c3 * pixel**3


def pixel_of(wavelength_nm: float) -> int:
    """The first pixel at or above a wavelength (for choosing first_pixel/last_pixel in a protocol)."""
    for p in range(PIXELS):
        if wavelength_of(p) >= wavelength_nm:
            return p
    return PIXELS - 1


__all__ = ["OceanOpticsTwin", "lamp_shape", "pixel_of", "vial_absorbance", "wavelength_of"]
