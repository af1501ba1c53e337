"""The loop waiting for people (no Prefect server): it pauses at the limit with nothing lost, continues once the
people have answered, runs an experiment approved while it waits, stops when asked while it waits, and never treats
an experiment handed to a person as in doubt."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from orchestrator.campaign import runs
from orchestrator.cycle.context import CampaignContext, load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.lab.contract import Lab
from orchestrator.people.requests import answer, open_requests
from orchestrator.people.results import ResultEntry, enter_results
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import (
    Campaign,
    CampaignStatus,
    Dispatch,
    Experiment,
    ExperimentState,
    PersonRequest,
    RequestKind,
)
from orchestrator.store.records import move_experiment
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec
from tests.person_lab import PersonLab


def _start(db_url: str, data: dict[str, Any], lab: Lab | None = None) -> tuple[Database, CampaignContext]:
    db = open_database(db_url)
    spec, text = to_spec(data, EXAMPLES_DIR)
    campaign_id, _ = open_campaign(db, spec, text)
    return db, _claimed(db, campaign_id, lab)


def _claimed(db: Database, campaign_id: int, lab: Lab | None = None) -> CampaignContext:
    lease = runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id, lab=lab)
    ctx.runner = lease.runner
    return ctx


def _approve_all(db: Database, campaign_id: int, by: str) -> list[int]:
    """What a person's approval writes (the request answered, the experiment approved), without the CLI."""
    approved = []
    with db.session() as session:
        for request in open_requests(session, campaign_id, [RequestKind.APPROVAL]):
            answer(session, request, by=by, resolution="approved")
            experiment = session.get_one(Experiment, request.experiment_id)
            move_experiment(session, experiment, ExperimentState.APPROVED, detail={"by": by})
            approved.append(experiment.seq)
    return approved


def _states(db: Database, campaign_id: int) -> dict[int, str]:
    with db.session() as session:
        rows = session.execute(select(Experiment.seq, Experiment.state).where(Experiment.campaign_id == campaign_id))
        return dict(rows.all())


def _campaign(db: Database, campaign_id: int) -> tuple[str, str | None, str | None]:
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        return campaign.status, campaign.stop_reason, campaign.runner


def test_a_batch_waiting_for_approval_pauses_the_campaign_and_sends_nothing(db_url: str) -> None:
    data = hartmann_spec(budget={"experiments": 4, "batch_size": 2})
    data["approval"] = "batch"
    db, ctx = _start(db_url, data)
    reason = run_loop(ctx, InlineStages(ctx))
    assert reason == "waiting for people: 2 experiments wait for approval (#1, #2; `peirce pending h6`)"
    assert _campaign(db, ctx.campaign_id) == (CampaignStatus.WAITING, reason, None)  # the lease is freed
    assert _states(db, ctx.campaign_id) == {1: "planned", 2: "planned"}
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Dispatch)) == 0
        requests = open_requests(session, ctx.campaign_id)
        assert [(r.kind, r.detail["seq"]) for r in requests] == [("approval", 1), ("approval", 2)]

    # Resumed with nothing answered: it pauses again, the same two still waiting, nothing planned on top of them.
    ctx = _claimed(db, ctx.campaign_id)
    assert run_loop(ctx, InlineStages(ctx)) == reason
    assert _states(db, ctx.campaign_id) == {1: "planned", 2: "planned"}

    # Approved by a person, resumed: the batch runs, the next batch waits in its turn.
    assert _approve_all(db, ctx.campaign_id, "Ada") == [1, 2]
    ctx = _claimed(db, ctx.campaign_id)
    second = run_loop(ctx, InlineStages(ctx))
    assert second == "waiting for people: 2 experiments wait for approval (#3, #4; `peirce pending h6`)"
    assert _states(db, ctx.campaign_id) == {1: "completed", 2: "completed", 3: "planned", 4: "planned"}
    _approve_all(db, ctx.campaign_id, "Grace")
    ctx = _claimed(db, ctx.campaign_id)
    assert run_loop(ctx, InlineStages(ctx)) == "budget of 4 experiments spent"
    assert _campaign(db, ctx.campaign_id)[0] == CampaignStatus.COMPLETED


