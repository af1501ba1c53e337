"""The acts of people answering proposals, called as the Python API and Prefect's form call them: an edit keeps the
planner's values and predicts again, an edit past any limit (bounds, constraints, safety rules, a station
instrument's limit) is refused with nothing written, two people approving the same batch at once get one winner,
and a rejected experiment on a station never reaches an instrument."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.campaign import runs
from orchestrator.campaign.spec import parse_spec
from orchestrator.cycle.context import CampaignContext, load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.errors import PeirceError, SpecError
from orchestrator.people import acts
from orchestrator.people.requests import AlreadyAnswered
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Event, Experiment, PersonRequest
from orchestrator.store.queries import results
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec
from tests.instruments.station_specs import station_yaml

BAYES = {"kind": "bayesian", "seed": 3, "num_restarts": 2, "raw_samples": 64, "mc_samples": 64, "min_observations": 4}


def _open(db_url: str, data: dict[str, Any] | str) -> tuple[Database, int]:
    db = open_database(db_url)
    if isinstance(data, str):
        spec, text = parse_spec(data, base_dir=EXAMPLES_DIR), data
    else:
        spec, text = to_spec(data, EXAMPLES_DIR)
    campaign_id, _ = open_campaign(db, spec, text)
    return db, campaign_id


def _run(db: Database, campaign_id: int) -> str:
    """Run the campaign (inline) until it pauses or ends, as `peirce run` / `peirce resume` would."""
    lease = runs.claim(db, campaign_id)
    ctx: CampaignContext = load_context(db, campaign_id, runner=lease.runner)
    return run_loop(ctx, InlineStages(ctx))


def _dump(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    connection = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    try:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {table: connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall() for table in tables}
    finally:
        connection.close()


def _experiment(db: Database, seq: int) -> Experiment:
    with db.session() as session:
        experiment = session.scalars(select(Experiment).where(Experiment.seq == seq)).one()
        session.expunge(experiment)
        return experiment


def test_an_edit_keeps_the_planners_values_and_predicts_again_at_the_persons_point(sqlite_url: str) -> None:
    data = hartmann_spec(budget={"experiments": 8, "batch_size": 4}, planner=BAYES, approval="batch")
    db, campaign_id = _open(sqlite_url, data)
    _run(db, campaign_id)
    acts.approve(db, "h6", acts.ALL, by="Ada")
    assert _run(db, campaign_id).startswith("waiting for people: 4 experiments wait for approval (#5, #6, #7, #8")
    planned = _experiment(db, 5)
    assert planned.predicted is not None  # the model planned this batch
    with db.session() as session:
        first = results(session, campaign_id)[0]

    # The person sends #5 to the point #1 measured: the model fitted on the results knows it well.
    report = acts.edit(db, "h6", 5, first.parameters, by="Grace", note="repeat #1")
    edited = _experiment(db, 5)
    assert edited.state == "approved"
    assert edited.original_parameters == planned.parameters
    assert edited.parameters == first.parameters
    assert edited.predicted is not None and edited.predicted != planned.predicted
    mean, std = edited.predicted["y"]["mean"], edited.predicted["y"]["std"]
    assert abs(mean - first.values["y"]) < 0.05
    assert std < planned.predicted["y"]["std"] / 3
    assert report.detail["predicted_before"] == planned.predicted
    with db.session() as session:
        event = session.scalars(select(Event).where(Event.kind == "edited")).one()
        request = session.scalars(select(PersonRequest).where(PersonRequest.experiment_id == edited.id)).one()
    assert event.detail is not None
    assert (event.detail["by"], event.detail["note"]) == ("Grace", "repeat #1")
    assert event.detail["original"] == planned.parameters and event.detail["parameters"] == first.parameters
    assert event.detail["predicted_before"] == planned.predicted and event.detail["predicted"] == edited.predicted
    assert (request.resolution, request.resolved_by) == ("edited", "Grace")


def test_an_edit_past_a_bound_a_constraint_or_a_forbidden_region_is_refused_and_writes_nothing(
    sqlite_url: str,
) -> None:
    data = hartmann_spec(
        budget={"experiments": 2, "batch_size": 2},
        approval="batch",
        constraints=[{"coefficients": {"x1": 1, "x2": 1}, "operator": "<=", "rhs": 1.2}],
        safety={"forbidden_regions": [{"where": [{"parameter": "x3", "at_least": 0.9}], "reason": "it boils"}]},
    )
    db, campaign_id = _open(sqlite_url, data)
    _run(db, campaign_id)
    before = _dump(sqlite_url)
    refusals = {
        "x1: 1.5 is outside x1's bounds [0, 1]": {"x1": 1.5},
        "constraints[0]: the edited point breaks 1*x1 + 1*x2 <= 1.2 (it gives 1.6)": {"x1": 0.8, "x2": 0.8},
        "x3: the edited point lies in a forbidden region of the safety rules: x3 ≥ 0.9 (it boils)": {"x3": 0.95},
        "x7: 'x7' is not a parameter (parameters: x1, x2, x3, x4, x5, x6)": {"x7": 0.5},
        "x2: 'high' is not a number (x2 is continuous)": {"x2": "high"},
        "x2: 'True' is not a number (x2 is continuous)": {"x2": True},
    }
    for message, changes in refusals.items():
        with pytest.raises(SpecError) as refused:
            acts.edit(db, "h6", 1, changes, by="Ada")
        assert str(refused.value) == message
    assert _dump(sqlite_url) == before
    acts.edit(db, "h6", 1, {"x1": 0.4, "x2": 0.8, "x3": 0.5}, by="Ada")
    assert _experiment(db, 1).parameters | {"x1": 0.4, "x2": 0.8, "x3": 0.5} == _experiment(db, 1).parameters


def test_an_edit_past_a_station_instruments_limit_is_refused_before_anything_is_sent(sqlite_url: str) -> None:
    # The pump may dispense 3 mL at once but the vial takes 2.5 mL in one experiment: the space allows 3 mL, so the
    # planner could propose it, and a person must not be able to choose it either.
    text = station_yaml(name="bench", experiments=2, batch_size=2)
    text = text.replace("volume_ml: {max: 3.0, per_experiment: 3.0}", "volume_ml: {max: 3.0, per_experiment: 2.5}")
    text += "approval: batch\n"
    db, campaign_id = _open(sqlite_url, text)
    assert _run(db, campaign_id).startswith("waiting for people: 2 experiments wait for approval")
    before = _dump(sqlite_url)
    with pytest.raises(SpecError) as refused:
        acts.edit(db, "bench", 1, {"volume": "3.0"}, by="Ada")
    assert str(refused.value) == (
        "volume: lab.protocol[1] (pump.dispense) would be refused: dispense asks volume_ml = 3 after 0 in this "
        "experiment, above the limit pump.limits.volume_ml.per_experiment = 2.5"
    )
    with pytest.raises(SpecError) as refused:
        acts.edit(db, "bench", 1, {"volume": "2.6"}, by="Ada")
    assert str(refused.value).startswith("volume: 2.6 is not one of volume's values (0.5, 0.75, 1,")
    assert _dump(sqlite_url) == before
    report = acts.edit(db, "bench", 1, {"volume": "2.5", "stirring": 400}, by="Ada")
    assert report.detail["parameters"]["volume"] == 2.5 and report.detail["parameters"]["stirring"] == 400


def test_two_people_approving_the_same_batch_at_once_one_wins_and_the_other_is_told(db_url: str) -> None:
    data = hartmann_spec(budget={"experiments": 4, "batch_size": 4}, approval="batch")
    db, campaign_id = _open(db_url, data)
    _run(db, campaign_id)
    outcomes: dict[str, Any] = {}
    start = threading.Barrier(2)

    def person(name: str) -> None:
        own = open_database(db_url)  # each person's own connection, as from two terminals
        start.wait()
        try:
            outcomes[name] = acts.approve(own, "h6", acts.ALL, by=name).seqs
        except PeirceError as exc:
            outcomes[name] = exc
        finally:
            own.dispose()

    threads = [threading.Thread(target=person, args=(name,)) for name in ("Ada", "Grace")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [name for name, outcome in outcomes.items() if outcome == [1, 2, 3, 4]]
    assert len(winners) == 1, outcomes
    [loser] = [name for name in outcomes if name not in winners]
    told = outcomes[loser]
    assert isinstance(told, PeirceError) and told.exit_code == 2
    assert f"answered (approved) by {winners[0]}" in str(told)
    with db.session() as session:
        answers = session.execute(select(PersonRequest.resolution, PersonRequest.resolved_by)).all()
    assert answers == [("approved", winners[0])] * 4

    # The same experiment approved twice in a row: the second is refused, naming the first.
    with pytest.raises(AlreadyAnswered, match=f"experiment #2 was already answered \\(approved\\) by {winners[0]}"):
        acts.approve(db, "h6", [2], by=loser)


@pytest.mark.slow
def test_a_rejected_experiment_never_reaches_the_station(sqlite_url: str) -> None:
    text = station_yaml(name="bench", experiments=3, batch_size=2) + "approval: batch\n"
    db, campaign_id = _open(sqlite_url, text)
    assert _run(db, campaign_id).startswith("waiting for people: 2 experiments wait for approval (#1, #2;")
    acts.reject(db, "bench", 1, by="Ada", reason="the vial of #1 is cracked")
    acts.approve(db, "bench", [2], by="Ada")
    assert _run(db, campaign_id).startswith("waiting for people: 2 experiments wait for approval (#3, #4;")
    with db.session() as session:
        ids = dict(session.execute(select(Experiment.seq, Experiment.id)).all())
        started = session.execute(
            select(Event.entity_id, Event.detail).where(Event.kind == "action-started").order_by(Event.id)
        ).all()
        states = dict(session.execute(select(Experiment.seq, Experiment.state)).all())
    assert states == {1: "rejected", 2: "completed", 3: "planned", 4: "planned"}
    journal = [(entity_id, detail["instrument"], detail["action"]) for entity_id, detail in started]
    assert not [entry for entry in journal if entry[0] == ids[1]]  # nothing of #1 was ever sent
    assert (ids[2], "pump", "dispense") in journal
