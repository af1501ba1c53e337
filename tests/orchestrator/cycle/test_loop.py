"""The loop end to end on the stage functions (no Prefect server): budget, records, recovery, stop criteria."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from orchestrator.campaign import runs
from orchestrator.cycle.context import load_context, open_campaign
from orchestrator.cycle.deduce import deduce
from orchestrator.cycle.experiment import RetryPolicy, run_experiment
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.cycle.progress import subscribe
from orchestrator.cycle.recovery import recover, start_cycle
from orchestrator.lab.build import build_lab
from orchestrator.lab.contract import Lab, LabFailure, LabResult
from orchestrator.review.export import campaign_status as calibration_summary
from orchestrator.store.database import open_database
from orchestrator.store.models import (
    Campaign,
    CampaignStatus,
    Cycle,
    Decision,
    Event,
    Experiment,
    ExperimentState,
    Measurement,
)
from orchestrator.store.records import move_experiment
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec


def _start(db_url: str, data: dict[str, Any], base_dir: Any = None, lab: Lab | None = None, clock: Any = None):
    db = open_database(db_url)
    spec, text = to_spec(data, base_dir or EXAMPLES_DIR)
    campaign_id, _ = open_campaign(db, spec, text)
    runs.claim(db, campaign_id)
    return db, load_context(db, campaign_id, lab=lab, clock=clock)


class TestLab:
    """A lab for tests: the contract's attributes, with `run` left to each test's lab."""

    __test__ = False  # not a pytest test class
    candidates = None

    def __init__(self, max_concurrency: int = 4) -> None:
        self.max_concurrency = max_concurrency

    def close(self) -> None:
        return None


def test_campaign_runs_its_budget_with_full_records(db_url: str) -> None:
    db, ctx = _start(db_url, hartmann_spec(budget={"experiments": 10, "batch_size": 4}))
    reports = []
    unsubscribe = subscribe(reports.append)
    try:
        reason = run_loop(ctx, InlineStages(ctx))
    finally:
        unsubscribe()
    assert reason == "budget of 10 experiments spent"
    assert [r.spent for r in reports] == [4, 8, 10]  # the last batch is cut to the budget
    with db.session() as session:
        campaign = session.get_one(Campaign, ctx.campaign_id)
        assert campaign.status == CampaignStatus.COMPLETED
        assert campaign.runner is None
        experiments = campaign.experiments
        assert len(experiments) == 10
        assert all(e.state == ExperimentState.COMPLETED for e in experiments)
        assert all(len(e.measurements) == 1 and e.measurements[0].name == "y" for e in experiments)
        cycles = session.scalars(select(Cycle).where(Cycle.campaign_id == ctx.campaign_id)).all()
        assert [c.stage for c in cycles] == ["done"] * 3
        decisions = session.scalars(select(Decision).order_by(Decision.id)).all()
        assert [d.cycle_id for d in decisions] == [c.id for c in cycles]
        assert decisions[1].observation_ids == [e.id for e in experiments[:4]]
        assert decisions[0].planner == "random" and decisions[0].versions["python"]
        assert len({d.seed for d in decisions}) == 3
        for experiment in experiments:
            states = session.scalars(
                select(Event.to_state)
                .where(Event.entity == "experiment", Event.entity_id == experiment.id)
                .order_by(Event.id)
            ).all()
            assert states == ["planned", "approved", "dispatched", "running", "completed"]
        best = min(m.value for m in session.scalars(select(Measurement)))
        assert cycles[-1].best["y"]["value"] == best


def test_same_seed_gives_the_same_campaign(tmp_path) -> None:
    values = []
    for run in range(2):
        db, ctx = _start(f"sqlite:///{tmp_path / f'{run}.db'}", hartmann_spec())
        run_loop(ctx, InlineStages(ctx))
        with db.session() as session:
            values.append(
                session.execute(
                    select(Experiment.seq, Measurement.value)
                    .join(Measurement, Measurement.experiment_id == Experiment.id)
                    .order_by(Experiment.seq)
                ).all()
            )
    assert values[0] == values[1]


class FlakyLab(TestLab):
    """Fails the first attempt of every second experiment; counts the calls per idempotency key."""

    def __init__(self, max_concurrency: int, always_fail: bool = False) -> None:
        super().__init__(max_concurrency)
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.always_fail = always_fail

    def run(self, parameters: Mapping[str, Any], key: str, journal: Any = None) -> LabResult:
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            attempt = self.calls[key]
        if self.always_fail or (int(key.rsplit(":", 1)[1]) % 2 == 0 and attempt == 1):
            raise LabFailure(f"pump stalled on {key}", detail={"error": "PumpStalled"})
        return LabResult(values={"y": sum(parameters.values())})


def test_failed_experiments_are_retried_under_the_same_key(db_url: str) -> None:
    lab = FlakyLab(max_concurrency=3)
    db, ctx = _start(db_url, hartmann_spec(budget={"experiments": 6, "batch_size": 3, "max_retries": 1}), lab=lab)
    run_loop(ctx, InlineStages(ctx))
    assert sorted(lab.calls.values()) == [1, 1, 1, 2, 2, 2]
    with db.session() as session:
        experiments = session.scalars(select(Experiment).order_by(Experiment.seq)).all()
        assert all(e.state == ExperimentState.COMPLETED for e in experiments)
        assert [e.attempts for e in experiments] == [1, 2, 1, 2, 1, 2]
        retried = experiments[1]
        states = session.scalars(
            select(Event.to_state).where(Event.entity == "experiment", Event.entity_id == retried.id).order_by(Event.id)
        ).all()
        assert states == [
            "planned",
            "approved",
            "dispatched",
            "running",
            "failed",
            "dispatched",
            "running",
            "completed",
        ]


def test_experiments_that_keep_failing_stay_failed_and_count(db_url: str) -> None:
    lab = FlakyLab(max_concurrency=2, always_fail=True)
    db, ctx = _start(db_url, hartmann_spec(budget={"experiments": 4, "batch_size": 2, "max_retries": 2}), lab=lab)
    assert run_loop(ctx, InlineStages(ctx)) == "budget of 4 experiments spent"
    assert set(lab.calls.values()) == {3}
    with db.session() as session:
        experiments = session.scalars(select(Experiment)).all()
        assert {e.state for e in experiments} == {ExperimentState.FAILED}
        assert all("pump stalled" in e.error for e in experiments)
        assert session.scalar(select(func.count()).select_from(Measurement)) == 0


def test_interrupted_cycle_is_recovered_without_losing_or_repeating(db_url: str) -> None:
    data = hartmann_spec(budget={"experiments": 8, "batch_size": 4})
    lab_calls: list[str] = []

    class Recording(TestLab):
        """The campaign's own simulator, with every key it is asked to run written down."""

        def __init__(self, inner: Lab) -> None:
            super().__init__(max_concurrency=4)
            self.inner = inner

        def run(self, parameters: Mapping[str, Any], key: str, journal: Any = None) -> LabResult:
            lab_calls.append(key)
            return self.inner.run(parameters, key, journal)

    db, ctx = _start(db_url, data, lab=Recording(build_lab(to_spec(data, EXAMPLES_DIR)[0])))
    # Simulate a crash mid-cycle: one experiment completed, one dispatched (in doubt), two still approved.
    ids = deduce(ctx, start_cycle(ctx), 4)
    done = run_experiment(ctx, ids[0])
    with db.session() as session:
        move_experiment(session, session.get_one(Experiment, ids[1]), ExperimentState.DISPATCHED)
    del lab_calls[:]  # only what the resumed loop asks of the lab counts below
    run_loop(ctx, InlineStages(ctx))
    with db.session() as session:
        experiments = {e.id: e for e in session.scalars(select(Experiment))}
        assert experiments[ids[0]].state == ExperimentState.COMPLETED
        assert experiments[ids[0]].measurements[0].value == done.values["y"]
        assert experiments[ids[1]].state == ExperimentState.ABANDONED
        assert "in doubt" in experiments[ids[1]].error
        spent = [e for e in experiments.values() if e.state == ExperimentState.COMPLETED]
        assert len(spent) == 8
    keys = [f"{ctx.name}:{experiments[i].seq}" for i in ids]
    assert keys[0] not in lab_calls  # the completed experiment was not run again
    assert keys[2] in lab_calls and keys[3] in lab_calls
    assert len(lab_calls) == len(set(lab_calls))


