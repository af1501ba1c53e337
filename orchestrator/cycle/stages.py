"""The cycle's stages as plain functions: abduce → deduce → run experiments → induce.

Each stage reads what it needs from the database and writes what it did before acting on it (write-ahead), so
any of them can be called alone, from a Prefect task or a test, and a crash between two of them loses nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from instruments.station import Journal
from orchestrator.campaign.spec import CampaignSpec
from orchestrator.cycle.progress import CycleReport
from orchestrator.lab.build import BuiltLab, build_lab
from orchestrator.ledger import hypotheses as ledger
from orchestrator.records.provenance import derive_seed, library_versions, planning_data_hash, runtime_settings
from orchestrator.store.database import Database
from orchestrator.store.models import (
    Campaign,
    CampaignStatus,
    Cycle,
    Decision,
    Event,
    Experiment,
    ExperimentState,
    Hypothesis,
    HypothesisStatus,
    Measurement,
    utcnow,
)
from orchestrator.store.records import add_event, latest_best, move_experiment, set_campaign_status
from planners.base import Observation, Plan, Planner, PlanningError, PlanningProblem
from planners.registry import build_planner
from planners.space import Space
from simulators.base import SimulationError

PENDING_STATES = (
    ExperimentState.PLANNED,
    ExperimentState.APPROVED,
    ExperimentState.DISPATCHED,
    ExperimentState.RUNNING,
)


@dataclass
class CampaignContext:
    """Everything the stages share for one campaign in this process. Built from the database alone."""

    db: Database
    campaign_id: int
    name: str
    spec: CampaignSpec
    lab: BuiltLab
    planner: Planner
    problem: PlanningProblem
    # The surrogate the hypothesis ledger uses, fitted once per set of results and shared by a cycle's stages.
    surrogate: ledger.SurrogateCache = field(default_factory=ledger.SurrogateCache)


def load_context(db: Database, campaign_id: int) -> CampaignContext:
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        spec = CampaignSpec.model_validate(campaign.spec)
        name = campaign.name
    lab = build_lab(spec)
    return CampaignContext(
        db=db,
        campaign_id=campaign_id,
        name=name,
        spec=spec,
        lab=lab,
        planner=build_planner(spec.planner),
        problem=spec.problem(candidates=lab.candidates),
    )


@dataclass(frozen=True)
class ExperimentOutcome:
    experiment_id: int
    seq: int
    state: str
    values: dict[str, float]
    error: str | None = None


# --- abduction -------------------------------------------------------------------------------------------------


def abduce(ctx: CampaignContext, cycle_id: int) -> list[int]:
    """Propose hypotheses from what is known; returns the new open hypotheses' ids.

    With `hypotheses: none` there are none; the stage is still logged. Accepted and rejected proposals are written
    with their abduction Decision in one transaction.
    """
    with ctx.db.session() as session:
        cycle = _enter_stage(session, ctx, cycle_id, "abducing")
        if not ctx.spec.hypotheses.enabled:
            return []
        return ledger.abduce_hypotheses(
            session,
            campaign_id=ctx.campaign_id,
            cycle_id=cycle_id,
            cycle_index=cycle.index,
            settings=ctx.spec.hypotheses,
            problem=ctx.problem,
            goal=ctx.spec.goal,
            observed=_observations(session, ctx),
            cache=ctx.surrogate,
            model=ledger.model_settings(ctx.spec.planner),
            safety=ctx.spec.safety,
            base_seed=ctx.spec.planner.seed,
        )


# --- deduction -------------------------------------------------------------------------------------------------


def deduce(ctx: CampaignContext, cycle_id: int, batch_size: int) -> list[int]:
    """Ask the planner for a batch, record the Decision, and write each experiment as planned, then approved.

    Returns the new experiments' ids. Nothing is dispatched here: the rows are committed first.
    """
    with ctx.db.session() as session:
        cycle = _enter_stage(session, ctx, cycle_id, "deducing")
        observed = _observations(session, ctx)
        pending_rows = session.scalars(
            select(Experiment)
            .where(Experiment.campaign_id == ctx.campaign_id, Experiment.state.in_(PENDING_STATES))
            .order_by(Experiment.seq)
        ).all()
        seed = derive_seed(ctx.spec.planner.seed, "deduce", cycle.index)
        previous = session.scalar(
            select(Decision.model_state)
            .where(Decision.campaign_id == ctx.campaign_id, Decision.stage == "deduce")
            .order_by(Decision.id.desc())
            .limit(1)
        )
        started = time.perf_counter()
        pending = [row.parameters for row in pending_rows]
        tests = _plan_tests(session, ctx, observed, pending, batch_size, seed)
        plan = ctx.planner.propose(
            ctx.problem,
            [o for _, o in observed],
            pending + [p.parameters for p in tests.proposals],
            batch_size - len(tests.proposals),
            seed,
            warm_start=previous,
        )
        plan = without_forbidden(ctx.problem.space, plan)
        wall_time = time.perf_counter() - started
        records = [
            {
                "parameters": p.parameters,
                "predicted": {k: {"mean": v.mean, "std": v.std} for k, v in p.predicted.items()},
                "rationale": p.rationale,
            }
            for p in [*tests.proposals, *plan.proposals]
        ]
        model_state = (
            {**plan.model_state, "hypothesis_tests": tests.record} if tests.record else plan.model_state or None
        )
        # The fitted state goes to the content-addressed store before the row that names it is committed.
        artifacts = {"model_state": ctx.db.artifacts.put(model_state)} if model_state else None
        decision = Decision(
            campaign_id=ctx.campaign_id,
            cycle_id=cycle_id,
            stage="deduce",
            planner=ctx.planner.name,
            planner_config=ctx.planner.config(),
            seed=seed,
            data_hash=data_hash(observed, pending_rows),
            observation_ids=[experiment_id for experiment_id, _ in observed],
            pending_ids=[row.id for row in pending_rows],
            proposals=records,
            versions={**library_versions(), **runtime_settings(), "device": plan.model_state.get("device", "cpu")},
            model_state=model_state,
            artifacts=artifacts,
            warnings=plan.warnings or None,
            wall_time_s=wall_time,
        )
        session.add(decision)
        session.flush()
        add_event(
            session,
            ctx.campaign_id,
            "decision",
            decision.id,
            "created",
            detail={"cycle": cycle.index, "planner": ctx.planner.name, "proposals": len(records)},
        )
        for warning in plan.warnings:
            add_event(session, ctx.campaign_id, "decision", decision.id, "warning", detail={"message": warning})
        next_seq = (
            session.scalar(select(func.max(Experiment.seq)).where(Experiment.campaign_id == ctx.campaign_id)) or 0
        ) + 1
        ids = []
        created: list[Experiment] = []
        for offset, record in enumerate(records):
            seq = next_seq + offset
            experiment = Experiment(
                campaign_id=ctx.campaign_id,
                cycle_id=cycle_id,
                decision_id=decision.id,
                seq=seq,
                idempotency_key=f"{ctx.name}:{seq}",
                parameters=_plain(record["parameters"]),
                predicted=record["predicted"] or None,
                state=ExperimentState.PLANNED,
            )
            session.add(experiment)
            session.flush()
            add_event(
                session,
                ctx.campaign_id,
                "experiment",
                experiment.id,
                "created",
                to_state=ExperimentState.PLANNED,
                detail={"seq": seq, "parameters": experiment.parameters},
            )
            # Approval policy `none`: every planned experiment is approved at once, and the approval is logged.
            move_experiment(session, experiment, ExperimentState.APPROVED, detail={"by": "policy:none"})
            ids.append(experiment.id)
            created.append(experiment)
        if ctx.spec.hypotheses.enabled:
            ledger.link_tests(
                session,
                campaign_id=ctx.campaign_id,
                settings=ctx.spec.hypotheses,
                problem=ctx.problem,
                observed=observed,
                cache=ctx.surrogate,
                model=ledger.model_settings(ctx.spec.planner),
                seed=seed,
                experiments=created,
                chosen=tests.chosen,
            )
        cycle.stage = "running"
    return ids


def _plan_tests(
    session: Any,
    ctx: CampaignContext,
    observed: list[tuple[int, Observation]],
    pending: list[dict[str, Any]],
    batch_size: int,
    seed: int,
) -> ledger.TestPlan:
    if not ctx.spec.hypotheses.enabled:
        return ledger.TestPlan([], {}, {})
    return ledger.plan_tests(
        session,
        campaign_id=ctx.campaign_id,
        settings=ctx.spec.hypotheses,
        problem=ctx.problem,
        observed=observed,
        pending=pending,
        batch_size=batch_size,
        cache=ctx.surrogate,
        model=ledger.model_settings(ctx.spec.planner),
        seed=seed,
    )


def without_forbidden(space: Space, plan: Plan) -> Plan:
    """Drop proposals inside a forbidden region. Finite spaces never offer them; a continuous optimiser can land
    there, and a forbidden point must never reach the lab, so it is dropped and the decision says so."""
    if not space.exclusions:
        return plan
    kept = [p for p in plan.proposals if space.feasible(p.parameters)]
    if len(kept) == len(plan.proposals):
        return plan
    dropped = len(plan.proposals) - len(kept)
    notice = f"{dropped} proposal(s) fell in a forbidden region of the safety rules and were dropped"
    return Plan(kept, model_state=plan.model_state, warnings=[*plan.warnings, notice])


# --- experiments -----------------------------------------------------------------------------------------------


def run_experiment(ctx: CampaignContext, experiment_id: int) -> ExperimentOutcome:
    """Run one approved (or failed, to retry) experiment on the lab, with bounded retries under the same key."""
    max_attempts = 1 + ctx.spec.budget.max_retries
    while True:
        with ctx.db.session() as session:
            experiment = session.get_one(Experiment, experiment_id)
            campaign = session.get_one(Campaign, ctx.campaign_id)
            if campaign.status == CampaignStatus.STOPPING:
                move_experiment(
                    session, experiment, ExperimentState.ABANDONED, detail={"reason": "campaign stop requested"}
                )
                return _outcome(experiment)
            # Written and committed before the lab hears of it: a crash from here on leaves the row in doubt.
            move_experiment(session, experiment, ExperimentState.DISPATCHED, detail={"key": experiment.idempotency_key})
            key, parameters, attempt = experiment.idempotency_key, dict(experiment.parameters), experiment.attempts
        try:
            with ctx.db.session() as session:
                move_experiment(session, session.get_one(Experiment, experiment_id), ExperimentState.RUNNING)
            result = ctx.lab.run(parameters, key, _journal(ctx, experiment_id, attempt))
        except SimulationError as exc:
            retryable = exc.retryable and attempt < max_attempts
            with ctx.db.session() as session:
                experiment = session.get_one(Experiment, experiment_id)
                detail = exc.detail()
                move_experiment(
                    session,
                    experiment,
                    ExperimentState.FAILED,
                    detail={"reason": str(exc), "error": type(exc).__name__, "will_retry": retryable, **detail},
                )
                if not retryable:
                    return _outcome(experiment)
            continue
        with ctx.db.session() as session:
            experiment = session.get_one(Experiment, experiment_id)
            if result.infeasible:
                move_experiment(session, experiment, ExperimentState.INFEASIBLE, detail={"reason": result.reason})
                return _outcome(experiment)
            units = {o.name: o.unit for o in ctx.spec.objectives}
            predicted = experiment.predicted or {}
            for name, value in result.values.items():
                session.add(
                    Measurement(
                        experiment_id=experiment_id,
                        name=name,
                        value=float(value),
                        unit=units.get(name, ""),
                        attempt=attempt,
                        predicted_mean=predicted.get(name, {}).get("mean"),
                        predicted_std=predicted.get(name, {}).get("std"),
                    )
                )
            move_experiment(
                session,
                experiment,
                ExperimentState.COMPLETED,
                detail={"values": {k: float(v) for k, v in result.values.items()}},
            )
            return _outcome(experiment, {k: float(v) for k, v in result.values.items()})


def _journal(ctx: CampaignContext, experiment_id: int, attempt: int) -> Journal:
    """Where a station writes each action as it happens: an Event of the experiment, committed at once, so the
    database says what was about to be sent before it is sent (and what came back, with the bytes)."""

    def write(kind: str, detail: dict[str, Any]) -> None:
        with ctx.db.session() as session:
            add_event(
                session, ctx.campaign_id, "experiment", experiment_id, kind, detail={"attempt": attempt, **detail}
            )

    return write


def run_experiments(ctx: CampaignContext, experiment_ids: Sequence[int]) -> list[ExperimentOutcome]:
    """Run a batch concurrently, at most `lab.max_concurrency` at a time (the Prefect flow maps tasks instead)."""
    if not experiment_ids:
        return []
    with ThreadPoolExecutor(max_workers=min(len(experiment_ids), ctx.lab.max_concurrency)) as pool:
        return list(pool.map(lambda i: run_experiment(ctx, i), experiment_ids))


# --- induction -------------------------------------------------------------------------------------------------


def induce(ctx: CampaignContext, cycle_id: int, cycle_seconds: float = 0.0) -> CycleReport:
    """Take in the cycle's results: best so far, whether it improved, and whether a stop criterion is met."""
    with ctx.db.session() as session:
        cycle = _enter_stage(session, ctx, cycle_id, "inducing")
        campaign = session.get_one(Campaign, ctx.campaign_id)
        hypothesis_news = _induce_hypotheses(session, ctx, cycle)
        best = _best_so_far(session, ctx)
        previous = latest_best(session, ctx.campaign_id, before_cycle=cycle.index)
        improved = _improved(ctx, best, previous)
        cycle.best, cycle.improved = best, improved
        cycle.stage, cycle.finished_at = "done", utcnow()
        campaign.active_seconds += cycle_seconds
        campaign.heartbeat_at = utcnow()
        add_event(
            session,
            ctx.campaign_id,
            "cycle",
            cycle.id,
            "state",
            from_state="inducing",
            to_state="done",
            detail={"best": best, "improved": improved},
        )
        report = CycleReport(
            campaign=ctx.name,
            cycle=cycle.index,
            spent=spent_experiments(session, ctx.campaign_id),
            budget=ctx.spec.budget.experiments,
            completed_in_cycle=sum(e.state == ExperimentState.COMPLETED for e in cycle.experiments),
            failed_in_cycle=sum(e.state == ExperimentState.FAILED for e in cycle.experiments),
            best=best,
            improved=improved,
            stop_reason=stop_reason(session, ctx),
            warnings=[
                w
                for d in session.scalars(select(Decision).where(Decision.cycle_id == cycle_id))
                for w in d.warnings or []
            ],
            hypotheses=hypothesis_news,
        )
    return report


