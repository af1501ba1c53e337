"""The few writes every stage shares: events, experiment state moves, campaign status; and the look-up of a
campaign by name that every command starts from. Read-only questions are in `orchestrator.store.queries`.

Each move of an experiment is written together with its Event in the caller's transaction; stages commit that
transaction before the act the row describes (write-ahead).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.errors import CampaignNotFound
from orchestrator.store.models import Campaign, Dispatch, Event, Experiment, ExperimentState


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
    session: Session,
    experiment: Experiment,
    to_state: str,
    *,
    detail: dict[str, Any] | None = None,
    runner: str | None = None,
) -> None:
    """Change an experiment's state and log the change, refusing moves its life does not allow.

    A move to `dispatched` also writes the attempt's Dispatch row (by `runner`, the process sending it): the
    database refuses a second row for the same attempt, so an attempt cannot go to the lab twice."""
    from_state = experiment.state
    if to_state not in ExperimentState.ALLOWED[from_state]:
        raise IllegalTransition(f"experiment {experiment.seq}: {from_state} -> {to_state} is not allowed")
    experiment.state = to_state
    if to_state == ExperimentState.DISPATCHED:
        experiment.attempts += 1
        session.add(Dispatch(experiment_id=experiment.id, attempt=experiment.attempts, runner=runner))
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
