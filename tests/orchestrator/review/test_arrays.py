"""Arrays a station measured, in review: listed per experiment with their artifact's hash, loaded back by reference,
every analysis computed again from them, shown in `peirce report`, and carried by an archive."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from instruments.arrays import ArrayData
from orchestrator.campaign import runs
from orchestrator.campaign.spec import parse_spec
from orchestrator.cycle.context import load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.review.archive import ArchiveError, export_archive, import_archive, read_archive
from orchestrator.review.arrays import experiment_arrays, reanalyse, stored_arrays, summary
from orchestrator.review.report import write_report
from orchestrator.store.artifacts import ArtifactError, load_array
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Artifact, Event
from simulators.twins.ocean_optics import pixel_of
from tests.orchestrator.cli.helpers import invoke

WINDOW = f"{{integration_ms: 50, first_pixel: {pixel_of(400)}, last_pixel: {pixel_of(600)}, every: 8}}"
CAMPAIGN = f"""
name: spectra
goal: Spectra of a vial, for review.
space:
  - {{name: scans, type: integer, bounds: [1, 3]}}
objectives:
  - {{name: a450, direction: maximize}}
budget: {{experiments: 2, batch_size: 1}}
planner: {{kind: random, seed: 0}}
hypotheses: none
lab:
  station: spectrometer_only
  max_concurrency: 1
  instruments:
    spectrometer: {{driver: ocean-optics}}
  protocol:
    - {{instrument: spectrometer, action: set_lamp, args: {{"on": false}}}}
    - {{instrument: spectrometer, action: acquire_spectrum, args: {WINDOW}, save: {{spectrum: dark}}}}
    - {{instrument: spectrometer, action: set_lamp, args: {{"on": true}}}}
    - {{instrument: spectrometer, action: acquire_spectrum, args: {WINDOW}, save: {{spectrum: reference}}}}
    - {{instrument: spectrometer, action: acquire_spectrum, args: {WINDOW}, save: {{spectrum: sample}}}}
    - {{instrument: spectrometer, action: set_lamp, args: {{"on": false}}}}
    - analyse: mean_absorbance
      input: {{sample: sample, reference: reference, dark: dark}}
      args: {{low_nm: 430, high_nm: 470}}
      save: {{absorbance: a}}
  outcomes: {{a450: "a"}}
  twins: {{time_scale: 1000, seed: 3}}
