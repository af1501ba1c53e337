"""People answering a campaign from the command line: `peirce pending`, `approve`, `reject`, `edit`, `allow`, and
`status` on a campaign that waits. In this process through the CLI's `main`, on real SQLite files.

Every bad answer is one line, exit status 2, and leaves every table of the database as it was."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.store.database import open_database
from orchestrator.store.models import Decision, Event, Experiment, PersonRequest
from tests.campaigns import hartmann_spec, write_spec
from tests.orchestrator.cli.helpers import Result, invoke, one_error


def _run(tmp_path: Path, data: dict[str, Any], *args: str) -> Result:
    write_spec(tmp_path / "c.yaml", data)
    return invoke("run", "c.yaml", "--db", _db(tmp_path), "--engine", "inline", *args, cwd=tmp_path)


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'c.db'}"


def _peirce(tmp_path: Path, *args: str) -> Result:
    return invoke(*args, "--db", _db(tmp_path), cwd=tmp_path)


def _dump(tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to compare the database before and after a refused command."""
    connection = sqlite3.connect(tmp_path / "c.db")
    try:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {table: connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall() for table in tables}
    finally:
        connection.close()


def _experiments(tmp_path: Path) -> dict[int, tuple[str, dict[str, Any]]]:
    db = open_database(_db(tmp_path), create=False)
    try:
        with db.session() as session:
            rows = session.execute(select(Experiment.seq, Experiment.state, Experiment.parameters)).all()
            return {seq: (state, parameters) for seq, state, parameters in rows}
    finally:
        db.dispose()


def _events(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    db = open_database(_db(tmp_path), create=False)
    try:
        with db.session() as session:
            return [e.detail or {} for e in session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id))]
    finally:
        db.dispose()


def test_a_batch_waits_for_approval_then_approve_all_and_resume_continue(tmp_path: Path) -> None:
    data = hartmann_spec(budget={"experiments": 4, "batch_size": 2}, approval="batch")
    ran = _run(tmp_path, data)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[:2] == [
        "h6 is waiting for people: 2 experiments wait for approval (#1, #2; `peirce pending h6`)",
        "continue with: peirce resume h6",
    ]
    status = _peirce(tmp_path, "status", "h6")
    assert "h6 (waiting)" in status.stdout
    assert "  waiting: 2 experiments wait for approval (#1, #2; `peirce pending h6`); then: peirce resume h6" in (
        status.stdout.splitlines()
    )
    assert "stop reason" not in status.stdout

    before = _dump(tmp_path)
    shown = _peirce(tmp_path, "pending", "h6")
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert lines[0] == "h6 (waiting): 2 experiments wait for approval"
    assert lines[1].startswith("  #1 waits for approval since ")
    assert lines[2].startswith("      parameters: x1=")
    assert lines[3] == "      why: approval: batch (every batch waits for a person)"
    assert lines[-1].startswith("  answer: peirce approve h6 SEQ… --by NAME (or --all)")
    listed = json.loads(_peirce(tmp_path, "pending", "--json").stdout)
    assert [(i["campaign"], i["kind"], i["seq"], i["state"]) for i in listed] == [
        ("h6", "approval", 1, "planned"),
        ("h6", "approval", 2, "planned"),
    ]
    assert _dump(tmp_path) == before  # `pending` writes nothing

    approved = _peirce(tmp_path, "approve", "h6", "--all", "--by", "Ada", "--note", "looks safe")
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.splitlines() == ["approved #1, #2 of h6 (by Ada)", "continue with: peirce resume h6"]
    again = _peirce(tmp_path, "approve", "h6", "1", "--by", "Grace")
    one_error(again, "approval request for experiment #1 was already answered (approved) by Ada")
    assert "waiting: nothing waits for people any more; continue with: peirce resume h6" in (
        _peirce(tmp_path, "status", "h6").stdout
    )

    resumed = _peirce(tmp_path, "resume", "h6", "--engine", "inline")
    assert resumed.returncode == 0, resumed.stderr
    assert "h6 is waiting for people: 2 experiments wait for approval (#3, #4; `peirce pending h6`)" in resumed.stdout
    states = {seq: state for seq, (state, _) in _experiments(tmp_path).items()}
    assert states == {1: "completed", 2: "completed", 3: "planned", 4: "planned"}
    approvals = [e for e in _events(tmp_path, "state") if e.get("by") == "Ada"]
    assert [(e["seq"], e["note"], e["reasons"]) for e in approvals] == [
        (1, "looks safe", ["approval: batch (every batch waits for a person)"]),
        (2, "looks safe", ["approval: batch (every batch waits for a person)"]),
    ]

    assert _peirce(tmp_path, "approve", "h6", "3", "4", "--by", "Grace").returncode == 0
    finished = _peirce(tmp_path, "resume", "h6", "--engine", "inline")
    assert "h6 finished: budget of 4 experiments spent" in finished.stdout
    assert _peirce(tmp_path, "pending").stdout.startswith("nothing waits for people in any campaign of sqlite:///")