def _induce_hypotheses(session: Any, ctx: CampaignContext, cycle: Cycle) -> list[str]:
    if not ctx.spec.hypotheses.enabled:
        return []
    new = session.scalars(
        select(Hypothesis).where(Hypothesis.cycle_id == cycle.id, Hypothesis.status == HypothesisStatus.OPEN)
    ).all()
    news = [f"hypothesis {h.id} proposed ({h.source}): {h.statement}" for h in new]
    return news + ledger.induce_hypotheses(
        session,
        campaign_id=ctx.campaign_id,
        cycle_id=cycle.id,
        cycle_index=cycle.index,
        settings=ctx.spec.hypotheses,
        problem=ctx.problem,
        observed=_observations(session, ctx),
        cache=ctx.surrogate,
        model=ledger.model_settings(ctx.spec.planner),
        base_seed=ctx.spec.planner.seed,
    )


def stop_reason(session: Any, ctx: CampaignContext) -> str | None:
    """Why the campaign should stop now, or None to go on. Checked after every cycle and before each new one."""
    campaign = session.get_one(Campaign, ctx.campaign_id)
    if campaign.status == CampaignStatus.STOPPING:
        return "stopped by request"
    budget = ctx.spec.budget
    if spent_experiments(session, ctx.campaign_id) >= budget.experiments:
        return f"budget of {budget.experiments} experiments spent"
    if budget.wall_clock is not None and campaign.active_seconds >= budget.wall_clock:
        return f"wall-clock limit of {budget.wall_clock:g} s reached"
    stop = ctx.spec.stop
    if stop.target_reached and any(o.target is not None for o in ctx.spec.objectives):
        reached = _target_reached_by(session, ctx)
        if reached is not None:
            return f"target reached by experiment {reached}"
    if stop.no_improvement_cycles:
        recent = session.scalars(
            select(Cycle.improved)
            .where(Cycle.campaign_id == ctx.campaign_id, Cycle.stage == "done")
            .order_by(Cycle.index.desc())
            .limit(stop.no_improvement_cycles)
        ).all()
        if len(recent) == stop.no_improvement_cycles and not any(recent):
            return f"no improvement for {stop.no_improvement_cycles} cycles"
    return None