def test_stop_request_abandons_unsent_work(db_url: str) -> None:
    db, ctx = _start(db_url, hartmann_spec(budget={"experiments": 40, "batch_size": 4}))
    unsubscribe = subscribe(lambda report: report.cycle == 2 and runs.request_stop(db, ctx.name))
    try:
        assert run_loop(ctx, InlineStages(ctx)) == "stopped by request"
    finally:
        unsubscribe()
    with db.session() as session:
        campaign = session.get_one(Campaign, ctx.campaign_id)
        assert campaign.status == CampaignStatus.STOPPED
        assert session.scalar(select(func.count()).select_from(Experiment)) == 8


def test_target_reached_stops_early(db_url: str) -> None:
    data = hartmann_spec(budget={"experiments": 40, "batch_size": 2})
    data["objectives"] = [{"name": "y", "direction": "minimize", "target": -0.1}]
    db, ctx = _start(db_url, data)
    reason = run_loop(ctx, InlineStages(ctx))
    assert reason.startswith("target reached by experiment")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Experiment)) < 40


def test_no_improvement_stops(db_url: str) -> None:
    data = hartmann_spec(budget={"experiments": 200, "batch_size": 1}, stop={"no_improvement_cycles": 2})
    db, ctx = _start(db_url, data)
    assert run_loop(ctx, InlineStages(ctx)) == "no improvement for 2 cycles"
    with db.session() as session:
        improved = session.scalars(select(Cycle.improved).order_by(Cycle.index)).all()
    assert improved[-2:] == [False, False]


