"""Finished experiments as the cycle reads them: the planner's observations, the data hash a decision records,
whether a cycle improved on the best so far (`store.queries.best_so_far`), and whether a target was reached.

One definition each, shared by the stages and by replay (which must see a decision's inputs exactly as the stage
that made it did).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select

from orchestrator.campaign.spec import CampaignSpec
from orchestrator.records.events import Entity, EventKind
from orchestrator.records.provenance import planning_data_hash
from orchestrator.store.models import Event, Experiment, ExperimentState
from orchestrator.store.queries import Observed

# Experiments that may still reach the lab: the planner must not propose them again.
PENDING_STATES = (
    ExperimentState.PLANNED,
    ExperimentState.APPROVED,
    ExperimentState.DISPATCHED,
    ExperimentState.RUNNING,
)


def pending_experiments(session: Any, campaign_id: int) -> list[Experiment]:
    """Experiments planned or under way, and those a person rejected (unless a person allowed the point again), in
    campaign order. The planner is given them all as pending: a finite space never offers a pending point and a
    model treats one as being measured already, so a rejected point is not proposed again. (A rejected experiment
    is not counted against the budget, nor fed to the model: `PENDING_STATES` and the observations leave it out.)"""
    allowed = select(Event.entity_id).where(
        Event.campaign_id == campaign_id, Event.entity == Entity.EXPERIMENT, Event.kind == EventKind.ALLOWED
    )
    return list(
        session.scalars(
            select(Experiment)
            .where(
                Experiment.campaign_id == campaign_id,
                or_(
                    Experiment.state.in_(PENDING_STATES),
                    (Experiment.state == ExperimentState.REJECTED) & Experiment.id.not_in(allowed),
                ),
            )
            .order_by(Experiment.seq)
        ).all()
    )


def data_hash(observed: Observed, pending: Sequence[Experiment]) -> str:
    """The hash a planning decision records of the results and pending experiments it saw."""
    return planning_data_hash(
        [(i, o.parameters, o.values, o.feasible) for i, o in observed], [(e.id, e.parameters) for e in pending]
    )


def improved(spec: CampaignSpec, best: dict[str, dict[str, Any]], previous: dict[str, Any] | None) -> bool:
    """Whether `best` betters the best before this cycle on any objective (the first result always does)."""
    if not previous:
        return bool(best)
    return any(
        o.name in best and (o.name not in previous or o.better(best[o.name]["value"], previous[o.name]["value"]))
        for o in spec.objectives
    )


def target_reached_by(session: Any, campaign_id: int, spec: CampaignSpec) -> int | None:
    """The seq of the first experiment whose measurements reach every objective's target (objectives without one
    are ignored), or None."""
    targeted = [o for o in spec.objectives if o.target is not None]
    for experiment in session.scalars(
        select(Experiment)
        .where(Experiment.campaign_id == campaign_id, Experiment.state == ExperimentState.COMPLETED)
        .order_by(Experiment.seq)
    ):
        values = {m.name: m.value for m in experiment.measurements if m.attempt == experiment.attempts}
        if all(o.name in values and o.reached(values[o.name]) for o in targeted):
            return experiment.seq
    return None
