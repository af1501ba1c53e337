"""Results a lab releases on a schedule (`lab.duration`): an experiment that takes days of lab time waits, running,
with its results held until they are due. `release_due` releases exactly those whose time has passed, under the
lab's name; a person who entered results first wins and the scheduled ones are dropped; and the runner waits in its
process (`wait_limit_s`) only when the first result is due within the lab's `wait`, never past the last one's time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.campaign import runs
from orchestrator.campaign.spec import CampaignSpec
from orchestrator.cycle.context import load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.people import scheduled
from orchestrator.people.requests import answer as real_answer
from orchestrator.people.results import ResultEntry, enter_results
from orchestrator.people.scheduled import release_due
from orchestrator.people.waiting import SCHEDULED, Waiting, wait_limit_s, waiting
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Event, Experiment, Measurement, PersonRequest, RequestKind, utcnow
from tests.campaigns import hartmann_spec, to_spec
from tests.orchestrator.lab.python_labs import bowl

LAB = "tests.orchestrator.lab.python_labs:measure"
DAY = 86400.0
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def timed_spec(**duration: Any) -> dict[str, Any]:
    """Two parameters, a bowl as the lab; each experiment takes x1 * 10 days of lab time (real time by default)."""
    data = hartmann_spec(
        space=[{"name": n, "type": "continuous", "bounds": [0, 1]} for n in ("x1", "x2")],
        budget={"experiments": 4, "batch_size": 4},
    )
    data["lab"] = {"python": LAB, "duration": {"length": "x1 * 10", "unit": "d", **duration}}
    return data


def paused_with_cultures(tmp_path: Path) -> tuple[Database, int, CampaignSpec, datetime, datetime]:
    """A campaign run until it pauses with its four experiments running in the lab: (db, campaign id, spec, and the
    times just before and after the run)."""
    db = open_database(f"sqlite:///{tmp_path / 'scheduled.db'}")
    spec, text = to_spec(timed_spec())
    campaign_id, _ = open_campaign(db, spec, text)
    lease = runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id)
    ctx.runner = lease.runner
    before = utcnow()
    reason = run_loop(ctx, InlineStages(ctx))
    after = utcnow()
    assert "4 experiments run in the lab until" in reason
    return db, campaign_id, spec, before, after


def states(db: Database) -> dict[int, str]:
    with db.session() as session:
        return {e.seq: e.state for e in session.scalars(select(Experiment))}


def parameters(db: Database) -> dict[int, dict[str, Any]]:
    with db.session() as session:
        return {e.seq: dict(e.parameters) for e in session.scalars(select(Experiment))}


def test_only_results_whose_time_has_passed_are_released(tmp_path: Path) -> None:
    db, campaign_id, spec, before, after = paused_with_cultures(tmp_path)
    assert states(db) == {1: "running", 2: "running", 3: "running", 4: "running"}
    points = parameters(db)
    # Each is due x1 * 10 days after it was handed to the lab: sort them and release at a time between two of them.
    by_time = sorted(points, key=lambda seq: points[seq]["x1"])
    days = [points[seq]["x1"] * 10 for seq in by_time]
    assert min(b - a for a, b in pairwise(days)) > 0.01  # far apart next to the run's seconds
    now = after + timedelta(days=(days[1] + days[2]) / 2)
    with db.session() as session:
        assert release_due(session, campaign_id, spec, now=before) == []  # nothing is due yet
        released = release_due(session, campaign_id, spec, now=now)
    assert sorted(released) == sorted(by_time[:2])
    assert states(db) == {seq: ("completed" if seq in by_time[:2] else "running") for seq in points}
    with db.session() as session:
        values = {
            m.experiment.seq: m.value for m in session.scalars(select(Measurement).where(Measurement.name == "y"))
        }
        results = session.scalars(select(PersonRequest).where(PersonRequest.kind == RequestKind.RESULT)).all()
        answered = {r.experiment_id: (r.resolved_by, r.resolution) for r in results if r.resolved_at is not None}
        sources = session.scalars(
            select(Event.detail).where(Event.entity == "experiment", Event.to_state == "completed")
        ).all()
    # The lab's measurement, made when the experiment was handed over, is what was released.
    assert values == {seq: pytest.approx(bowl(points[seq]["x1"], points[seq]["x2"])) for seq in by_time[:2]}
    assert sorted(answered.values()) == [(f"lab {LAB}", "entered")] * 2
    assert [d["source"] for d in sources] == ["lab-schedule"] * 2
    # Releasing again at the same time finds nothing more; at a time past the last, the rest.
    with db.session() as session:
        assert release_due(session, campaign_id, spec, now=now) == []
        assert sorted(release_due(session, campaign_id, spec, now=after + timedelta(days=11))) == sorted(by_time[2:])
    assert set(states(db).values()) == {"completed"}


def test_results_a_person_entered_first_win_and_the_scheduled_ones_are_dropped(tmp_path: Path) -> None:
    db, campaign_id, spec, _, after = paused_with_cultures(tmp_path)
    report = enter_results(db, "h6", [ResultEntry(2, {"y": 0.61})], by="imaging pipeline", source="test")
    assert report.entered == [2]
    with db.session() as session:
        released = release_due(session, campaign_id, spec, now=after + timedelta(days=11))
    assert sorted(released) == [1, 3, 4]
    with db.session() as session:
        (measured,) = session.scalars(
            select(Measurement).join(Experiment).where(Experiment.seq == 2, Measurement.name == "y")
        ).all()
        (request,) = session.scalars(
            select(PersonRequest)
            .join(Experiment, Experiment.id == PersonRequest.experiment_id)
            .where(Experiment.seq == 2, PersonRequest.kind == RequestKind.RESULT)
        ).all()
    assert measured.value == 0.61 and measured.attempt == 1
    assert (request.resolved_by, request.resolution) == ("imaging pipeline", "entered")


def test_a_person_answering_while_the_lab_releases_wins_and_the_rest_are_still_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, campaign_id, spec, _, after = paused_with_cultures(tmp_path)
    # The person's answer to #1 lands between the lab's look at the open requests and its own answer.
    first = True

    def raced(session: Any, request: PersonRequest, **kwargs: Any) -> None:
        nonlocal first
        if first:
            first = False
            real_answer(session, request, by="Ada", resolution="entered")
        real_answer(session, request, **kwargs)

    monkeypatch.setattr(scheduled, "answer", raced)
    with db.session() as session:
        released = release_due(session, campaign_id, spec, now=after + timedelta(days=11))
    assert sorted(released) == [2, 3, 4]
    with db.session() as session:
        resolved = dict(
            session.execute(
                select(Experiment.seq, PersonRequest.resolved_by)
                .join(Experiment, Experiment.id == PersonRequest.experiment_id)
                .where(PersonRequest.kind == RequestKind.RESULT)
            ).all()
        )
        measured = session.scalars(select(Experiment.seq).join(Measurement)).all()
    assert resolved == {1: "Ada", 2: f"lab {LAB}", 3: f"lab {LAB}", 4: f"lab {LAB}"}
    assert sorted(measured) == [2, 3, 4]  # nothing of the lab's written for the experiment the person answered


def test_what_waits_says_when_the_scheduled_results_are_due(tmp_path: Path) -> None:
    db, campaign_id, _, before, after = paused_with_cultures(tmp_path)
    points = parameters(db)
    with db.session() as session:
        what = waiting(session, campaign_id)
    assert what.scheduled == [1, 2, 3, 4] and what.results == [] and what.due is not None
    first, last = min(p["x1"] for p in points.values()), max(p["x1"] for p in points.values())
    assert before + timedelta(days=first * 10) <= what.due[0] <= after + timedelta(days=first * 10)
    assert before + timedelta(days=last * 10) <= what.due[1] <= after + timedelta(days=last * 10)


# --- how long a runner waits in its process ------------------------------------------------------------------------


def spec_waiting(wait: str | float) -> CampaignSpec:
    return to_spec(timed_spec(wait=wait))[0]


def due(first_s: float, last_s: float, *seqs: int) -> Waiting:
    return Waiting({SCHEDULED: list(seqs or (1, 2))}, (T0 + timedelta(seconds=first_s), T0 + timedelta(seconds=last_s)))


@pytest.mark.parametrize(
    ("first_s", "last_s", "limit"),
    [
        (100, 200, 201.0),  # all due within the wait: until a second past the last
        (100, 5000, 600.0),  # the last is due past the wait: the whole wait, then pause
        (600, 700, 600.0),  # the first is due just at the end of the wait
        (601, 700, 0.0),  # nothing due within the wait: pause at once, no process held
        (10 * DAY, 12 * DAY, 0.0),  # a culture of days
        (-50, -10, 1.0),  # all already due: one more look
        (-50, 30, 31.0),  # some due, the last in 30 s
    ],
)
def test_the_runner_waits_only_for_results_due_within_the_wait_never_past_the_last(
    first_s: float, last_s: float, limit: float
) -> None:
    assert wait_limit_s(spec_waiting("10m"), due(first_s, last_s), now=T0) == limit


def test_a_lab_without_a_wait_pauses_at_once() -> None:
    assert wait_limit_s(spec_waiting(0), due(1, 2), now=T0) == 0.0


def test_scheduled_results_and_approvals_wait_the_longer_of_their_limits() -> None:
    data = timed_spec(wait="10m")
    data["approval"] = {"policy": "batch", "timeout": 300}
    spec = to_spec(data)[0]
    both = Waiting(
        {SCHEDULED: [1], RequestKind.APPROVAL: [2]}, (T0 + timedelta(seconds=20), T0 + timedelta(seconds=40))
    )
    assert wait_limit_s(spec, both, now=T0) == 300.0
    later = Waiting({SCHEDULED: [1], RequestKind.APPROVAL: [2]}, (T0, T0 + timedelta(seconds=500)))
    assert wait_limit_s(spec, later, now=T0) == 501.0