def spent_experiments(session: Any, campaign_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                Experiment.campaign_id == campaign_id, Experiment.state.in_(ExperimentState.SPENT)
            )
        )
        or 0
    )


def open_experiments(session: Any, campaign_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).where(Experiment.campaign_id == campaign_id, Experiment.state.in_(PENDING_STATES))
        )
        or 0
    )


# --- cycles and recovery ---------------------------------------------------------------------------------------


def start_cycle(ctx: CampaignContext) -> int:
    with ctx.db.session() as session:
        last = session.scalar(select(func.max(Cycle.index)).where(Cycle.campaign_id == ctx.campaign_id))
        cycle = Cycle(campaign_id=ctx.campaign_id, index=(last or 0) + 1, stage="abducing")
        session.add(cycle)
        session.flush()
        add_event(
            session, ctx.campaign_id, "cycle", cycle.id, "created", to_state="abducing", detail={"index": cycle.index}
        )
        return cycle.id


def next_batch_size(ctx: CampaignContext) -> int:
    with ctx.db.session() as session:
        used = spent_experiments(session, ctx.campaign_id) + open_experiments(session, ctx.campaign_id)
    return max(0, min(ctx.spec.budget.batch_size, ctx.spec.budget.experiments - used))


@dataclass(frozen=True)
class Recovery:
    cycle_id: int | None  # the unfinished cycle, if any
    needs_plan: bool  # it was interrupted before its experiments were written
    to_run: list[int]