def test_a_rule_stops_the_proposal_that_crosses_it_and_lets_the_others_run(tmp_path: Path) -> None:
    # Random planner, seed 3: of the first batch of four, #1 proposes x1 = 0.916; the other three stay below 0.8.
    data = hartmann_spec(budget={"experiments": 8, "batch_size": 4}, approval={"rules": [{"parameter": "x1 > 0.8"}]})
    ran = _run(tmp_path, data)
    assert ran.returncode == 0, ran.stderr
    assert "h6 is waiting for people: 1 experiment waits for approval (#1; `peirce pending h6`)" in ran.stdout
    experiments = _experiments(tmp_path)
    assert {seq: state for seq, (state, _) in experiments.items()} == {
        1: "planned",
        2: "completed",
        3: "completed",
        4: "completed",
    }
    assert experiments[1][1]["x1"] > 0.8
    assert all(parameters["x1"] <= 0.8 for state, parameters in experiments.values() if state == "completed")
    shown = _peirce(tmp_path, "pending", "h6").stdout
    assert f"      why: approval.rules[0]: x1 > 0.8 (proposed x1 = {experiments[1][1]['x1']:.6g})" in shown
    approvals = [e for e in _events(tmp_path, "state") if e.get("by") == "policy:rules"]
    assert [e["seq"] for e in approvals] == [2, 3, 4]


def test_rejected_never_runs_and_an_edit_approves_the_persons_values(tmp_path: Path) -> None:
    data = hartmann_spec(budget={"experiments": 3, "batch_size": 2}, approval="batch")
    assert _run(tmp_path, data).returncode == 0
    proposed = _experiments(tmp_path)[2][1]
    rejected = _peirce(tmp_path, "reject", "h6", "1", "--by", "Ada", "--reason", "x6 that high fouls the column")
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.splitlines() == [
        "rejected #1 of h6 (by Ada): it will not be run, and its point is not proposed again "
        "(`peirce allow h6 1` lifts that)",
        "continue with: peirce resume h6",
    ]
    edited = _peirce(tmp_path, "edit", "h6", "2", "x1=0.25", "x2=0.5", "--by", "Grace", "--note", "nearer the optimum")
    assert edited.returncode == 0, edited.stderr
    assert edited.stdout.splitlines()[:2] == [
        f"edited #2 of h6 (by Grace) and approved it: x1 {proposed['x1']:.6g} → 0.25, x2 {proposed['x2']:.6g} → 0.5",
        "  no prediction for the edited point: the random planner predicts nothing",
    ]
    assert _peirce(tmp_path, "resume", "h6", "--engine", "inline").returncode == 0
    experiments = _experiments(tmp_path)
    assert experiments[1][0] == "rejected"
    assert experiments[2] == ("completed", {**proposed, "x1": 0.25, "x2": 0.5})
    db = open_database(_db(tmp_path), create=False)
    with db.session() as session:
        two = session.scalars(select(Experiment).where(Experiment.seq == 2)).one()
        assert two.original_parameters == proposed
        answers = session.execute(
            select(PersonRequest.resolution, PersonRequest.resolved_by, PersonRequest.note).order_by(PersonRequest.id)
        ).all()
    db.dispose()
    assert answers[:2] == [
        ("rejected", "Ada", "x6 that high fouls the column"),
        ("edited", "Grace", "nearer the optimum"),
    ]
    [edit_event] = _events(tmp_path, "edited")
    assert edit_event["original"] == proposed and edit_event["parameters"] == experiments[2][1]
    assert (edit_event["by"], edit_event["note"]) == ("Grace", "nearer the optimum")
    # The rejection costs no budget: of three, one is spent and two are left, so the next batch is a full one.
    assert {seq: state for seq, (state, _) in experiments.items()} == {
        1: "rejected",
        2: "completed",
        3: "planned",
        4: "planned",
    }

    allowed = _peirce(tmp_path, "allow", "h6", "1", "--by", "Ada")
    assert allowed.stdout.strip() == "allowed the point of rejected #1 of h6 again (by Ada): planners may propose it"
    one_error(_peirce(tmp_path, "allow", "h6", "1", "--by", "Grace"), "experiment #1 was already allowed again by Ada")