class SteppingClock:
    """A clock that moves a fixed step each time it is read, from a fixed start: time passes without waiting."""

    def __init__(self, step_s: float) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)
        self.step = timedelta(seconds=step_s)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def test_wall_clock_limit_stops_on_the_campaigns_clock(sqlite_url: str) -> None:
    data = hartmann_spec(budget={"experiments": 100, "batch_size": 2, "wall_clock": "5m"})
    db, ctx = _start(sqlite_url, data, clock=SteppingClock(step_s=60.0))
    assert run_loop(ctx, InlineStages(ctx)) == "wall-clock limit of 300 s reached"
    with db.session() as session:
        campaign = session.get_one(Campaign, ctx.campaign_id)
        assert campaign.active_seconds >= 300
        assert session.scalar(select(func.count()).select_from(Experiment)) < 100  # stopped by the clock alone
        cycles = session.scalars(select(Cycle).order_by(Cycle.index)).all()
        # Heartbeats and cycle ends are the campaign's clock's times, not the machine's.
        assert all(c.finished_at.year == 2030 for c in cycles)


def test_lookup_campaign_only_plans_points_the_table_holds(sqlite_url: str) -> None:
    import yaml

    data = yaml.safe_load((EXAMPLES_DIR / "aryl_amination.yaml").read_text())
    data["budget"] = {"experiments": 30, "batch_size": 10}
    db, ctx = _start(sqlite_url, data)
    assert ctx.problem.space.grid_size == 3955
    run_loop(ctx, InlineStages(ctx))
    with db.session() as session:
        states = session.scalars(select(Experiment.state)).all()
    assert states == [ExperimentState.COMPLETED] * 30


