"""The few writes every stage shares: events, experiment state moves, campaign status, look-ups by name.

Each move of an experiment is written together with its Event in the caller's transaction; stages commit that
transaction before the act the row describes (write-ahead).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.errors import CampaignNotFound
from orchestrator.store.models import Campaign, Cycle, Event, Experiment, ExperimentState, Measurement


class IllegalTransition(RuntimeError):
    """A state move the experiment's life does not allow (a bug in the caller, never a user's error)."""


def add_event(
    session: Session,
    campaign_id: int,
    entity: str,
    entity_id: int | None,
    kind: str,
    *,
    from_state: str | None = None,
    to_state: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Event:
    event = Event(
        campaign_id=campaign_id,
        entity=entity,
        entity_id=entity_id,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        detail=detail,
    )
    session.add(event)
    return event


def move_experiment(
    session: Session, experiment: Experiment, to_state: str, *, detail: dict[str, Any] | None = None
) -> None:
    """Change an experiment's state and log the change, refusing moves its life does not allow."""
    from_state = experiment.state
    if to_state not in ExperimentState.ALLOWED[from_state]:
        raise IllegalTransition(f"experiment {experiment.seq}: {from_state} -> {to_state} is not allowed")
    experiment.state = to_state
    if to_state == ExperimentState.DISPATCHED:
        experiment.attempts += 1
    if to_state in (ExperimentState.FAILED, ExperimentState.ABANDONED, ExperimentState.INFEASIBLE) and detail:
        experiment.error = detail.get("reason")
    session.add(experiment)
    session.flush()
    add_event(
        session,
        experiment.campaign_id,
        "experiment",
        experiment.id,
        "state",
        from_state=from_state,
        to_state=to_state,
        detail={"seq": experiment.seq, "attempt": experiment.attempts, **(detail or {})},
    )


def set_campaign_status(
    session: Session,
    campaign: Campaign,
    status: str,
    *,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    previous = campaign.status
    campaign.status = status
    if reason is not None:
        campaign.stop_reason = reason
    session.add(campaign)
    session.flush()
    add_event(
        session,
        campaign.id,
        "campaign",
        campaign.id,
        "state",
        from_state=previous,
        to_state=status,
        detail={**({"reason": reason} if reason else {}), **(detail or {})},
    )


def find_campaign(session: Session, ref: str | int) -> Campaign:
    """A campaign by name, or by numeric id."""
    campaign = session.scalar(select(Campaign).where(Campaign.name == str(ref)))
    if campaign is None and str(ref).isdigit():
        campaign = session.get(Campaign, int(ref))
    if campaign is None:
        names = session.scalars(select(Campaign.name).order_by(Campaign.id)).all()
        known = f" (campaigns here: {', '.join(names)})" if names else " (this database has no campaigns)"
        raise CampaignNotFound(f"CAMPAIGN: no campaign '{ref}'{known}")
    return campaign


def count_by_state(session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Experiment.state, func.count()).where(Experiment.campaign_id == campaign_id).group_by(Experiment.state)
    ).all()
    return {state: n for state, n in rows}


def latest_best(session: Session, campaign_id: int, before_cycle: int | None = None) -> dict[str, Any]:
    """Best so far (objective -> {value, seq}) as recorded by the newest finished cycle, or {} if none."""
    query = select(Cycle.best).where(Cycle.campaign_id == campaign_id, Cycle.best.is_not(None))
    if before_cycle is not None:
        query = query.where(Cycle.index < before_cycle)
    return session.scalar(query.order_by(Cycle.index.desc()).limit(1)) or {}


def spent_count(states: dict[str, int]) -> int:
    """Experiments that used the lab, from `count_by_state`'s result."""
    return sum(states.get(s, 0) for s in ExperimentState.SPENT)


def prediction_errors(session: Session, campaign_id: int) -> dict[str, list[float]]:
    """Per objective, the standardised errors (measured − predicted mean) / predicted sd of every measured value
    that had a prediction: the model's track record on experiments it had not yet seen."""
    rows = session.execute(
        select(Measurement.name, Measurement.value, Measurement.predicted_mean, Measurement.predicted_std)
        .join(Experiment, Measurement.experiment_id == Experiment.id)
        .where(
            Experiment.campaign_id == campaign_id,
            Measurement.predicted_std.is_not(None),
            Measurement.predicted_std > 0,
        )
    ).all()
    errors: dict[str, list[float]] = {}
    for name, value, mean, std in rows:
        errors.setdefault(name, []).append((value - mean) / std)
    return errors


def best_with_parameters(session: Session, campaign_id: int) -> dict[str, dict[str, Any]]:
    """Best so far per objective (as `latest_best`) with the parameters of the experiment that reached it."""
    best = {}
    for name, entry in latest_best(session, campaign_id).items():
        experiment = session.scalar(
            select(Experiment).where(Experiment.campaign_id == campaign_id, Experiment.seq == entry["seq"])
        )
        best[name] = {**entry, "parameters": dict(experiment.parameters) if experiment else {}}
    return best
