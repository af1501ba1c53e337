"""Deduction: the batch to run next, and the Decision that records how it was chosen.

Two parts, so replay can make the same choice again without a database:
- `plan_batch` (pure): the hypothesis tests already chosen for the batch, then the planner's own proposals for
  the rest, with any proposal in a forbidden region, or equal to a pending or rejected experiment, dropped;
- `deduce` (records): reads the inputs from the database, calls the pure parts, and writes the Decision, its
  model-state artifact and the experiments (planned, then approved by the policy or left to a person) before
  anything is dispatched. Experiments a person rejected are given to the planner as pending, so they never come
  back (unless a person allows their point again). The results of the campaigns the spec names as related are read
  with its own and given to the planner (`PlanningProblem.related`); the decision records their ids and hashes them
  with the rest, so replay reads the same rows again.

A decision's `model_state` keeps the planner's own fitted state and the orchestrator's choice of hypothesis tests
in separate fields (`records.decisions.DeductionState`: `{"planner": ..., "hypothesis_tests": ...}`), so only the
planner's state is handed back to the planner as its next warm start; decisions recorded before that separation
(one merged mapping) are read into the same two fields. Each test proposal names the hypothesis it tests.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select

from orchestrator.cycle.context import CampaignContext, enter_stage
from orchestrator.cycle.observations import RelatedObserved, data_hash, pending_experiments, related_observations
from orchestrator.ledger.hypotheses import TestPlan
from orchestrator.people.approval import apply_policy
from orchestrator.records.decisions import DeductionState, RelatedSeen, TestSelection
from orchestrator.records.provenance import derive_seed, library_versions, runtime_settings
from orchestrator.store.models import Decision, Experiment, ExperimentState
from orchestrator.store.queries import observations
from orchestrator.store.records import add_event
from planners.base import Observation, Plan, Planner, PlanningProblem, Proposal, RelatedResults
from planners.space import Point, Space, point_key


@dataclass(frozen=True)
class BatchPlan:
    """One batch: the proposals chosen to test hypotheses (first), then the planner's own."""

    tests: list[Proposal]
    planned: Plan  # the planner's answer, forbidden proposals already dropped

    @property
    def proposals(self) -> list[Proposal]:
        return [*self.tests, *self.planned.proposals]

    @property
    def planner_state(self) -> dict[str, Any]:
        return self.planned.model_state

    @property
    def warnings(self) -> list[str]:
        return self.planned.warnings


def plan_batch(
    problem: PlanningProblem,
    planner: Planner,
    observed: Sequence[Observation],
    pending: Sequence[Point],
    tests: Sequence[Proposal],
    batch_size: int,
    seed: int,
    warm: Mapping[str, Any] | None,
) -> BatchPlan:
    """The batch of `batch_size` experiments given the results, the experiments still pending and the hypothesis
    tests chosen for it: the planner fills the rest (seeing the tests as pending) from its warm start `warm`."""
    taken = [*pending, *(t.parameters for t in tests)]
    plan = planner.propose(problem, observed, taken, batch_size - len(tests), seed, warm_start=warm)
    return BatchPlan(list(tests), without_forbidden(problem.space, without_repeats(taken, plan)))


def with_related(problem: PlanningProblem, related: RelatedObserved) -> PlanningProblem:
    """The problem with the related campaigns' results for the planner (unchanged where there are none)."""
    if not related:
        return problem
    return replace(
        problem, related=tuple(RelatedResults(name, tuple(o for _, o in results)) for name, results in related)
    )


def without_repeats(pending: Sequence[Point], plan: Plan) -> Plan:
    """Drop proposals equal to a pending point: one already planned or under way, or one a person rejected (the
    cycle passes rejected experiments as pending, `observations.pending_experiments`). Planners of finite spaces
    never offer a pending point and a model never lands on one exactly; should one all the same, a rejected point
    must never come back, so it is dropped and the decision says so. Replay makes the same cut from the record."""
    if not pending:
        return plan
    seen = {point_key(point) for point in pending}
    kept = [p for p in plan.proposals if point_key(p.parameters) not in seen]
    if len(kept) == len(plan.proposals):
        return plan
    dropped = len(plan.proposals) - len(kept)
    notice = f"{dropped} proposal(s) repeated an experiment pending or rejected by a person and were dropped"
    return Plan(kept, model_state=plan.model_state, warnings=[*plan.warnings, notice])


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