def test_a_second_runner_is_refused(sqlite_url: str) -> None:
    db, ctx = _start(sqlite_url, hartmann_spec())
    with db.session() as session:
        session.get_one(Campaign, ctx.campaign_id).runner = "elsewhere:1"
        session.get_one(Campaign, ctx.campaign_id).heartbeat_at = __import__(
            "orchestrator.store.models"
        ).store.models.utcnow()
    with pytest.raises(runs.CampaignConflict, match="being run by elsewhere:1"):
        runs.claim(db, ctx.campaign_id)


def test_bayesian_campaign_records_model_state_predictions_and_calibration(db_url: str) -> None:
    planner = {"kind": "bayesian", "seed": 4, "num_restarts": 2, "raw_samples": 64, "mc_samples": 64}
    db, ctx = _start(db_url, hartmann_spec(budget={"experiments": 12, "batch_size": 4}, planner=planner))
    assert run_loop(ctx, InlineStages(ctx)) == "budget of 12 experiments spent"
    with db.session() as session:
        decisions = session.scalars(select(Decision).order_by(Decision.id)).all()
        assert [d.planner for d in decisions] == ["bayesian"] * 3
        states = [d.model_state["planner"] for d in decisions]
        assert states[0]["phase"] == "space-filling"
        assert [s["phase"] for s in states[1:]] == ["model", "model"]
        assert decisions[0].versions["device"] == "cpu"
        # The third fit starts from the second's hyper-parameters, read back from the database.
        assert states[1]["fit"]["y"]["warm_started"] is False
        assert states[2]["fit"]["y"]["warm_started"] is True
        assert states[2]["hyperparameters"]["y"]
        modelled = session.scalars(
            select(Experiment).where(Experiment.decision_id.in_([d.id for d in decisions[1:]]))
        ).all()
        assert len(modelled) == 8
        for experiment in modelled:
            (measurement,) = experiment.measurements
            assert measurement.predicted_mean == experiment.predicted["y"]["mean"]
            assert measurement.predicted_std == experiment.predicted["y"]["std"] > 0
    summary = calibration_summary(db, ctx.name)["calibration"]["y"]
    assert summary["predictions"] == 8
    assert 0 <= summary["within_1sd"] <= summary["within_2sd"] <= 1


class FlatLabWithAWall(TestLab):
    """Infeasible where x1 > 0.5 (no product); elsewhere the objective never varies."""

    def run(self, parameters: Mapping[str, Any], key: str, journal: Any = None) -> LabResult:
        if parameters["x1"] > 0.5:
            return LabResult(infeasible=True, reason="no product")
        return LabResult(values={"y": 1.0})


def test_bayesian_campaign_learns_from_infeasible_results_and_warns_of_a_flat_objective(db_url: str) -> None:
    planner = {"kind": "bayesian", "seed": 1, "num_restarts": 2, "raw_samples": 64, "mc_samples": 64}
    db, ctx = _start(
        db_url, hartmann_spec(budget={"experiments": 12, "batch_size": 4}, planner=planner), lab=FlatLabWithAWall()
    )
    reports = []
    unsubscribe = subscribe(reports.append)
    try:
        run_loop(ctx, InlineStages(ctx))
    finally:
        unsubscribe()
    with db.session() as session:
        states = {e.state for e in session.scalars(select(Experiment))}
        assert states == {ExperimentState.COMPLETED, ExperimentState.INFEASIBLE}
        last = session.scalars(select(Decision).order_by(Decision.id.desc())).first()
        assert last.model_state["planner"]["infeasible"] >= 1
        assert "__feasibility__" in last.model_state["planner"]["hyperparameters"]
        assert any("objective 'y' has the same value (1)" in w for w in last.warnings)
        warned = session.scalars(select(Event).where(Event.entity == "decision", Event.kind == "warning")).all()
        assert warned and "objective 'y'" in warned[-1].detail["message"]
    assert any("objective 'y'" in w for r in reports for w in r.warnings)