"""


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    folder = tmp_path_factory.mktemp("arrays")
    db = open_database(f"sqlite:///{folder / 'a.db'}")
    campaign_id, _ = open_campaign(db, parse_spec(CAMPAIGN, base_dir=folder), CAMPAIGN)
    runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id)
    assert run_loop(ctx, InlineStages(ctx)) == "budget of 2 experiments spent"
    yield db
    db.dispose()


def test_each_experiments_arrays_are_listed_with_their_artifacts_hash(campaign: Database) -> None:
    frame = stored_arrays(campaign, "spectra")
    assert list(frame["seq"]) == [1, 1, 1, 2, 2, 2]
    assert list(frame["name"]) == ["dark", "reference", "sample"] * 2
    assert set(frame["instrument"]) == {"spectrometer"} and set(frame["action"]) == {"acquire_spectrum"}
    assert set(frame["x_axis"]) == {"wavelength [nm]"} and set(frame["y_axis"]) == {"intensity [counts]"}
    with campaign.session() as session:
        stored = {a.sha256: a.content for a in session.scalars(select(Artifact))}
    for row in frame.itertuples(index=False):
        # The name is the hash of the stored bytes, and the array they hold has the points the event says.
        assert hashlib.sha256(stored[row.sha256]).hexdigest() == row.sha256
        array = ArrayData.from_dict(json.loads(stored[row.sha256]))
        assert array.points == row.points and 399 < array.x[0] < 401


def test_an_experiments_arrays_load_by_reference_and_every_analysis_replays(campaign: Database) -> None:
    arrays = experiment_arrays(campaign, "spectra", 2)
    assert set(arrays) == {"dark", "reference", "sample"}
    assert all(isinstance(a, ArrayData) for a in arrays.values())
    first = stored_arrays(campaign, "spectra").iloc[0]
    reference = {"kind": "array", "artifact": first["sha256"], "points": int(first["points"])}
    assert load_array(campaign.artifacts, reference) == experiment_arrays(campaign, "spectra", 1)["dark"]
    assert "wavelength" not in summary(arrays["reference"]) and "largest at" in summary(arrays["reference"])
    with pytest.raises(ArtifactError, match="not a stored array"):
        load_array(campaign.artifacts, {"kind": "array"})
    with pytest.raises(ArtifactError, match="its reference says 7"):
        load_array(campaign.artifacts, {**reference, "points": 7})

    again = reanalyse(campaign, "spectra")
    assert list(again["status"]) == ["match", "match"]
    assert list(again["seq"]) == [1, 2] and set(again["analyse"]) == {"mean_absorbance"}
    assert all(r == c for r, c in zip(again["recorded"], again["recomputed"], strict=True))


def test_a_changed_array_is_named_not_reanalysed(tmp_path: Path, campaign: Database) -> None:
    copy = tmp_path / "changed.db"
    with campaign.engine.connect() as connection:
        connection.exec_driver_sql(f"VACUUM INTO '{copy}'")
    db = open_database(f"sqlite:///{copy}")
    sha = stored_arrays(db, "spectra").iloc[2]["sha256"]  # experiment 1's sample spectrum
    with db.session() as session:
        session.execute(update(Artifact).where(Artifact.sha256 == sha).values(content=b'{"kind": "array"}'))
    again = reanalyse(db, "spectra")
    assert list(again["status"]) == ["error", "match"]
    assert sha[:12] in again.iloc[0]["note"]
    # `peirce replay` says so and exits 1; on the untouched record every analysis matches.
    changed = invoke("replay", "spectra", "--db", f"sqlite:///{copy}", cwd=tmp_path)
    assert changed.returncode == 1
    assert "1 of 2 analysis steps computed again from the stored arrays give the same numbers" in changed.stdout
    assert "experiment #1 step 6 (mean_absorbance): error" in changed.stdout
    db.dispose()
    fine = invoke("replay", "spectra", "--db", str(campaign.url), "--json", cwd=tmp_path)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    payload = json.loads(fine.stdout)
    assert payload["all_match"] and [row["status"] for row in payload["analyses"]] == ["match", "match"]


def test_the_report_lists_and_plots_the_arrays_and_the_reanalysis(campaign: Database, tmp_path: Path) -> None:
    page = write_report(campaign, "spectra", tmp_path / "r.html", replay=False).read_text(encoding="utf-8")
    section = page[page.index('<section id="arrays">') : page.index('<section id="replay">')]
    assert "6 array(s) stored as content-hashed artifacts of 2 experiment(s)" in section
    for sha in stored_arrays(campaign, "spectra")["sha256"]:
        assert sha[:12] + "…" in section and sha not in section
    assert section.count("data:image/png;base64,") == 1
    assert "nm; intensity" in section and "largest at" in section
    assert "2 of 2 analysis step(s) give again the numbers the campaign used" in section


def test_an_archive_carries_the_arrays_and_refuses_to_lose_them(campaign: Database, tmp_path: Path) -> None:
    archive = export_archive(campaign, "spectra", tmp_path / "spectra.zip")
    assert len(read_archive(archive).artifacts) >= 6
    target = open_database(f"sqlite:///{tmp_path / 'target.db'}")
    import_archive(target, archive)
    assert list(reanalyse(target, "spectra")["status"]) == ["match", "match"]
    target.dispose()
    # An archive that lost an array its events refer to is refused, naming it.
    sha = stored_arrays(campaign, "spectra").iloc[0]["sha256"]
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(broken, "w") as out:
        for item in source.infolist():
            if item.filename != f"artifacts/{sha}.json":
                out.writestr(item, source.read(item.filename))
    with pytest.raises(ArchiveError, match=f"refers to array {sha}|artifacts/{sha}"):
        read_archive(broken)


def test_events_keep_references_not_arrays(campaign: Database) -> None:
    with campaign.session() as session:
        done = session.scalars(select(Event).where(Event.kind == "action-done")).all()
    spectra = [e.detail["result"]["spectrum"] for e in done if "spectrum" in (e.detail or {}).get("result", {})]
    assert len(spectra) == 6 and all("y" not in s and len(s["artifact"]) == 64 for s in spectra)


@pytest.mark.slow
def test_the_review_notebook_loads_and_plots_the_arrays(
    campaign: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    from tests.orchestrator.review.test_review import NOTEBOOK, _python3_kernel

    _python3_kernel()
    copy = tmp_path / "review.ipynb"
    copy.write_bytes(NOTEBOOK.read_bytes())
    monkeypatch.setenv("PEIRCE_DB_URL", str(campaign.url))
    monkeypatch.setenv("PEIRCE_CAMPAIGN", "spectra")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(copy, as_version=4)
    NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    cell = next(c for c in notebook.cells if c.cell_type == "code" and "stored.stored_arrays(" in c.source)
    assert not [o for o in cell.outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in cell.outputs) == 1
    shown = "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)
    assert "acquire_spectrum" in shown and "match" in shown