@pytest.fixture(scope="module")
def waiting_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A campaign whose experiment #1 waits (it crosses the rule) and whose #2, #3 and #4 ran; each test copies it."""
    folder = tmp_path_factory.mktemp("waiting")
    data = hartmann_spec(budget={"experiments": 8, "batch_size": 4}, approval={"rules": [{"parameter": "x1 > 0.8"}]})
    assert _run(folder, data).returncode == 0
    return folder / "c.db"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("approve", "h6", "99", "--by", "Ada"), "error: SEQ: no experiment #99 in campaign 'h6'"),
        (("approve", "h6", "2", "--by", "Ada"), "error: SEQ: experiment #2 is completed, not waiting for approval"),
        (("approve", "h6", "1", "--by", "  "), "error: --by: name the person acting"),
        (("approve", "h6", "1"), "error: --by: name the person acting"),
        (("approve", "h6", "--by", "Ada"), "error: SEQ: name the experiments to approve, or give --all"),
        (("approve", "h6", "1", "--all", "--by", "Ada"), "error: SEQ: give the experiments to approve or --all"),
        (("approve", "h7", "--all", "--by", "Ada"), "error: CAMPAIGN: no campaign 'h7' (campaigns here: h6)"),
        (("approve", "h6", "one", "--by", "Ada"), "peirce approve: Invalid value for '[SEQ]...'"),
        (("reject", "h6", "1", "--by", "Ada"), "error: --reason: say why the experiment is rejected"),
        (("reject", "h6", "1", "--by", "Ada", "--reason", " "), "error: --reason: say why the experiment is rejected"),
        (("reject", "h6", "3", "--by", "Ada", "--reason", "no"), "error: SEQ: experiment #3 is completed, not waiting"),
        (("edit", "h6", "1", "x9=0.5", "--by", "Ada"), "error: x9: 'x9' is not a parameter (parameters: x1, x2, x3,"),
        (("edit", "h6", "1", "x1=warm", "--by", "Ada"), "error: x1: 'warm' is not a number (x1 is continuous)"),
        (("edit", "h6", "1", "x1=1.5", "--by", "Ada"), "error: x1: 1.5 is outside x1's bounds [0, 1]"),
        (("edit", "h6", "1", "x1=nan", "--by", "Ada"), "error: x1: 'nan' is not a finite number"),
        (("edit", "h6", "1", "x1", "--by", "Ada"), "error: NAME=VALUE: 'x1' is not name=value"),
        (("edit", "h6", "1", "--by", "Ada"), "error: name=value: give at least one parameter to change"),
        (("edit", "h6", "1", "x1=0.5", "x1=0.6", "--by", "Ada"), "error: x1: given twice"),
        (("edit", "h6", "1", "x1=0.5", "--by", ""), "error: --by: name the person acting"),
        (("edit", "h6", "2", "x1=0.5", "--by", "Ada"), "error: SEQ: experiment #2 is completed, not waiting"),
        (("allow", "h6", "1", "--by", "Ada"), "error: SEQ: experiment #1 is planned; only a rejected experiment is"),
    ],
)
def test_a_bad_answer_is_one_line_and_changes_nothing(
    waiting_campaign: Path, tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    shutil.copy(waiting_campaign, tmp_path / "c.db")
    before = _dump(tmp_path)
    refused = _peirce(tmp_path, *args)
    assert refused.returncode == 2, refused
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert expected in refused.stderr
    assert _dump(tmp_path) == before


def test_pending_reads_only_and_never_makes_a_database(tmp_path: Path) -> None:
    missing = invoke("pending", "--db", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert missing.returncode == 2
    assert not (tmp_path / "none.db").exists()
    data = hartmann_spec(budget={"experiments": 2, "batch_size": 2})
    assert _run(tmp_path, data).returncode == 0
    before = _dump(tmp_path)
    assert _peirce(tmp_path, "pending", "h6").stdout.strip() == "nothing waits for people in campaign 'h6'"
    one_error(_peirce(tmp_path, "pending", "h7"), "CAMPAIGN: no campaign 'h7'")
    assert _dump(tmp_path) == before


def test_a_rejected_point_of_a_lookup_table_is_never_proposed_again_and_replay_still_matches(tmp_path: Path) -> None:
    # Five rows; one is hot, and the rule puts it in front of a person, who rejects it. The budget is the four
    # others: the campaign must spend it on them alone, and a replay must derive every decision again.
    (tmp_path / "screen.csv").write_text(
        "catalyst,temperature,yield\nA,60,10\nA,80,20\nB,60,30\nB,80,40\nC,100,90\n", encoding="utf-8"
    )
    data = {
        "name": "screen",
        "space": [
            {"name": "catalyst", "type": "categorical", "levels": ["A", "B", "C"]},
            {"name": "temperature", "type": "discrete", "values": [60, 80, 100]},
        ],
        "objectives": [{"name": "yield", "direction": "maximize"}],
        "budget": {"experiments": 4, "batch_size": 2},
        "planner": {"kind": "bayesian", "seed": 1, "num_restarts": 2, "raw_samples": 32, "mc_samples": 32},
        "lab": {"simulator": "lookup", "table": "screen.csv"},
        "approval": {"rules": [{"parameter": "temperature > 90"}]},
    }
    ran = _run(tmp_path, data)
    assert ran.returncode == 0, ran.stderr
    hot = {"catalyst": "C", "temperature": 100.0}
    waiting = [seq for seq, (state, parameters) in _experiments(tmp_path).items() if state == "planned"]
    assert len(waiting) == 1 and _experiments(tmp_path)[waiting[0]][1] == hot, _experiments(tmp_path)
    rejected = _peirce(tmp_path, "reject", "screen", str(waiting[0]), "--by", "Ada", "--reason", "above the bp")
    assert rejected.returncode == 0, rejected.stderr
    resumed = _peirce(tmp_path, "resume", "screen", "--engine", "inline")
    assert resumed.returncode == 0, resumed.stderr
    assert "screen finished: budget of 4 experiments spent" in resumed.stdout
    experiments = _experiments(tmp_path)
    ran_points = sorted((p["catalyst"], p["temperature"]) for state, p in experiments.values() if state != "rejected")
    assert ran_points == [("A", 60.0), ("A", 80.0), ("B", 60.0), ("B", 80.0)]
    assert [p for state, p in experiments.values() if p == hot] == [hot]  # proposed once, rejected, never again

    db = open_database(_db(tmp_path), create=False)
    with db.session() as session:
        rejected_id = session.scalar(select(Experiment.id).where(Experiment.state == "rejected"))
        later = session.scalars(select(Decision).where(Decision.stage == "deduce").order_by(Decision.id)).all()[1:]
        assert later and all(rejected_id in d.pending_ids for d in later)
    db.dispose()
    replay = _peirce(tmp_path, "replay", "screen", "--json")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    report = json.loads(replay.stdout)
    assert report["all_match"], report["rows"]
