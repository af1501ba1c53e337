"""A campaign recorded by the code before the house redesign (tests/data/legacy, made at commit 5c0311a) still
imports into a database of today's schema and still replays exactly, decision by decision.

Its records have the old shapes (the planner's state and the hypothesis-test selection merged in one mapping; a
test proposal naming its hypothesis only in its rationale), so this is the test of the readers of the old shape.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select, update

from orchestrator.campaign.spec import CampaignSpec, LookupLab
from orchestrator.errors import RecordError
from orchestrator.lab.build import build_lab
from orchestrator.records.decisions import AbductionState, DeductionState, PlannedProposal
from orchestrator.review.archive import ArchiveError, import_archive, members_digest, read_archive
from orchestrator.review.replay import replay_campaign
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Campaign, Decision, Event, Experiment, Hypothesis, PersonRequest
from orchestrator.store.records import find_campaign
from tests.conftest import REPO

LEGACY = REPO / "tests" / "data" / "legacy" / "legacy_arylation.zip"
NAME = "legacy_arylation"
TABLE = REPO / "simulators" / "data" / "direct_arylation" / "reactions.csv"
# Rows already in the target before the import, so the archive's ids and the ids here differ.
OTHER_HYPOTHESES = 5


def _target(folder: Path) -> Database:
    db = open_database(f"sqlite:///{folder / 'target.db'}")
    with db.session() as session:
        other = Campaign(name="other", spec={}, spec_text="", spec_hash="0" * 64)
        session.add(other)
        session.flush()
        session.add_all(
            Hypothesis(campaign_id=other.id, kind="effect", statement=f"h{k}", claim={}, source="person")
            for k in range(OTHER_HYPOTHESES)
        )
    return db


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Database:
    db = _target(tmp_path_factory.mktemp("legacy"))
    assert import_archive(db, LEGACY) == NAME
    return db


def _lab_here(db: Database) -> object:
    """The campaign's lab with the lookup table at the repository's copy (an archive carries no table)."""
    with db.session() as session:
        spec = CampaignSpec.model_validate(find_campaign(session, NAME).spec)
    assert isinstance(spec.lab, LookupLab)
    return build_lab(spec.model_copy(update={"lab": spec.lab.model_copy(update={"table": TABLE})}))


def test_the_legacy_archive_is_small_and_verifies() -> None:
    assert LEGACY.stat().st_size < 300_000
    archive = read_archive(LEGACY)
    assert archive.manifest.peirce_version is not None
    assert archive.counts()["decisions"] == 5 and archive.counts()["hypotheses"] == 4


def test_columns_and_tables_added_since_read_as_null_and_empty(imported: Database) -> None:
    """Written before migration 0007: no `experiments.original_parameters`, no `person_requests.json`."""
    with zipfile.ZipFile(LEGACY) as archive:
        assert "person_requests.json" not in archive.namelist()
        assert "original_parameters" not in json.loads(archive.read("experiments.json"))["columns"]
    assert read_archive(LEGACY).tables["person_requests"] == []
    with imported.session() as session:
        campaign = find_campaign(session, NAME)
        experiments = session.scalars(select(Experiment).where(Experiment.campaign_id == campaign.id)).all()
        assert len(experiments) == 15 and all(e.original_parameters is None for e in experiments)
        assert session.scalars(select(PersonRequest)).all() == []


def test_its_records_have_the_old_shapes_and_read_as_the_new_types(imported: Database) -> None:
    with imported.session() as session:
        campaign = find_campaign(session, NAME)
        decisions = session.scalars(
            select(Decision).where(Decision.campaign_id == campaign.id).order_by(Decision.id)
        ).all()
        stages = [d.stage for d in decisions]
        assert stages == ["deduce", "abduce", "deduce", "abduce", "deduce"]
        deductions = [d for d in decisions if d.stage == "deduce"]
        # The old merged mapping: the planner's own keys beside `hypothesis_tests`.
        assert all("planner" not in d.model_state and "device" in d.model_state for d in deductions)
        states = [DeductionState.model_validate(d.model_state) for d in deductions]
        assert [s.tests for s in states] == [0, 2, 2]
        assert all(s.planner is not None and "hypothesis_tests" not in s.planner for s in states)
        assert states[1].hypothesis_tests is not None and states[1].hypothesis_tests.inputs is not None
        abductions = [AbductionState.model_validate(d.model_state) for d in decisions if d.stage == "abduce"]
        assert all(a.inputs is not None for a in abductions)
        # No `tests_hypothesis` field in the stored proposals: the link is read from the rationale, and the import
        # gave the hypotheses new ids (5 rows were there before), so the link names the rows here.
        stored = [p for d in deductions for p in d.proposals]
        assert not any("tests_hypothesis" in p for p in stored)
        links = [[PlannedProposal.model_validate(p).tests_hypothesis for p in d.proposals] for d in deductions]
        assert links == [[None] * 5, [7, 6, None, None, None], [8, 9, None, None, None]]
        rows = set(session.scalars(select(Hypothesis.id).where(Hypothesis.campaign_id == campaign.id)))
        assert rows == {6, 7, 8, 9}
        imported_event = session.scalars(select(Event).where(Event.kind == "imported")).one()
        assert imported_event.detail["ids"]["hypothesis"] == {"1": 6, "2": 7, "3": 8, "4": 9}
        assert imported_event.detail["unverified_decisions"] == []


def test_every_decision_replays_from_its_old_record(imported: Database) -> None:
    """Every decision's inputs are rebuilt from the old shapes (data hashes, warm starts, the tests' inputs) and
    derived again. The archive was recorded on another host: where this one's floating point differs in the last
    digits (another CPU's vector kernels in the GP's linear algebra), a model-based choice may differ, and replay
    must say so as such, never as a record it could not read. The first batch (no model yet) and the abductions
    (the ledger's own arithmetic) replay exactly on any host."""
    report = replay_campaign(imported, NAME, lab=_lab_here(imported))
    rows = report.rows
    assert [row.stage for row in rows] == ["deduce", "abduce", "deduce", "abduce", "deduce"], report.as_dicts()
    assert [(rows[i].status, rows[i].note) for i in (0, 1, 3)] == [
        ("match", "identical"),
        ("match", "2 claim(s) proposed; identical"),
        ("match", "2 claim(s) proposed; identical"),
    ], report.as_dicts()
    # What may differ from the recording host is named: this CPU's vector capability, which the old record lacks.
    assert report.version_differences["cpu_capability"][0] is None and report.version_differences["cpu_capability"][1]
    for row in (rows[2], rows[4]):
        # The hypothesis tests of the last two batches were chosen again from their recorded inputs, not copied.
        assert row.note.startswith("2 hypothesis test(s) chosen again") or row.note.startswith(
            "hypothesis tests differ: 2 re-derived, 2 recorded"
        ), row.note
        if row.status == "match":
            assert row.note == "2 hypothesis test(s) chosen again; identical"
        else:
            assert row.status == "mismatch"
            if row.max_difference is not None:  # the same points, predictions apart in the last digits
                assert row.max_difference < 1e-6 and "floating point" in row.note, row.note


def test_a_record_that_is_not_of_its_type_is_named_by_decision_and_field(tmp_path: Path) -> None:
    db = _target(tmp_path)
    import_archive(db, LEGACY)
    with db.session() as session:
        decision = session.scalars(select(Decision).where(Decision.stage == "deduce").order_by(Decision.id)).all()[1]
        broken = {
            **decision.model_state,
            "hypothesis_tests": {**decision.model_state["hypothesis_tests"], "tests": "two"},
        }
        session.execute(update(Decision).where(Decision.id == decision.id).values(model_state=broken))
        decision_id = decision.id
    with pytest.raises(RecordError, match=rf"^decision {decision_id}: model_state\.hypothesis_tests\.tests: "):
        replay_campaign(db, NAME, lab=_lab_here(db))


def test_an_archive_whose_test_names_a_hypothesis_it_lacks_is_refused(tmp_path: Path) -> None:
    """The structured link is a reference like any other: it must resolve inside the archive."""
    with zipfile.ZipFile(LEGACY) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    decisions = json.loads(members["decisions.json"])
    row = next(
        r for r in decisions["rows"] if r["stage"] == "deduce" and "tests hypothesis" in r["proposals"][0]["rationale"]
    )
    row["proposals"][0]["tests_hypothesis"] = 999
    members["decisions.json"] = json.dumps(decisions).encode()
    manifest = json.loads(members["manifest.json"])
    for name, raw in members.items():
        if name != "manifest.json":
            manifest["members"][name] = {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}
    manifest["members_sha256"] = members_digest(entry["sha256"] for entry in manifest["members"].values())
    members["manifest.json"] = json.dumps(manifest).encode()
    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(changed, "w") as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    message = (
        rf"^archive: decisions\.json: decision {row['id']} names tested hypothesis 999, which is not in the archive$"
    )
    with pytest.raises(ArchiveError, match=message):
        read_archive(changed)
