"""The lab file: instruments declared once, named by station campaigns, limits narrowed and never widened."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.campaign.spec import CampaignSpec, load_spec
from orchestrator.campaign.station import StationLab
from orchestrator.errors import SpecError
from tests.orchestrator.cli.helpers import invoke

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("lab.yaml", "shared_station.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_the_lab_s_instruments_are_written_into_the_spec_with_the_tighter_limits(folder: Path) -> None:
    spec, _ = load_spec(folder / "shared_station.yaml")
    assert isinstance(spec.lab, StationLab)
    assert spec.lab.shared is not None and spec.lab.shared.lab == "bench_lab"
    assert spec.lab.shared.hold_timeout_s == 600
    pump = spec.lab.instruments["pump"]
    assert pump.driver == "newera-pump" and pump.port == "/dev/ttyUSB0"
    assert pump.limits["volume_ml"].max == 2.0 and pump.limits["volume_ml"].per_experiment == 3.0
    assert pump.limits["rate_ml_min"].max == 20
    assert spec.lab.twins is not None and spec.lab.twins.time_scale == 600
    # The stored spec stands alone: read back without the lab file, it is the same campaign.
    stored = spec.model_dump(mode="json")
    (folder / "lab.yaml").unlink()
    assert CampaignSpec.model_validate(stored).content_hash() == spec.content_hash()


def test_a_wider_limit_is_refused_by_name(folder: Path) -> None:
    _edit(folder / "shared_station.yaml", "temperature_c: {max: 125}", "temperature_c: {max: 150}")
    with pytest.raises(SpecError) as caught:
        load_spec(folder / "shared_station.yaml")
    assert caught.value.field == "lab.instruments.hotplate.limits.temperature_c.max"
    assert "wider than the lab's 140" in caught.value.message


def test_an_instrument_the_lab_lacks_and_a_bad_lab_file_are_refused(folder: Path) -> None:
    _edit(folder / "shared_station.yaml", "photometer: {}", "spectrometer: {}")
    with pytest.raises(SpecError) as caught:
        load_spec(folder / "shared_station.yaml")
    assert caught.value.field == "lab.instruments.spectrometer"
    _edit(folder / "shared_station.yaml", "spectrometer: {}", "photometer: {}")
    _edit(folder / "lab.yaml", "driver: ika-namur", "driver: ika-namur\n    colour: red")
    with pytest.raises(SpecError) as caught:
        load_spec(folder / "shared_station.yaml")
    assert caught.value.field == "lab.yaml: instruments.hotplate.colour"


def test_a_list_of_names_takes_the_lab_s_limits_and_shared_is_not_written_by_hand(folder: Path) -> None:
    _edit(
        folder / "shared_station.yaml",
        "pump: {limits: {volume_ml: {max: 2.0}}}        # narrower than the lab's 3 mL\n"
        "    hotplate: {limits: {temperature_c: {max: 125}}}\n    balance: {}\n    photometer: {}",
        "[pump, hotplate, balance, photometer]",
    )
    spec, _ = load_spec(folder / "shared_station.yaml")
    assert isinstance(spec.lab, StationLab)
    assert spec.lab.instruments["pump"].limits["volume_ml"].max == 3.0
    _edit(folder / "shared_station.yaml", "  lab_file: lab.yaml", "  lab_file: lab.yaml\n  shared: {lab: x}")
    with pytest.raises(SpecError) as caught:
        load_spec(folder / "shared_station.yaml")
    assert caught.value.field == "lab.shared"


def test_a_lab_file_is_read_with_the_campaign_file_s_refusals(folder: Path) -> None:
    """A key given twice in the lab file is refused by line (PyYAML alone keeps the last, silently), and runaway
    nesting is one line, not a RecursionError."""
    _edit(folder / "lab.yaml", "driver: ika-namur", "driver: ika-namur\n    driver: newera-pump")
    with pytest.raises(SpecError) as caught:
        load_spec(folder / "shared_station.yaml")
    assert caught.value.field.startswith("lab.yaml:")
    assert caught.value.message.startswith("duplicate key 'driver' (first given on line ")
    (folder / "lab.yaml").write_text("[" * 20_000)
    with pytest.raises(SpecError) as caught:
        load_spec(folder / "shared_station.yaml")
    assert caught.value.message == "nested more than 50 levels deep"


def test_a_run_without_a_prefect_server_says_the_lab_s_instruments_are_not_held(folder: Path) -> None:
    _edit(folder / "shared_station.yaml", "experiments: 12, batch_size: 3", "experiments: 1, batch_size: 1")
    _edit(folder / "lab.yaml", "time_scale: 600", "time_scale: 60000")  # the 5-60 min reaction in well under 1 s
    url = f"sqlite:///{folder / 'lab.db'}"
    ran = invoke(
        "run", "shared_station.yaml", "--db", url, "--engine", "inline", cwd=folder, env={"PREFECT_API_URL": None}
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "shared_station finished: budget of 1 experiments spent" in ran.stdout
    assert ran.stderr.splitlines()[0] == (
        "warning: the instruments of lab 'bench_lab' are not held lab-wide: no Prefect server (PREFECT_API_URL); "
        "run no other campaign on them meanwhile"
    )
