"""Array data in a station: a spectrometer's spectra saved by name, turned into numbers by an analysis step, the
arrays journalled as plain data and stored by content hash, and the protocol checks that keep arrays out of formulas."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine

from instruments.analysis import load_analysis
from instruments.arrays import ArrayData
from instruments.conformance import FAST_SETTINGS
from instruments.drivers.ocean_optics import OceanOpticsSpectrometer
from instruments.errors import InvalidAction
from instruments.station import ActionStep, AnalysisStep, ProtocolStepError, Station
from orchestrator.store.artifacts import ArtifactStore, is_array_reference, store_arrays
from orchestrator.store.database import Database
from simulators.twins.bench import Bench
from simulators.twins.ocean_optics import OceanOpticsTwin, pixel_of
from simulators.twins.server import TwinServer

WINDOW = {"integration_ms": 50, "first_pixel": pixel_of(380), "last_pixel": pixel_of(700), "every": 6}
PROTOCOL = [
    ActionStep("spectrometer", "set_lamp", {"on": False}),
    ActionStep("spectrometer", "acquire_spectrum", WINDOW, {"spectrum": "dark"}),
    ActionStep("spectrometer", "set_lamp", {"on": True}),
    ActionStep("spectrometer", "acquire_spectrum", WINDOW, {"spectrum": "sample"}),
    ActionStep("spectrometer", "set_lamp", {"on": False}),
]


def _station(url: str, protocol: list[Any], outcomes: dict[str, str]) -> Station:
    # No on_arrive: the test places the vial at the spectrometer itself.
    driver = OceanOpticsSpectrometer(url, instrument="spectrometer", settings=FAST_SETTINGS)
    return Station({"spectrometer": driver}, protocol, outcomes)


def test_a_spectrum_is_analysed_into_an_outcome_and_journalled() -> None:
    bench = Bench(time_scale=100, seed=5)
    with TwinServer(OceanOpticsTwin(bench), name="spectrometer") as server:
        url = server.start_pty()
        # The reference is the lamp through an empty holder: the same window with nothing at the instrument.
        reference_station = _station(url, PROTOCOL, {"n": "1"})
        journal: list[tuple[str, dict[str, Any]]] = []
        reference_station.run({}, "blank", lambda kind, detail: journal.append((kind, detail)))
        reference_station.close()
        arrays = [d["result"]["spectrum"] for k, d in journal if k == "action-done" and "spectrum" in d["result"]]
        blank, dark = ArrayData.from_dict(arrays[1]), ArrayData.from_dict(arrays[0])
        # The lamp's dark-corrected counts at 450 nm, where the product absorbs (the reference a photometer calibrates).
        near = min(range(blank.points), key=lambda i: abs(blank.x[i] - 450))
        level = sum(blank.y[near - 2 : near + 3]) / 5 - sum(dark.y[near - 2 : near + 3]) / 5

        # A vial whose product absorbs at 450 nm (0.25 mmol of P in 2 mL: A = 20 x 0.125 = 2.5 at the band's top).
        bench.place("spectrometer", "vial-1").p_mmol = 0.025
        protocol = [
            *PROTOCOL,
            AnalysisStep(
                "absorbance_at_peak",
                {"sample": "sample", "dark": "dark"},
                {"reference_counts": level, "low_nm": 420, "high_nm": 480},
                {"absorbance": "a450", "peak_nm": "peak"},
            ),
        ]
        station = _station(url, protocol, {"absorbance": "a450", "peak": "peak"})
        journal.clear()
        # on_arrive is not given: the vial already stands at the spectrometer.
        outcomes = station.run({}, "e1", lambda kind, detail: journal.append((kind, detail)))
        station.close()
    # The product absorbs: clearly above zero in its band (a scalar reference at 450 nm is only a first
    # approximation of a lamp that falls steeply in the blue, so no closer number is claimed here).
    assert outcomes["absorbance"] > 0.1
    assert 420 <= outcomes["peak"] <= 480
    done = [d for k, d in journal if k == "analysis-done"]
    assert done and done[0]["input"] == {"sample": "sample", "dark": "dark"}
    assert done[0]["result"]["absorbance"] == outcomes["absorbance"]
    # Recomputed from the journalled arrays alone, the analysis gives the same numbers (it is pure).
    spectra = {
        d["saved"]["spectrum"]: ArrayData.from_dict(d["result"]["spectrum"])
        for k, d in journal
        if k == "action-done" and d.get("saved")
    }
    again = load_analysis("absorbance_at_peak").run(
        {"sample": spectra["sample"], "dark": spectra["dark"]}, done[0]["args"]
    )
    assert again == done[0]["result"]


def test_arrays_are_stored_by_hash_and_replaced_by_references(tmp_path: Any) -> None:
    db = Database(create_engine(f"sqlite:///{tmp_path / 'a.db'}"))
    from orchestrator.store.models import Base

    Base.metadata.create_all(db.engine)
    array = ArrayData.of([400, 500, 600], [1.0, 2.0, 3.0], *_axes()).as_dict()
    with db.session() as session:
        detail = store_arrays({"step": 3, "result": {"spectrum": array, "peak_counts": 3.0}}, db.artifacts, session)
    reference = detail["result"]["spectrum"]
    assert is_array_reference(reference) and reference["points"] == 3
    assert detail["result"]["peak_counts"] == 3.0
    assert ArrayData.from_dict(ArtifactStore(db.engine).get(reference["artifact"])).y == (1.0, 2.0, 3.0)


def _axes() -> tuple[Any, Any]:
    from instruments.arrays import Axis

    return Axis("wavelength", "nm"), Axis("intensity", "counts")


def test_arrays_never_reach_a_formula_and_analyses_are_checked() -> None:
    with pytest.raises(ProtocolStepError, match=r"outcomes\.x: dark is an array"):
        _station("loop://", PROTOCOL, {"x": "dark"})
    bad_input = [*PROTOCOL, AnalysisStep("peak", {"spectrum": "nothing"}, {"low": 1, "high": 2})]
    with pytest.raises(ProtocolStepError, match=r"protocol\[5\].input.spectrum"):
        _station("loop://", bad_input, {"x": "1"})
    with pytest.raises(ProtocolStepError, match=r"protocol\[5\].analyse: no analysis 'nope'"):
        _station("loop://", [*PROTOCOL, AnalysisStep("nope", {"spectrum": "dark"})], {"x": "1"})
    with pytest.raises(InvalidAction, match="missing argument low"):
        load_analysis("peak").bind({"high": 2})