def recover(ctx: CampaignContext) -> Recovery:
    """Bring a campaign interrupted mid-cycle back to a state the loop can continue from.

    Experiments that were dispatched or running are in doubt: a simulator keeps no log to ask, so they are
    marked abandoned (never fed to the model, not counted in the budget) and re-planned. Experiments that were
    planned or approved never left the database and run now; failed ones with retries left are retried.
    Returns the unfinished cycle (if any), whether it still needs planning, and the experiments to run in it.
    """
    max_attempts = 1 + ctx.spec.budget.max_retries
    with ctx.db.session() as session:
        for experiment in session.scalars(
            select(Experiment).where(
                Experiment.campaign_id == ctx.campaign_id, Experiment.state.in_(ExperimentState.IN_DOUBT)
            )
        ):
            move_experiment(session, experiment, ExperimentState.ABANDONED, detail=_in_doubt(session, experiment))
        cycle = session.scalar(
            select(Cycle)
            .where(Cycle.campaign_id == ctx.campaign_id, Cycle.stage != "done")
            .order_by(Cycle.index.desc())
            .limit(1)
        )
        if cycle is None:
            return Recovery(None, False, [])
        to_run = [
            e.id
            for e in cycle.experiments
            if e.state in (ExperimentState.PLANNED, ExperimentState.APPROVED)
            or (e.state == ExperimentState.FAILED and e.attempts < max_attempts)
        ]
        for experiment in cycle.experiments:
            if experiment.state == ExperimentState.PLANNED:
                move_experiment(session, experiment, ExperimentState.APPROVED, detail={"by": "policy:none"})
        add_event(
            session, ctx.campaign_id, "cycle", cycle.id, "resumed", detail={"stage": cycle.stage, "to_run": len(to_run)}
        )
        return Recovery(cycle.id, needs_plan=not cycle.experiments, to_run=to_run)


