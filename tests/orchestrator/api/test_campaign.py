"""The Python API (`import peirce`) on real SQLite files: whole cycles of ask and tell that keep the records the
command line keeps, asking and telling again, bad tables refused with nothing written, the budget, the approval
policy, and a campaign that another process runs."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

import orchestrator
import peirce
from orchestrator.people.acts import approve
from orchestrator.people.requests import open_requests
from orchestrator.store.database import open_database
from orchestrator.store.models import (
    Campaign,
    CampaignStatus,
    Decision,
    Event,
    Experiment,
    ExperimentState,
    Measurement,
    PersonRequest,
    RequestKind,
)
from tests.campaigns import hartmann_spec, write_spec
from tests.orchestrator.api.helpers import bowl_spec, bowl_yaml, dump, measured
from tests.orchestrator.cli.helpers import PEIRCE, invoke
from tests.orchestrator.lab.python_labs import bowl
from tests.orchestrator.people.test_notify import Hooks

PERSON = "Ada Lovelace"


def test_peirce_is_imported_from_any_folder(tmp_path: Path) -> None:
    code = "import peirce; print(peirce.__version__, peirce.Campaign.__module__, peirce.SpecError.__module__)"
    shown = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [orchestrator.__version__, "orchestrator.api.campaign", "orchestrator.errors"]


# --- whole cycles -------------------------------------------------------------------------------------------------


def _drive_by_the_cli(tmp_path: Path, url: str) -> None:
    """The same campaign by the command line: `peirce run` hands out the batch and pauses, each result is told with
    `peirce tell`, `peirce resume` induces the cycle and hands out the next batch."""
    spec = tmp_path / "bowl.yaml"
    spec.write_text(bowl_yaml(), encoding="utf-8")
    ran = invoke("run", str(spec), "--db", url, "--engine", "inline", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    for _ in range(3):
        db = open_database(url, read_only=True)
        with db.session() as session:
            waiting = session.scalars(
                select(Experiment).where(Experiment.state == ExperimentState.RUNNING).order_by(Experiment.seq)
            ).all()
            told = [(e.seq, bowl(e.parameters["x1"], e.parameters["x2"])) for e in waiting]
        db.dispose()
        assert len(told) == 3
        for seq, value in told:
            entered = invoke("tell", "bowl", str(seq), f"y={value!r}", "--by", PERSON, "--db", url, cwd=tmp_path)
            assert entered.returncode == 0, entered.stderr
        resumed = invoke("resume", "bowl", "--db", url, "--engine", "inline", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr


def _records(url: str) -> dict[str, Any]:
    """What a campaign's records say, without ids, times, runners or where the results came from."""
    db = open_database(url, read_only=True)
    try:
        with db.session() as session:
            seqs = dict(session.execute(select(Experiment.id, Experiment.seq)).all())
            events = session.scalars(select(Event).where(Event.entity == "experiment").order_by(Event.id)).all()
            by_experiment: dict[int, list[tuple[Any, ...]]] = {}
            for event in events:
                detail = {k: v for k, v in (event.detail or {}).items() if k != "source"}
                step = (event.kind, event.from_state, event.to_state, detail)
                by_experiment.setdefault(seqs[event.entity_id], []).append(step)
            return {
                "decisions": [
                    (d.stage, d.planner, d.seed, d.data_hash, d.proposals)
                    for d in session.scalars(select(Decision).order_by(Decision.id))
                ],
                "experiments": [
                    (e.seq, e.parameters, e.state, e.attempts, e.idempotency_key)
                    for e in session.scalars(select(Experiment).order_by(Experiment.seq))
                ],
                "measurements": sorted(
                    (seqs[m.experiment_id], m.name, m.value, m.unit, m.attempt)
                    for m in session.scalars(select(Measurement))
                ),
                "requests": sorted(
                    (seqs[r.experiment_id], r.kind, r.detail["instructions"], r.resolved_by, r.resolution)
                    for r in session.scalars(select(PersonRequest))
                ),
                "experiment_events": by_experiment,
                "status": session.scalar(select(Campaign.status)),
                "reason": session.scalar(select(Campaign.stop_reason)),
            }
    finally:
        db.dispose()


