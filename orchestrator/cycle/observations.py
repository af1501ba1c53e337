"""Finished experiments as the cycle reads them: the planner's observations (and those of related campaigns), the
data hash a decision records, whether a cycle improved on the best so far (`store.queries.best_so_far`), and
whether a target was reached.

One definition each, shared by the stages and by replay (which must see a decision's inputs exactly as the stage
that made it did).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select

from orchestrator.campaign.related import related_campaign
from orchestrator.campaign.spec import CampaignSpec
from orchestrator.records.decisions import RelatedSeen
from orchestrator.records.events import Entity, EventKind
from orchestrator.records.provenance import planning_data_hash
from orchestrator.store.models import Event, Experiment, ExperimentState
from orchestrator.store.queries import Observed, observation_of, observations
from planners.base import Observation

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


RelatedObserved = list[tuple[str, Observed]]
"""Each related campaign's name and its results as the planner sees them (`related_observations`)."""


def data_hash(observed: Observed, pending: Sequence[Experiment], related: Sequence[tuple[str, Observed]] = ()) -> str:
    """The hash a planning decision records of the results, pending experiments and related results it saw."""
    return planning_data_hash(
        _rows(observed),
        [(e.id, e.parameters) for e in pending],
        [(name, _rows(results)) for name, results in related],
    )


def _rows(observed: Observed) -> list[tuple[int, Any, Any, bool]]:
    return [(i, o.parameters, o.values, o.feasible) for i, o in observed]


def related_observations(session: Any, spec: CampaignSpec) -> RelatedObserved:
    """The completed and infeasible experiments of each campaign `spec.related` names, in its order, as this
    campaign's planner sees them: objective values of this campaign's objectives (matched by name), without the
    predictions made for them (their track record is the other campaign's, not this planner's)."""
    names = [o.name for o in spec.objectives]
    out: RelatedObserved = []
    for i in range(len(spec.related)):
        campaign = related_campaign(session, spec, i)
        out.append((campaign.name, [(j, _as_related(o)) for j, o in observations(session, campaign.id, names)]))
    return out


def related_seen(session: Any, spec: CampaignSpec, seen: Sequence[RelatedSeen]) -> RelatedObserved | str:
    """The related results a decision recorded (`DeductionState.related`) read again by their ids, as
    `related_observations` gave them; or why they cannot be (named)."""
    names = [o.name for o in spec.objectives]
    out: RelatedObserved = []
    for entry in seen:
        rows = {
            e.id: e for e in session.scalars(select(Experiment).where(Experiment.id.in_(entry.observation_ids))).all()
        }
        missing = [i for i in entry.observation_ids if i not in rows]
        if missing:
            return f"experiments {missing} of related campaign '{entry.campaign}' are not in the database"
        out.append((entry.campaign, [(i, _as_related(observation_of(rows[i], names))) for i in entry.observation_ids]))
    return out


def _as_related(observation: Observation) -> Observation:
    return Observation(parameters=observation.parameters, values=observation.values, feasible=observation.feasible)


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
