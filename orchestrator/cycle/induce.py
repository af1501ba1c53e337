"""Induction: take in a cycle's results (best so far, improvement, hypothesis credences), and decide whether the
campaign stops (budget, wall clock, target, no improvement, a person's request)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from orchestrator.cycle.context import CampaignContext, enter_stage
from orchestrator.cycle.observations import PENDING_STATES, improved, target_reached_by
from orchestrator.cycle.progress import CycleReport
from orchestrator.store.models import (
    Campaign,
    CampaignStatus,
    Cycle,
    Decision,
    Experiment,
    ExperimentState,
    Hypothesis,
    HypothesisStatus,
)
from orchestrator.store.queries import best_so_far, latest_best, observations
from orchestrator.store.records import add_event


def induce(ctx: CampaignContext, cycle_id: int, cycle_seconds: float = 0.0) -> CycleReport:
    """Take in the cycle's results: best so far, whether it improved, and whether a stop criterion is met.

    `cycle_seconds` is the cycle's active time, added to the campaign's (the wall-clock budget counts it)."""
    with ctx.db.session() as session:
        cycle = enter_stage(session, ctx, cycle_id, "inducing")
        campaign = session.get_one(Campaign, ctx.campaign_id)
        hypothesis_news = _induce_hypotheses(session, ctx, cycle)
        best = best_so_far(session, ctx.campaign_id, ctx.spec.objectives)
        previous = latest_best(session, ctx.campaign_id, before_cycle=cycle.index)
        better = improved(ctx.spec, best, previous)
        now = ctx.clock()
        cycle.best, cycle.improved = best, better
        cycle.stage, cycle.finished_at = "done", now
        campaign.active_seconds += cycle_seconds
        campaign.heartbeat_at = now
        add_event(
            session,
            ctx.campaign_id,
            "cycle",
            cycle.id,
            "state",
            from_state="inducing",
            to_state="done",
            detail={"best": best, "improved": better},
        )
        return CycleReport(
            campaign=ctx.name,
            cycle=cycle.index,
            spent=spent_experiments(session, ctx.campaign_id),
            budget=ctx.spec.budget.experiments,
            completed_in_cycle=sum(e.state == ExperimentState.COMPLETED for e in cycle.experiments),
            failed_in_cycle=sum(e.state == ExperimentState.FAILED for e in cycle.experiments),
            best=best,
            improved=better,
            stop_reason=stop_reason(session, ctx),
            warnings=[
                w
                for d in session.scalars(select(Decision).where(Decision.cycle_id == cycle_id))
                for w in d.warnings or []
            ],
            hypotheses=hypothesis_news,
        )


def _induce_hypotheses(session: Any, ctx: CampaignContext, cycle: Cycle) -> list[str]:
    """One line per hypothesis proposed this cycle, then one per hypothesis the cycle's results settled."""
    if not ctx.ledger.enabled:
        return []
    new = session.scalars(
        select(Hypothesis).where(Hypothesis.cycle_id == cycle.id, Hypothesis.status == HypothesisStatus.OPEN)
    ).all()
    news = [f"hypothesis {h.id} proposed ({h.source}): {h.statement}" for h in new]
    observed = observations(session, ctx.campaign_id, [o.name for o in ctx.spec.objectives])
    return news + ctx.ledger.induce(session, cycle_id=cycle.id, cycle_index=cycle.index, observed=observed)


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
        reached = target_reached_by(session, ctx.campaign_id, ctx.spec)
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
    """Experiments that used the lab's time (completed, failed, infeasible): what the budget counts."""
    return (
        session.scalar(
            select(func.count()).where(
                Experiment.campaign_id == campaign_id, Experiment.state.in_(ExperimentState.SPENT)
            )
        )
        or 0
    )


def open_experiments(session: Any, campaign_id: int) -> int:
    """Experiments planned or under way: budget already committed."""
    return (
        session.scalar(
            select(func.count()).where(Experiment.campaign_id == campaign_id, Experiment.state.in_(PENDING_STATES))
        )
        or 0
    )