def test_three_cycles_of_ask_and_tell_keep_the_records_the_command_line_keeps(tmp_path: Path) -> None:
    api_url, cli_url = f"sqlite:///{tmp_path / 'api.db'}", f"sqlite:///{tmp_path / 'cli.db'}"
    campaign = peirce.Campaign.create(bowl_yaml(), db=tmp_path / "api.db")
    assert campaign.status().status == CampaignStatus.CREATED
    for cycle in (1, 2, 3):
        batch = campaign.ask()
        seqs = [3 * cycle - 2, 3 * cycle - 1, 3 * cycle]
        assert list(batch["seq"]) == seqs and list(batch["cycle"]) == [cycle] * 3
        assert list(batch.columns) == [
            "seq", "cycle", "x1", "x2", "y_predicted_mean", "y_predicted_std", "rationale", "tests_hypothesis",
            "instructions",
        ]  # fmt: skip
        assert batch["instructions"][0] == f"Probe at ({batch['x1'][0]:g}, {batch['x2'][0]:g})"
        state = campaign.status()
        assert state.status == CampaignStatus.WAITING and state.waiting_for == {RequestKind.RESULT: seqs}
        report = campaign.tell(measured(batch), by=PERSON)
        assert (report.entered, report.unchanged, report.induced_cycle) == (seqs, [], cycle)
    assert report.stop_reason == "budget of 9 experiments spent"
    state = campaign.status()
    assert (state.status, state.spent, state.budget, state.cycles) == (CampaignStatus.COMPLETED, 9, 9, 3)

    # The results as measured, each under the name of the person who told them.
    frame = campaign.experiments()
    assert list(frame["y"]) == [bowl(x1, x2) for x1, x2 in zip(frame["x1"], frame["x2"], strict=True)]
    best = campaign.best()
    assert best.loc[0, "value"] == frame["y"].min() and best.loc[0, "seq"] == frame.loc[frame["y"].idxmin(), "seq"]
    assert best.loc[0, "unit"] == "mm" and campaign.hypotheses().empty  # `hypotheses: none`
    campaign.close()

    # The command line's path through the same spec (`peirce run`, `tell`, `resume`) keeps the same records.
    _drive_by_the_cli(tmp_path, cli_url)
    from_python, from_cli = _records(api_url), _records(cli_url)
    assert from_python == from_cli
    assert len(from_python["decisions"]) == 3 and len(from_python["measurements"]) == 9
    completed = [
        step for steps in from_python["experiment_events"].values() for step in steps if step[2] == "completed"
    ]
    assert len(completed) == 9 and all(step[3]["by"] == PERSON for step in completed)
    assert {r[3:] for r in from_python["requests"]} == {(PERSON, "entered")}
    db = open_database(api_url, read_only=True)
    with db.session() as session:
        completions = select(Event).where(Event.entity == "experiment", Event.to_state == "completed")
        sources = {e.detail["source"] for e in session.scalars(completions)}
    db.dispose()
    assert sources == {"python-api"}

    replayed = invoke("replay", "bowl", "--db", api_url, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "3 of 3 decisions re-derived exactly" in replayed.stdout
    written = invoke("report", "bowl", "--db", api_url, "--out", str(tmp_path / "bowl.html"), cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert "bowl" in (tmp_path / "bowl.html").read_text(encoding="utf-8")


def test_asking_again_before_telling_returns_the_same_batch_and_writes_nothing(tmp_path: Path) -> None:
    campaign = peirce.Campaign.create(bowl_spec(), db=tmp_path / "bowl.db")
    first = campaign.ask()
    before = dump(campaign.db)
    again = campaign.ask()
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, campaign.pending())
    assert dump(campaign.db) == before
    # Reopened elsewhere (another kernel), the same batch waits.
    with peirce.Campaign.open("bowl", db=f"sqlite:///{tmp_path / 'bowl.db'}") as reopened:
        pd.testing.assert_frame_equal(first, reopened.ask())
    assert dump(campaign.db) == before
    campaign.close()


def test_telling_the_same_results_again_changes_nothing(tmp_path: Path) -> None:
    campaign = peirce.Campaign.create(bowl_spec(), db=tmp_path / "bowl.db")
    batch = measured(campaign.ask())
    first = campaign.tell(batch, by=PERSON)
    assert first.entered == [1, 2, 3] and first.induced_cycle == 1
    before = dump(campaign.db)
    again = campaign.tell(batch, by=PERSON)
    assert (again.entered, again.unchanged, again.induced_cycle) == ([], [1, 2, 3], None)
    assert str(again) == "3 unchanged (#1, #2, #3)"
    assert dump(campaign.db) == before
    campaign.close()


def test_part_of_a_batch_told_leaves_the_cycle_open_and_what_could_not_be_run_is_abandoned(tmp_path: Path) -> None:
    campaign = peirce.Campaign.create(bowl_spec(), db=tmp_path / "bowl.db")
    batch = measured(campaign.ask())
    part = campaign.tell(batch.iloc[:2], by=PERSON)
    assert (part.entered, part.induced_cycle) == ([1, 2], None)
    assert list(campaign.ask()["seq"]) == [3]  # still waiting; nothing new planned
    assert campaign.status().waiting_for == {RequestKind.RESULT: [3]}
    rest = campaign.tell([{"seq": 3, "not_run": "the probe broke"}], by="Grace Hopper")
    assert (rest.not_run, rest.induced_cycle) == ([3], 1)
    states = campaign.experiments().set_index("seq")["state"].to_dict()
    assert states == {1: "completed", 2: "completed", 3: "abandoned"}
    # The abandoned experiment is not spent: the next batch still has the budget's room.
    assert list(campaign.ask()["seq"]) == [4, 5, 6]
    assert campaign.status().spent == 2
    campaign.close()


# --- bad tables -------------------------------------------------------------------------------------------------


def _bad(batch: pd.DataFrame, case: str) -> Any:
    table = measured(batch)
    if case == "unknown seq":
        table.loc[1, "seq"] = 99
    elif case == "unknown outcome":
        table["yeild"] = table["y"]
    elif case == "NaN":
        table.loc[2, "y"] = math.nan
    elif case == "not a number":
        table["y"] = table["y"].astype(object)
        table.loc[1, "y"] = "deep"
    elif case == "missing seq column":
        table = table.drop(columns=["seq"])
    elif case == "duplicated seq":
        table = pd.concat([table, table.iloc[[0]]], ignore_index=True)
    elif case == "a parameter changed":
        table.loc[1, "x1"] = table.loc[1, "x1"] + 0.1
    elif case == "a record without seq":
        return [{"y": 1.0}]
    return table


BAD_TABLES = {
    "unknown seq": "row 1: seq: no experiment #99 in campaign 'bowl'",
    "unknown outcome": "row 0: yeild: unknown outcome 'yeild' (outcomes: y)",
    "NaN": "row 2: y: nan is not a finite number",
    "not a number": "row 1: y: 'deep' is not a number",
    "missing seq column": "seq: the table has no `seq` column",
    "duplicated seq": "row 3: seq: experiment #1 is also entered at row 0",
    "a parameter changed": "row 1: x1: ",
    "a record without seq": "record 0: seq: no experiment number (`seq`) given",
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_a_bad_table_is_refused_with_one_line_naming_the_row_and_field_and_nothing_is_written(
    tmp_path: Path, case: str
) -> None:
    campaign = peirce.Campaign.create(bowl_spec(), db=tmp_path / "bowl.db")
    batch = campaign.ask()
    before = dump(campaign.db)
    with pytest.raises(peirce.SpecError) as refused:
        campaign.tell(_bad(batch, case), by=PERSON)
    message = str(refused.value)
    assert message.startswith(BAD_TABLES[case]) and "\n" not in message
    assert isinstance(refused.value, peirce.PeirceError) and refused.value.exit_code == 2
    assert dump(campaign.db) == before
    campaign.close()


def test_a_tell_must_name_the_person(tmp_path: Path) -> None:
    campaign = peirce.Campaign.create(bowl_spec(), db=tmp_path / "bowl.db")
    batch = measured(campaign.ask())
    before = dump(campaign.db)
    with pytest.raises(peirce.SpecError, match=r"^by: name the person acting"):
        campaign.tell(batch, by="  ")
    assert dump(campaign.db) == before
    campaign.close()


# --- the budget, n, approval ----------------------------------------------------------------------------------


def test_n_asks_for_more_in_the_open_cycle_within_the_budget(tmp_path: Path) -> None:
    campaign = peirce.Campaign.create(bowl_spec(budget={"experiments": 7, "batch_size": 3}), db=tmp_path / "b.db")
    assert list(campaign.ask(n=2)["seq"]) == [1, 2]  # n sizes a new batch
    assert list(campaign.ask(n=1)["seq"]) == [1, 2]  # n no more than what waits: nothing planned
    grown = campaign.ask(n=4)
    assert list(grown["seq"]) == [1, 2, 3, 4] and set(grown["cycle"]) == {1}
    assert grown["x1"].nunique() == 4  # planned anew, not the cycle's first draws again
    assert list(campaign.ask(n=50)["seq"]) == [1, 2, 3, 4, 5, 6, 7]  # cut to the budget
    with pytest.raises(peirce.SpecError, match=r"^n: 0: give a number of experiments"):
        campaign.ask(n=0)
    report = campaign.tell(measured(campaign.ask()), by=PERSON)
    assert report.stop_reason == "budget of 7 experiments spent"
    with pytest.warns(peirce.PeopleWaiting, match=r"'bowl' is completed \(budget of 7 experiments spent\)"):
        assert campaign.ask().empty
    campaign.close()
    replayed = invoke("replay", "bowl", "--db", f"sqlite:///{tmp_path / 'b.db'}", cwd=tmp_path)
    assert replayed.returncode == 0 and "3 of 3 decisions re-derived exactly" in replayed.stdout


def test_experiments_held_for_approval_are_not_handed_out_until_approved(tmp_path: Path) -> None:
    campaign = peirce.Campaign.create(bowl_spec(approval="batch"), db=tmp_path / "bowl.db")
    held = "not handed out: 3 experiments wait for approval (#1, #2, #3; `peirce pending bowl`)"
    with pytest.warns(peirce.PeopleWaiting, match=held.replace("(", r"\(").replace(")", r"\)")):
        assert campaign.ask().empty
    state = campaign.status()
    assert state.waiting_for == {RequestKind.APPROVAL: [1, 2, 3]} and state.by_state == {"planned": 3}
    assert approve(campaign.db, "bowl", "all", by="Grace Hopper").seqs == [1, 2, 3]  # as `peirce approve` does
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing held any more: no warning
        batch = campaign.ask()
    assert list(batch["seq"]) == [1, 2, 3]
    assert campaign.tell(measured(batch), by=PERSON).induced_cycle == 1
    campaign.close()


def test_the_campaigns_webhooks_hear_what_waits_and_the_end_as_from_the_loop(tmp_path: Path) -> None:
    hooks = Hooks()  # an HTTP server on loopback recording every notice
    try:
        data = bowl_spec(approval="batch", budget={"experiments": 3, "batch_size": 3})
        data["notify"] = [{"url": hooks.url("/hook"), "format": "json"}]
        campaign = peirce.Campaign.create(data, db=tmp_path / "bowl.db")
        with pytest.warns(peirce.PeopleWaiting):
            campaign.ask()
        with pytest.warns(peirce.PeopleWaiting):
            campaign.ask()  # the same batch still held: nobody told twice
        approve(campaign.db, "bowl", "all", by="Grace Hopper")
        campaign.tell(measured(campaign.ask()), by=PERSON)
        told = [(n["event"], [e["seq"] for e in n["experiments"]], n["status"]) for n in hooks.at("/hook")]
        assert told == [
            ("approval", [1, 2, 3], "waiting"),
            ("results", [1, 2, 3], "waiting"),
            ("finished", [], "completed"),
        ]
        campaign.close()
    finally:
        hooks.close()


def test_a_campaign_whose_lab_is_not_a_person_is_handed_to_the_caller(tmp_path: Path) -> None:
    # A simulator's campaign asked from Python: the notebook is its lab; `peirce resume` leaves the batch waiting.
    data = hartmann_spec(budget={"experiments": 6, "batch_size": 2})
    campaign = peirce.Campaign.create(data, db=tmp_path / "h6.db")
    batch = campaign.ask()
    assert list(batch["seq"]) == [1, 2] and "instructions" not in batch.columns
    with campaign.db.session() as session:
        details = [r.detail for r in open_requests(session, campaign.id)]
    assert details == [
        {"via": "python-api", "outcomes": {"y": ""}, "seq": 1},
        {"via": "python-api", "outcomes": {"y": ""}, "seq": 2},
    ]
    url = f"sqlite:///{tmp_path / 'h6.db'}"
    resumed = invoke("resume", "h6", "--db", url, "--engine", "inline", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "h6 is waiting for people: 2 experiments wait for results entered by hand (#1, #2" in resumed.stdout
    batch["y"] = [-0.5, -1.5]
    assert campaign.tell(batch, by=PERSON).best == {"y": {"value": -1.5, "seq": 2}}
    campaign.close()


# --- creating and opening -------------------------------------------------------------------------------------


def test_create_checks_the_spec_as_peirce_run_does_and_reopens_the_same_spec(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "bowl.yaml", bowl_spec())
    first = peirce.Campaign.create(path, db=tmp_path / "bowl.db")
    again = peirce.Campaign.create(str(path), db=f"sqlite:///{tmp_path / 'bowl.db'}")
    assert again.id == first.id
    with pytest.raises(peirce.CampaignConflict, match=r"^name: campaign 'bowl' already exists with a different spec"):
        peirce.Campaign.create(bowl_spec(goal="another"), db=tmp_path / "bowl.db")
    with pytest.raises(peirce.SpecError, match=r"^lab.manual.outcomes.z: 'z' is not an objective"):
        peirce.Campaign.create(bowl_spec(lab={"manual": {"outcomes": {"z": "?"}}}), db=tmp_path / "other.db")
    assert not (tmp_path / "other.db").exists()  # refused before the database was made
    with pytest.raises(peirce.CampaignNotFound, match=r"no campaign 'nope' \(campaigns here: bowl\)"):
        peirce.Campaign.open("nope", db=tmp_path / "bowl.db")
    first.close()
    again.close()


# --- two at once ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_api_is_refused_while_peirce_run_holds_the_campaign(tmp_path: Path) -> None:
    # `peirce run` waits in its process for approvals (ten minutes allowed), holding the lease all the while.
    spec = write_spec(tmp_path / "bowl.yaml", bowl_spec(approval={"policy": "batch", "timeout": "10m"}))
    url = f"sqlite:///{tmp_path / 'bowl.db'}"
    runner = subprocess.Popen(
        [PEIRCE, "run", str(spec), "--db", url, "--engine", "inline"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PEIRCE_DB_URL"},
    )
    try:
        campaign = _opened_once_waiting(url, runner)
        before = dump(campaign.db)
        refused = rf"^campaign 'bowl' is being run by [^ ]+:{runner.pid} \(`peirce run` or `peirce resume`\)"
        with pytest.raises(peirce.CampaignConflict, match=refused):
            campaign.ask()
        with pytest.raises(peirce.CampaignConflict, match=refused):
            campaign.tell([{"seq": 1, "y": 1.0}], by=PERSON)
        assert dump(campaign.db) == before
    finally:
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, err
    # Stopped, the runner gone: the API acts.
    assert campaign.status().status == CampaignStatus.STOPPED
    with pytest.warns(peirce.PeopleWaiting):
        campaign.ask()
    campaign.close()


def _opened_once_waiting(url: str, runner: subprocess.Popen[str]) -> peirce.Campaign:
    """The campaign, once the runner has planned its batch and waits for approval (its lease held)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert runner.poll() is None, runner.communicate()
        try:
            db = open_database(url, read_only=True)
        except peirce.PeirceError:
            db = None  # not made yet, or its schema not yet written
        if db is not None:
            try:
                with db.session() as session:
                    waiting = open_requests(session, 1) if session.get(Campaign, 1) else []
            finally:
                db.dispose()
            if waiting:
                return peirce.Campaign.open("bowl", db=url)
        time.sleep(0.2)
    raise AssertionError("the runner never planned its batch")
