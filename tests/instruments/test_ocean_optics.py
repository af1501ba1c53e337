"""The Ocean Optics spectrometer driver against its twin: the conformance kit over a real pty, the spectrum's
framing and calibration, NAK as a typed device error, and the parsers on whatever arrives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

from instruments.arrays import ArrayData
from instruments.conformance import FAST_SETTINGS, DriverConformance, ParserConformance
from instruments.drivers.ocean_optics import (
    OceanOpticsSpectrometer,
    parse_number,
    parse_spectrum_words,
    parse_word,
)
from instruments.errors import DeviceError, InstrumentError, LimitViolation
from simulators.twins.bench import Bench
from simulators.twins.ocean_optics import OceanOpticsTwin, pixel_of, wavelength_of
from simulators.twins.server import TwinServer

SETTINGS: dict[str, Any] = {**FAST_SETTINGS, "timeout_s": 1.0}


def serve(bench: Bench, **options: Any) -> TwinServer:
    server = TwinServer(OceanOpticsTwin(bench, **options), name="spectrometer")
    server.start_pty()
    return server


@pytest.fixture
def twin() -> Iterator[TwinServer]:
    with serve(Bench(time_scale=100, seed=3)) as server:
        yield server


@pytest.fixture
def driver(twin: TwinServer) -> Iterator[OceanOpticsSpectrometer]:
    driver = OceanOpticsSpectrometer(twin.url, instrument="spectrometer", settings=SETTINGS)
    driver.connect()
    yield driver
    driver.close()


class TestOceanOpticsConformance(DriverConformance):
    driver_class = OceanOpticsSpectrometer
    examples: ClassVar[list[tuple[str, dict[str, Any]]]] = [
        ("set_lamp", {"on": True}),
        ("acquire_spectrum", {"integration_ms": 20, "first_pixel": 100, "last_pixel": 400, "every": 10}),
        ("set_lamp", {"on": False}),
    ]
    query_action = ("set_lamp", {"on": False})
    settings = FAST_SETTINGS

    @pytest.fixture
    def twin(self) -> Iterator[TwinServer]:
        with serve(Bench(time_scale=100, seed=1)) as server:
            yield server


class TestOceanOpticsParsers(ParserConformance):
    parsers = (parse_word, parse_number, lambda line: parse_spectrum_words([parse_word(w) for w in line.split()]))
    valid_answers = ("65535", "0", "339.6", "-1.46e-05", "65535 0 1 100 0 90 0 120 130 65533")


def test_identity_and_calibration_come_from_the_device(driver: OceanOpticsSpectrometer) -> None:
    assert driver.identity == {
        "model": "Ocean Optics spectrometer (RS-232)",
        "firmware": "3.01.0",
        "serial": "USB2G12345",
    }
    assert driver.wavelength(1000) == pytest.approx(wavelength_of(1000))


def test_a_spectrum_is_an_array_on_the_pixels_asked_for(driver: OceanOpticsSpectrometer, twin: TwinServer) -> None:
    first, last = pixel_of(400.0), pixel_of(800.0)
    driver.execute("set_lamp", {"on": True})
    lit = driver.execute(
        "acquire_spectrum", {"integration_ms": 50, "first_pixel": first, "last_pixel": last, "every": 8}
    )
    driver.execute("set_lamp", {"on": False})
    dark = driver.execute(
        "acquire_spectrum", {"integration_ms": 50, "first_pixel": first, "last_pixel": last, "every": 8}
    )
    spectrum = lit["spectrum"]
    assert isinstance(spectrum, ArrayData)
    assert spectrum.points == len(range(first, last + 1, 8))
    assert spectrum.x[0] == pytest.approx(wavelength_of(first)) and spectrum.x[-1] <= 800.5
    assert (spectrum.x_axis.unit, spectrum.y_axis.unit) == ("nm", "counts")
    # The lamp adds hundreds to thousands of counts over the dark baseline (about 90 counts).
    assert np.mean(dark["spectrum"].y) == pytest.approx(90, abs=10)
    assert min(np.subtract(spectrum.y, dark["spectrum"].y)) > 300  # a halogen lamp is weakest in the blue
    assert lit["peak_counts"] == max(spectrum.y)
    assert "P3" in twin.log and "S" in twin.log


def test_accumulated_scans_add_up(driver: OceanOpticsSpectrometer) -> None:
    one = driver.execute("acquire_spectrum", {"integration_ms": 10, "scans": 1, "first_pixel": 500, "last_pixel": 520})
    four = driver.execute("acquire_spectrum", {"integration_ms": 10, "scans": 4, "first_pixel": 500, "last_pixel": 520})
    assert np.mean(four["spectrum"].y) == pytest.approx(4 * np.mean(one["spectrum"].y), rel=0.1)


def test_a_refused_value_is_a_typed_device_error(driver: OceanOpticsSpectrometer) -> None:
    with pytest.raises(DeviceError):
        driver._command("I2")  # below the device's 3 ms: NAK
    with pytest.raises(LimitViolation):
        driver.execute("acquire_spectrum", {"integration_ms": 2})  # refused before anything is sent


def test_a_malformed_spectrum_is_a_protocol_error() -> None:
    with pytest.raises(InstrumentError):
        parse_spectrum_words([65535, 0, 1, 100, 0, 90, 3, 0, 3, 1, 5, 5, 65533])  # 3 values announced, 2 sent
