"""Array data in a station: a spectrometer's spectra saved by name, turned into numbers by an analysis step, the
arrays journalled as plain data and stored by content hash, and the protocol checks that keep arrays out of formulas."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine

from instruments.analysis import AnalysisError, load_analysis
from instruments.arrays import ArrayData
from instruments.conformance import FAST_SETTINGS
from instruments.drivers.ocean_optics import OceanOpticsSpectrometer
from instruments.errors import InvalidAction
from instruments.station import ActionStep, AnalysisStep, ManualStep, PersonEntry, ProtocolStepError, Station
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
    # A vial whose product absorbs in a band at 450 nm: 0.025 mmol of P in 2 mL, A = 20 x 0.0125 = 0.25 at its top.
    vial = bench.place("elsewhere", "vial-1")
    vial.p_mmol = 0.025
    assert vial.absorbance == pytest.approx(0.25)

    def put_the_vial_in(index: int, step: ManualStep, text: str) -> PersonEntry:
        bench.place("spectrometer", "vial-1")
        return PersonEntry(1.0, "tester")

    # Dark and reference through the empty holder, then the vial (a person puts it in), then its spectrum.
    protocol = [
        *PROTOCOL[:3],
        ActionStep("spectrometer", "acquire_spectrum", WINDOW, {"spectrum": "reference"}),
        ManualStep("Put the vial in the holder", "placed"),
        ActionStep("spectrometer", "acquire_spectrum", WINDOW, {"spectrum": "sample"}),
        ActionStep("spectrometer", "set_lamp", {"on": False}),
        AnalysisStep(
            "absorbance_at_peak",
            {"sample": "sample", "reference": "reference", "dark": "dark"},
            {"low_nm": 420, "high_nm": 480},
            {"absorbance": "a_peak", "peak_nm": "peak"},
        ),
        AnalysisStep(
            "mean_absorbance",
            {"sample": "sample", "reference": "reference", "dark": "dark"},
            {"low_nm": 440, "high_nm": 460},
            {"absorbance": "a450"},
        ),
    ]
    journal: list[tuple[str, dict[str, Any]]] = []
    with TwinServer(OceanOpticsTwin(bench), name="spectrometer") as server:
        station = _station(server.start_pty(), protocol, {"peak": "peak", "a_peak": "a_peak", "a450": "a450"})
        outcomes = station.run({}, "e1", lambda kind, detail: journal.append((kind, detail)), put_the_vial_in)
        station.close()
    # Dark-corrected against the blank at every wavelength, the analysis reads the vial's absorbance itself: the
    # band's mean over 440-460 nm is 0.25 x 0.992 (a Gaussian of 40 nm; shot noise about 0.015 a point, 0.005 over
    # the band's nine points). The largest of ~26 noisy points lies some two standard deviations above the top.
    assert outcomes["a450"] == pytest.approx(0.25 * 0.992, abs=0.015)
    assert 0.24 < outcomes["a_peak"] < 0.30
    assert 420 <= outcomes["peak"] <= 480
    done = [d for k, d in journal if k == "analysis-done"]
    assert done and done[0]["input"] == {"sample": "sample", "reference": "reference", "dark": "dark"}
    assert done[0]["result"]["absorbance"] == outcomes["a_peak"]
    # Recomputed from the journalled arrays alone, the analysis gives the same numbers (it is pure).
    spectra = {
        d["saved"]["spectrum"]: ArrayData.from_dict(d["result"]["spectrum"])
        for k, d in journal
        if k == "action-done" and d.get("saved")
    }
    again = load_analysis("absorbance_at_peak").run(
        {name: spectra[name] for name in ("sample", "reference", "dark")}, done[0]["args"]
    )
    assert again == done[0]["result"]


def test_absorbance_is_against_a_reference_spectrum_and_needs_its_light() -> None:
    """A = -log10((S - D) / (R - D)) point by point: a lamp that falls steeply across the band does not bend it."""
    x = [400.0, 450.0, 500.0]
    axes = _axes()
    dark = ArrayData.of(x, [100, 100, 100], *axes)
    reference = ArrayData.of(x, [1100, 10100, 100100], *axes)  # the lamp x 100 across the band
    sample = ArrayData.of(x, [200, 1100, 10100], *axes)  # 10 % transmitted everywhere: A = 1
    result = load_analysis("mean_absorbance").run(
        {"sample": sample, "reference": reference, "dark": dark}, {"low_nm": 400, "high_nm": 500}
    )
    assert result["absorbance"] == pytest.approx(1.0)
    lamp_off = ArrayData.of(x, [100, 100, 100], *axes)
    with pytest.raises(AnalysisError, match="no light above the dark"):
        load_analysis("absorbance_at_peak").run(
            {"sample": sample, "reference": lamp_off, "dark": dark}, {"low_nm": 400, "high_nm": 500}
        )
    # Outside the band asked for, a reference without light does not matter.
    partly = ArrayData.of(x, [100, 10100, 100100], *axes)
    assert load_analysis("absorbance_at_peak").run(
        {"sample": sample, "reference": partly, "dark": dark}, {"low_nm": 440, "high_nm": 510}
    )["absorbance"] == pytest.approx(1.0)


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
