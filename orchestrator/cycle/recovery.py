"""A campaign's cycles from start to finish: opening a cycle, sizing its batch, continuing after a crash from
what the database says, and closing the campaign with its reason.

Recovery reads the database, never memory: experiments that were dispatched or running when the process died are
in doubt and are abandoned (with the last instrument action their journal shows) and re-planned; those that never
left the database run now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from instruments.station import PERSON
from orchestrator.campaign.runs import lease_lost
from orchestrator.cycle.context import CampaignContext, fence
from orchestrator.cycle.induce import open_experiments, spent_experiments
from orchestrator.people.notify import notify_end
from orchestrator.people.requests import answer, open_requests
from orchestrator.store.models import Campaign, CampaignStatus, Cycle, Event, Experiment, ExperimentState, RequestKind
from orchestrator.store.records import add_event, move_experiment, set_campaign_status

# Who answers a request that no person answered: the runner, when the work it stood for was abandoned.
RECOVERY = "peirce"
WITHDRAWN = "withdrawn"


def start_cycle(ctx: CampaignContext) -> int:
    """A new cycle (the next index), logged; returns its id. Fenced; and should two runners ever open the same
    index, the database's unique index refuses the second, which stops cleanly as a runner that lost its lease
    (the campaign is left to the other, neither failed nor finished)."""
    try:
        return _start_cycle(ctx)
    except IntegrityError:
        with ctx.db.session() as session:
            holder = session.scalar(select(Campaign.runner).where(Campaign.id == ctx.campaign_id))
        raise lease_lost(holder) from None


def _start_cycle(ctx: CampaignContext) -> int:
    with ctx.db.session() as session:
        fence(session, ctx)
        last = session.scalar(select(func.max(Cycle.index)).where(Cycle.campaign_id == ctx.campaign_id))
        cycle = Cycle(campaign_id=ctx.campaign_id, index=(last or 0) + 1, stage="abducing")
        session.add(cycle)
        session.flush()
        add_event(
            session, ctx.campaign_id, "cycle", cycle.id, "created", to_state="abducing", detail={"index": cycle.index}
        )
        return cycle.id


def next_batch_size(ctx: CampaignContext) -> int:
    """The spec's batch size, cut to what the budget has left after experiments spent or already planned."""
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
    planned or approved never left the database and run now; a failed one runs again only if its failure said it
    would be retried (the retry policy's verdict, recorded when it failed: a refused limit is never sent again).
    Returns the unfinished cycle (if any), whether it still needs planning, and the experiments to run in it.
    """
    with ctx.db.session() as session:
        fence(session, ctx)  # only the lease's holder may declare another's experiments in doubt
        with_people = {r.experiment_id: r for r in open_requests(session, ctx.campaign_id)}
        for experiment in session.scalars(
            select(Experiment).where(
                Experiment.campaign_id == ctx.campaign_id, Experiment.state.in_(ExperimentState.IN_DOUBT)
            )
        ):
            request = with_people.get(experiment.id)
            if request is not None and request.kind == RequestKind.RESULT:
                continue  # handed to a person, who enters its results: not in doubt, it waits
            if request is not None:  # a manual step of a station interrupted mid-protocol: the protocol is gone
                answer(session, request, by=RECOVERY, resolution=WITHDRAWN, note="the runner was interrupted")
            move_experiment(session, experiment, ExperimentState.ABANDONED, detail=in_doubt(session, experiment))
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
            if (e.state in (ExperimentState.PLANNED, ExperimentState.APPROVED) and e.id not in with_people)
            or (e.state == ExperimentState.FAILED and _was_to_be_retried(session, e))
        ]
        for experiment in cycle.experiments:
            # A planned experiment with no request open was planned before approval policies existed.
            if experiment.state == ExperimentState.PLANNED and experiment.id not in with_people:
                move_experiment(session, experiment, ExperimentState.APPROVED, detail={"by": "policy:none"})
        add_event(
            session, ctx.campaign_id, "cycle", cycle.id, "resumed", detail={"stage": cycle.stage, "to_run": len(to_run)}
        )
        return Recovery(cycle.id, needs_plan=not cycle.experiments, to_run=to_run)


def _was_to_be_retried(session: Any, experiment: Experiment) -> bool:
    """Whether the failure that left this experiment failed was to be retried, as its failure event recorded."""
    detail = session.scalar(
        select(Event.detail)
        .where(
            Event.entity == "experiment",
            Event.entity_id == experiment.id,
            Event.to_state == ExperimentState.FAILED,
        )
        .order_by(Event.id.desc())
        .limit(1)
    )
    return bool((detail or {}).get("will_retry"))


def in_doubt(session: Any, experiment: Experiment) -> dict[str, Any]:
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
    if last.kind == "action-started" and step.get("instrument") == PERSON:
        # A manual step: nothing was sent to an instrument; the person's entry, if any, came too late for this run.
        return {
            "reason": f"interrupted while step {step.get('step')} ({step.get('action')}) waited for a person",
            "last_action": step,
        }
    if last.kind == "action-started":
        return {
            "reason": f"in doubt after an interruption: {action} was sent and never confirmed; check the instrument",
            "unconfirmed_action": step,
        }
    return {"reason": f"interrupted after {action} {last.kind.removeprefix('action-')}", "last_action": step}


def pause_for_people(ctx: CampaignContext, reason: str) -> None:
    """The runner waited for people as long as the campaign allows: the campaign is left `waiting` with `reason`
    (what waits), its lease freed. Nothing is abandoned: `peirce resume` continues the same cycle."""
    with ctx.db.session() as session:
        fence(session, ctx)
        campaign = session.get_one(Campaign, ctx.campaign_id)
        set_campaign_status(session, campaign, CampaignStatus.WAITING, reason=reason)
        campaign.runner = None


def finish_campaign(ctx: CampaignContext, reason: str) -> None:
    """Close the campaign with `reason`: work not yet sent is abandoned, the runner's hold released. A reason that
    starts "stopped by" (a person's `peirce stop`, a signal) leaves it stopped, to be resumed; others complete it."""
    with ctx.db.session() as session:
        fence(session, ctx)
        campaign = session.get_one(Campaign, ctx.campaign_id)
        for experiment in session.scalars(
            select(Experiment).where(
                Experiment.campaign_id == ctx.campaign_id,
                Experiment.state.in_((ExperimentState.PLANNED, ExperimentState.APPROVED)),
            )
        ):
            for request in open_requests(session, ctx.campaign_id, experiment_id=experiment.id):
                answer(session, request, by=RECOVERY, resolution=WITHDRAWN, note=reason)
            move_experiment(session, experiment, ExperimentState.ABANDONED, detail={"reason": reason})
        status = CampaignStatus.STOPPED if reason.startswith("stopped by") else CampaignStatus.COMPLETED
        closed_before = campaign.status == status and campaign.stop_reason == reason  # a resume of a closed one
        set_campaign_status(session, campaign, status, reason=reason)
        campaign.runner = None
    if not closed_before:
        notify_end(ctx.db, ctx.campaign_id, ctx.spec, status, reason)  # after the commit: the news is in the database