def _in_doubt(session: Any, experiment: Experiment) -> dict[str, Any]:
    """Why an interrupted experiment is abandoned, and, on a station, the last action its journal shows: a person
    must know whether a dispense was sent and never confirmed before the vial is reused."""
    last = session.scalar(
        select(Event)
        .where(
            Event.entity == "experiment",
            Event.entity_id == experiment.id,
            Event.kind.in_(("action-started", "action-done", "action-failed")),
        )
        .order_by(Event.id.desc())
        .limit(1)
    )
    if last is None:
        return {"reason": "in doubt after an interruption: the lab keeps no record to reconcile with"}
    step = last.detail or {}
    action = f"{step.get('instrument')}.{step.get('action')} (step {step.get('step')})"
    if last.kind == "action-started":
        return {
            "reason": f"in doubt after an interruption: {action} was sent and never confirmed; check the instrument",
            "unconfirmed_action": step,
        }
    return {"reason": f"interrupted after {action} {last.kind.removeprefix('action-')}", "last_action": step}


def finish_campaign(ctx: CampaignContext, reason: str) -> None:
    with ctx.db.session() as session:
        campaign = session.get_one(Campaign, ctx.campaign_id)
        for experiment in session.scalars(
            select(Experiment).where(
                Experiment.campaign_id == ctx.campaign_id,
                Experiment.state.in_((ExperimentState.PLANNED, ExperimentState.APPROVED)),
            )
        ):
            move_experiment(session, experiment, ExperimentState.ABANDONED, detail={"reason": reason})
        status = CampaignStatus.STOPPED if reason == "stopped by request" else CampaignStatus.COMPLETED
        set_campaign_status(session, campaign, status, reason=reason)
        campaign.runner = None