def test_an_experiment_approved_while_the_runner_waits_runs_without_a_pause(db_url: str) -> None:
    data = hartmann_spec(budget={"experiments": 2, "batch_size": 2})
    data["approval"] = {"policy": "batch", "timeout": "10m"}
    db, ctx = _start(db_url, data)

    def person() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _approve_all(db, ctx.campaign_id, "Ada"):
            time.sleep(0.05)

    helper = threading.Thread(target=person)
    helper.start()
    try:
        reason = run_loop(ctx, InlineStages(ctx))
    finally:
        helper.join()
    assert reason == "budget of 2 experiments spent"
    with db.session() as session:
        statuses = session.scalars(
            select(PersonRequest.resolution).where(PersonRequest.campaign_id == ctx.campaign_id)
        ).all()
    assert statuses == ["approved", "approved"]


def test_a_stop_asked_while_the_runner_waits_ends_the_wait_and_withdraws_the_requests(db_url: str) -> None:
    data = hartmann_spec(budget={"experiments": 4, "batch_size": 2})
    data["approval"] = {"policy": "batch", "timeout": "10m"}
    db, ctx = _start(db_url, data)
    stopper = threading.Timer(0.5, lambda: runs.request_stop(db, "h6"))
    stopper.start()
    try:
        reason = run_loop(ctx, InlineStages(ctx))
    finally:
        stopper.cancel()
    assert reason == "stopped by request"
    assert _campaign(db, ctx.campaign_id)[:2] == (CampaignStatus.STOPPED, "stopped by request")
    assert _states(db, ctx.campaign_id) == {1: "abandoned", 2: "abandoned"}
    with db.session() as session:
        assert open_requests(session, ctx.campaign_id) == []
        resolutions = session.scalars(select(PersonRequest.resolution)).all()
    assert resolutions == ["withdrawn", "withdrawn"]


def test_work_handed_to_a_person_waits_survives_a_lost_runner_and_continues_with_the_results(db_url: str) -> None:
    data = hartmann_spec(budget={"experiments": 4, "batch_size": 2})
    db, ctx = _start(db_url, data, lab=PersonLab())
    reason = run_loop(ctx, InlineStages(ctx))
    assert reason == "waiting for people: 2 experiments wait for results entered by hand (#1, #2; `peirce next h6`)"
    assert _states(db, ctx.campaign_id) == {1: "running", 2: "running"}
    with db.session() as session:
        requests = open_requests(session, ctx.campaign_id)
    # Handed out by the batch's threads in either order.
    handed = sorted((r.kind, r.detail["seq"], r.detail["instructions"]) for r in requests)
    assert handed == [("result", 1, "run h6:1"), ("result", 2, "run h6:2")]

    # A runner that died while a person works (its lease left behind, its heartbeat stale) is replaced; the work it
    # handed out is not in doubt.
    with db.session() as session:
        campaign = session.get_one(Campaign, ctx.campaign_id)
        campaign.status, campaign.runner = CampaignStatus.RUNNING, "gone-host:1"
        campaign.heartbeat_at = datetime.now(UTC) - timedelta(hours=1)
    ctx = _claimed(db, ctx.campaign_id, PersonLab())
    assert run_loop(ctx, InlineStages(ctx)) == reason
    assert _states(db, ctx.campaign_id) == {1: "running", 2: "running"}

    report = enter_results(
        db, "h6", [ResultEntry(1, {"y": -1.5}), ResultEntry(2, {"y": -0.25})], by="Ada", source="test"
    )
    assert (report.entered, report.unchanged) == ([1, 2], [])
    again = enter_results(db, "h6", [ResultEntry(1, {"y": -1.5})], by="Ada", source="test")
    assert (again.entered, again.unchanged) == ([], [1])
    ctx = _claimed(db, ctx.campaign_id, PersonLab())
    assert run_loop(ctx, InlineStages(ctx)) == (
        "waiting for people: 2 experiments wait for results entered by hand (#3, #4; `peirce next h6`)"
    )
    assert _states(db, ctx.campaign_id) == {1: "completed", 2: "completed", 3: "running", 4: "running"}
    with db.session() as session:
        values = session.execute(
            select(Experiment.seq, Experiment.state).where(
                Experiment.seq <= 2, Experiment.campaign_id == ctx.campaign_id
            )
        ).all()
    assert values == [(1, "completed"), (2, "completed")]