def test_the_retry_policy_retries_only_a_retryable_failure_with_retries_left() -> None:
    policy = RetryPolicy(max_retries=2)
    stalled = LabFailure("pump stalled")
    refused = LabFailure("volume over the limit", retryable=False)
    assert [policy.may_retry(stalled, attempt) for attempt in (1, 2, 3)] == [True, True, False]
    assert not policy.may_retry(refused, 1)
    assert not RetryPolicy(max_retries=0).may_retry(stalled, 1)


class FailsOnceLab(TestLab):
    """Fails the first attempt at every key (a stalled pump that a retry clears); counts the calls per key."""

    def __init__(self) -> None:
        super().__init__(max_concurrency=2)
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def run(self, parameters: Mapping[str, Any], key: str, journal: Any = None) -> LabResult:
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            first = self.calls[key] == 1
        if first:
            raise LabFailure(f"pump stalled on {key}", detail={"error": "PumpStalled"})
        return LabResult(values={"y": sum(parameters.values())})


@pytest.mark.slow
def test_prefect_retries_a_failed_experiment_under_its_key(sqlite_url: str) -> None:
    """The Prefect engine: the experiment task fails once, Prefect retries it, and both attempts are recorded
    under the experiment's one idempotency key."""
    # Loaded here, not at the top: the other tests of this module run without Prefect.
    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness

    from orchestrator.cycle.flow import PrefectStages

    lab = FailsOnceLab()
    db, ctx = _start(sqlite_url, hartmann_spec(budget={"experiments": 1, "batch_size": 1, "max_retries": 1}), lab=lab)

    stages = PrefectStages(ctx)
    assert stages.experiment.retries == 1  # the campaign's budget.max_retries, declared on the task

    @flow(name="peirce-campaign-test")
    def campaign() -> str:
        return run_loop(ctx, stages)

    # A Prefect server of the test's own, stopped before the test ends (none left to stop at interpreter exit).
    with prefect_test_harness():
        assert campaign() == "budget of 1 experiments spent"
    assert lab.calls == {f"{ctx.name}:1": 2}
    with db.session() as session:
        (experiment,) = session.scalars(select(Experiment)).all()
        assert experiment.state == ExperimentState.COMPLETED and experiment.attempts == 2
        assert experiment.idempotency_key == f"{ctx.name}:1"
        moves = session.scalars(
            select(Event).where(Event.entity == "experiment", Event.kind == "state").order_by(Event.id)
        ).all()
        assert [(e.to_state, e.detail["attempt"]) for e in moves] == [
            ("approved", 0),
            ("dispatched", 1),
            ("running", 1),
            ("failed", 1),
            ("dispatched", 2),
            ("running", 2),
            ("completed", 2),
        ]
        failed = next(e for e in moves if e.to_state == "failed")
        assert failed.detail["will_retry"] is True and failed.detail["error"] == "PumpStalled"
        (measurement,) = experiment.measurements
        assert measurement.attempt == 2


class RefusingLab(TestLab):
    """Refuses every experiment as an instrument refuses a limit: retrying cannot help. Counts calls per key."""

    def __init__(self) -> None:
        super().__init__(max_concurrency=1)
        self.calls: list[str] = []

    def run(self, parameters: Mapping[str, Any], key: str, journal: Any = None) -> LabResult:
        self.calls.append(key)
        raise LabFailure("volume over the pump's limit", retryable=False, detail={"fault": "limit"})


def test_a_refused_experiment_is_not_sent_again_after_a_crash(sqlite_url: str) -> None:
    lab = RefusingLab()
    _, ctx = _start(sqlite_url, hartmann_spec(budget={"experiments": 2, "batch_size": 2, "max_retries": 2}), lab=lab)
    first, second = deduce(ctx, start_cycle(ctx), 2)
    # The process dies after the first experiment was refused, before the cycle ends.
    assert run_experiment(ctx, first).state == ExperimentState.FAILED
    assert lab.calls == [f"{ctx.name}:1"]
    recovery = recover(ctx)
    assert recovery.to_run == [second]  # the refused one has retries left by count, but the refusal is final