# --- helpers ---------------------------------------------------------------------------------------------------


def _enter_stage(session: Any, ctx: CampaignContext, cycle_id: int, stage: str) -> Cycle:
    cycle = session.get_one(Cycle, cycle_id)
    if cycle.stage != stage:
        add_event(session, ctx.campaign_id, "cycle", cycle.id, "state", from_state=cycle.stage, to_state=stage)
        cycle.stage = stage
    return cycle


def _observations(session: Any, ctx: CampaignContext) -> list[tuple[int, Observation]]:
    """Completed and infeasible experiments as the planner sees them, in campaign order, with their ids."""
    objective_names = [o.name for o in ctx.spec.objectives]
    rows = session.scalars(
        select(Experiment)
        .where(
            Experiment.campaign_id == ctx.campaign_id,
            Experiment.state.in_((ExperimentState.COMPLETED, ExperimentState.INFEASIBLE)),
        )
        .order_by(Experiment.seq)
    ).all()
    return [(row.id, observation_of(row, objective_names)) for row in rows]


def observation_of(experiment: Experiment, objective_names: Sequence[str]) -> Observation:
    """A finished experiment as the planner sees it: its last attempt's objective values, or infeasible."""
    if experiment.state == ExperimentState.INFEASIBLE:
        return Observation(parameters=experiment.parameters, values={}, feasible=False)
    latest = {m.name: m.value for m in experiment.measurements if m.attempt == experiment.attempts}
    return Observation(
        parameters=experiment.parameters, values={name: latest[name] for name in objective_names if name in latest}
    )


def data_hash(observed: list[tuple[int, Observation]], pending: Sequence[Experiment]) -> str:
    """The hash a planning decision records of the results and pending experiments it saw."""
    return planning_data_hash(
        [(i, o.parameters, o.values, o.feasible) for i, o in observed], [(e.id, e.parameters) for e in pending]
    )


def _best_so_far(session: Any, ctx: CampaignContext) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for objective in ctx.spec.objectives:
        rows = session.execute(
            select(Measurement.value, Experiment.seq)
            .join(Experiment, Measurement.experiment_id == Experiment.id)
            .where(
                Experiment.campaign_id == ctx.campaign_id,
                Experiment.state == ExperimentState.COMPLETED,
                Measurement.name == objective.name,
                Measurement.attempt == Experiment.attempts,
            )
        ).all()
        for value, seq in rows:
            if math.isfinite(value) and (
                objective.name not in best or objective.better(value, best[objective.name]["value"])
            ):
                best[objective.name] = {"value": value, "seq": seq}
    return best


def _improved(ctx: CampaignContext, best: dict[str, dict[str, Any]], previous: dict[str, Any] | None) -> bool:
    if not previous:
        return bool(best)
    return any(
        name in best and (name not in previous or o.better(best[name]["value"], previous[name]["value"]))
        for o in ctx.spec.objectives
        for name in [o.name]
    )


def _target_reached_by(session: Any, ctx: CampaignContext) -> int | None:
    """The first experiment whose measurements reach every objective's target (objectives without one ignored)."""
    targeted = [o for o in ctx.spec.objectives if o.target is not None]
    for experiment in session.scalars(
        select(Experiment)
        .where(Experiment.campaign_id == ctx.campaign_id, Experiment.state == ExperimentState.COMPLETED)
        .order_by(Experiment.seq)
    ):
        values = {m.name: m.value for m in experiment.measurements if m.attempt == experiment.attempts}
        if all(o.name in values and o.reached(values[o.name]) for o in targeted):
            return experiment.seq
    return None


def _outcome(experiment: Experiment, values: dict[str, float] | None = None) -> ExperimentOutcome:
    return ExperimentOutcome(experiment.id, experiment.seq, experiment.state, values or {}, experiment.error)


def _plain(point: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe values (numpy scalars become Python numbers)."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in point.items()}


__all__ = [
    "CampaignContext",
    "ExperimentOutcome",
    "PlanningError",
    "Recovery",
    "abduce",
    "deduce",
    "finish_campaign",
    "induce",
    "load_context",
    "next_batch_size",
    "recover",
    "run_experiment",
    "run_experiments",
    "start_cycle",
    "stop_reason",
]
