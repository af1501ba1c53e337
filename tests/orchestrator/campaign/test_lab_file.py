"""The lab file: instruments declared once, named by station campaigns, limits narrowed and never widened."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.campaign.runs import create_or_reopen
from orchestrator.campaign.spec import CampaignSpec, load_spec
from orchestrator.campaign.station import StationLab
from orchestrator.errors import CampaignConflict, SpecError
from orchestrator.store.database import open_database
from orchestrator.store.models import Campaign, Event
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


def test_an_instrument_moved_to_another_port_continues_the_stored_campaign(folder: Path, tmp_path: Path) -> None:
    """The lab plugs the hotplate into another device server and gives the pump a longer serial timeout: the same
    campaign file reopens its stored campaign, which takes the new places with an event saying what moved. A
    changed limit is another campaign, refused as before."""
    db = open_database(f"sqlite:///{tmp_path / 'lab.db'}")
    spec, text = load_spec(folder / "shared_station.yaml")
    campaign_id, created = create_or_reopen(db, spec, text)
    assert created == "created"
    _edit(folder / "lab.yaml", 'port: "socket://10.0.0.7:4001"', 'port: "socket://10.0.0.9:4001"')
    _edit(folder / "lab.yaml", "port: /dev/ttyUSB0\n", "port: /dev/ttyUSB0\n    serial: {timeout_s: 5}\n")
    moved, moved_text = load_spec(folder / "shared_station.yaml")
    assert create_or_reopen(db, moved, moved_text) == (campaign_id, "reopened")
    with db.session() as session:
        stored = session.get(Campaign, campaign_id)
        assert stored is not None
        assert stored.spec["lab"]["instruments"]["hotplate"]["port"] == "socket://10.0.0.9:4001"
        assert stored.spec_hash == moved.content_hash() and stored.spec_text == moved_text
        (event,) = session.scalars(select(Event).where(Event.kind == "instruments-moved")).all()
    assert event.detail == {
        "moved": {
            "hotplate": {
                "from": {"port": "socket://10.0.0.7:4001", "serial": {}},
                "to": {"port": "socket://10.0.0.9:4001", "serial": {}},
            },
            "pump": {
                "from": {"port": "/dev/ttyUSB0", "serial": {}},
                "to": {"port": "/dev/ttyUSB0", "serial": {"timeout_s": 5}},
            },
        }
    }
    assert create_or_reopen(db, moved, moved_text) == (campaign_id, "reopened")  # nothing moved: no new event
    _edit(folder / "lab.yaml", "rate_ml_min: {max: 20}", "rate_ml_min: {max: 10}")
    tighter, tighter_text = load_spec(folder / "shared_station.yaml")
    with pytest.raises(CampaignConflict, match="already exists with a different spec"):
        create_or_reopen(db, tighter, tighter_text)
    with db.session() as session:
        assert len(session.scalars(select(Event).where(Event.kind == "instruments-moved")).all()) == 1
    db.dispose()