def deduce(ctx: CampaignContext, cycle_id: int, batch_size: int) -> list[int]:
    """Choose a batch, record the Decision, and write each experiment as planned; then the approval policy
    approves it, or opens a request for a person to approve it (`people.approval`).

    Returns the ids of the experiments approved to run now. Nothing is dispatched here: the rows are committed
    first.
    """
    with ctx.db.session() as session:
        cycle = enter_stage(session, ctx, cycle_id, "deducing")
        observed = observations(session, ctx.campaign_id, [o.name for o in ctx.spec.objectives])
        related = related_observations(session, ctx.spec)
        pending_rows = pending_experiments(session, ctx.campaign_id)
        # A cycle planned again (the Python API's `ask(n)` asking for more before the results are in) draws anew.
        earlier = session.scalar(select(func.count()).where(Decision.cycle_id == cycle_id, Decision.stage == "deduce"))
        seed = derive_seed(ctx.spec.planner.seed, "deduce", cycle.index, *([earlier] if earlier else []))
        previous = session.scalar(
            select(Decision.model_state)
            .where(Decision.campaign_id == ctx.campaign_id, Decision.stage == "deduce")
            .order_by(Decision.id.desc())
            .limit(1)
        )
        started = time.perf_counter()
        pending = [row.parameters for row in pending_rows]
        tests = (
            ctx.ledger.plan_tests(session, observed=observed, pending=pending, batch_size=batch_size, seed=seed)
            if ctx.ledger.enabled
            else TestPlan([], {}, {})
        )
        batch = plan_batch(
            with_related(ctx.problem, related),
            ctx.planner,
            [o for _, o in observed],
            pending,
            tests.proposals,
            batch_size,
            seed,
            DeductionState.model_validate(previous).planner,
        )
        wall_time = time.perf_counter() - started
        decision = _record_decision(ctx, session, cycle, batch, tests, seed, observed, pending_rows, wall_time, related)
        created = _record_experiments(ctx, session, cycle_id, decision)
        if ctx.ledger.enabled:
            ctx.ledger.link_tests(session, observed=observed, seed=seed, experiments=created, chosen=tests.chosen)
        approved = apply_policy(session, ctx.spec.approval, created)
        cycle.stage = "running"
        return [experiment.id for experiment in approved]


def _record_decision(
    ctx: CampaignContext,
    session: Any,
    cycle: Any,
    batch: BatchPlan,
    tests: TestPlan,
    seed: int,
    observed: list[tuple[int, Observation]],
    pending_rows: Sequence[Experiment],
    wall_time: float,
    related: RelatedObserved,
) -> Decision:
    model_state = DeductionState(
        planner=batch.planner_state or None,
        hypothesis_tests=TestSelection.model_validate(tests.record) if tests.record else None,
        related=[RelatedSeen(campaign=name, observation_ids=[i for i, _ in results]) for name, results in related]
        or None,
    ).stored()
    proposals = [_proposal_record(p, tests.chosen.get(i)) for i, p in enumerate(batch.proposals)]
    # The fitted state is stored in the same transaction as the row that names it: both or neither.
    artifacts = {"model_state": ctx.db.artifacts.put(model_state, session)} if model_state else None
    decision = Decision(
        campaign_id=ctx.campaign_id,
        cycle_id=cycle.id,
        stage="deduce",
        planner=ctx.planner.name,
        planner_config=ctx.planner.config(),
        seed=seed,
        data_hash=data_hash(observed, pending_rows, related),
        observation_ids=[experiment_id for experiment_id, _ in observed],
        pending_ids=[row.id for row in pending_rows],
        proposals=proposals,
        versions={
            **library_versions(),
            **runtime_settings(),
            "device": batch.planner_state.get("device", "cpu"),
        },
        model_state=model_state,
        artifacts=artifacts,
        warnings=batch.warnings or None,
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
        detail={"cycle": cycle.index, "planner": ctx.planner.name, "proposals": len(proposals)},
    )
    for warning in batch.warnings:
        add_event(session, ctx.campaign_id, "decision", decision.id, "warning", detail={"message": warning})
    return decision


def _record_experiments(ctx: CampaignContext, session: Any, cycle_id: int, decision: Decision) -> list[Experiment]:
    """One experiment per proposal of the decision, planned (the approval policy is applied after)."""
    next_seq = (
        session.scalar(select(func.max(Experiment.seq)).where(Experiment.campaign_id == ctx.campaign_id)) or 0
    ) + 1
    created: list[Experiment] = []
    for offset, record in enumerate(decision.proposals):
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
        created.append(experiment)
    return created


def _proposal_record(proposal: Proposal, test: tuple[int, dict[str, Any], float] | None) -> dict[str, Any]:
    """A proposal as the decision records it (`records.decisions.PlannedProposal`); `test`: the hypothesis test it
    was chosen as, if any (hypothesis id, its prediction, expected information)."""
    return {
        "parameters": proposal.parameters,
        "predicted": {k: {"mean": v.mean, "std": v.std, "spread": v.spread} for k, v in proposal.predicted.items()},
        "rationale": proposal.rationale,
        "tests_hypothesis": None if test is None else test[0],
    }


def _plain(point: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe values (numpy scalars become Python numbers)."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in point.items()}
