"""Manual steps of a station protocol: the runner hands one step to a person and waits; the person enters its number.

`await_step` is what a station runs at a manual step (given to it as the `ask_person` callback, through the lab
adapter): it opens a STEP request about the experiment and reads the database until the request is answered. The
runner's heartbeat keeps its lease meanwhile, however long the person takes. It ends three ways:
- a person entered the value (`enter_step`, from `peirce tell CAMPAIGN SEQ mass_mg=12.3 --by NAME`): the station
  goes on with it, and journals it as an action of the instrument "person", naming who entered it;
- a person said the step could not be done (`peirce tell … --not-run REASON`), or
- the campaign was asked to stop (`peirce stop`, SIGTERM): the step is not done (`StepNotDone`), and the experiment
  ends abandoned with the reason, its request withdrawn (`cycle.experiment`). A protocol cannot pause half-way and
  resume in another process, so a stop is the end of that attempt; nothing about the science is concluded from it.

`enter_step` answers the request with the value in its detail (`detail["value"]`), in one transaction with an event
naming who entered it; the same value entered again changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from instruments.station import ManualStep, PersonEntry, StepNotDone
from orchestrator.errors import SpecError
from orchestrator.people.requests import answer, check_person, open_request, open_requests
from orchestrator.people.results import ENTERED, NOT_RUN, finite_number
from orchestrator.records.events import EventKind
from orchestrator.store.database import Database
from orchestrator.store.models import Campaign, CampaignStatus, Experiment, PersonRequest, RequestKind
from orchestrator.store.records import add_event, find_campaign

POLL_S = 0.25  # how often a station waiting on a person reads the database

Check = Callable[[Session], None]


def await_step(
    db: Database,
    experiment_id: int,
    index: int,
    step: ManualStep,
    text: str,
    *,
    attempt: int,
    check: Check | None = None,
    poll_s: float = POLL_S,
) -> PersonEntry:
    """Open a STEP request for protocol step `index` of the experiment (`text`: the step as the person reads it) and
    wait until it is answered. `check` runs in every transaction (the runner's fence: a runner that lost its lease
    stops waiting). Raises `StepNotDone` when the person says it cannot be done or the campaign is asked to stop."""
    with db.session() as session:
        if check is not None:
            check(session)
        experiment = session.get_one(Experiment, experiment_id)
        detail = {
            "seq": experiment.seq,
            "attempt": attempt,
            "step": index,
            "instructions": text,
            "outcome": step.outcome,
            "unit": step.unit,
        }
        request_id = open_request(session, experiment, RequestKind.STEP, detail).id
    while True:
        with db.session() as session:
            if check is not None:
                check(session)
            request = session.get_one(PersonRequest, request_id)
            if request.resolved_at is not None:
                if request.resolution == ENTERED:
                    return PersonEntry(float(request.detail["value"]), str(request.resolved_by))
                raise StepNotDone(
                    f"step {index} ({text}) not done: {request.note or request.resolution} "
                    f"({request.resolution} by {request.resolved_by})",
                    instrument="person",
                )
            campaign = session.get_one(Campaign, request.campaign_id)
            if campaign.status == CampaignStatus.STOPPING:
                raise StepNotDone(
                    f"{campaign.stop_reason or 'stopped'} while step {index} ({text}) waited for a person",
                    instrument="person",
                )
        time.sleep(poll_s)


def is_step_entry(session: Session, campaign_id: int, seq: int, names: set[str], not_run: bool) -> bool:
    """Whether what a person tells about experiment `seq` is for a manual step rather than for its results: a step
    of it waits, or it was asked for a step before and the names are that step's (the same entry given again), or
    it says "not done" and the experiment waits for no results."""
    requests = session.execute(
        select(PersonRequest.kind, PersonRequest.resolved_at, PersonRequest.detail)
        .join(Experiment, Experiment.id == PersonRequest.experiment_id)
        .where(PersonRequest.campaign_id == campaign_id, Experiment.seq == seq)
    ).all()
    steps = [(resolved_at, detail or {}) for kind, resolved_at, detail in requests if kind == RequestKind.STEP]
    if not steps:
        return False
    if any(resolved_at is None for resolved_at, _ in steps):
        return True
    if not_run:
        return not any(kind == RequestKind.RESULT and resolved_at is None for kind, resolved_at, _ in requests)
    return names <= {str(detail.get("outcome")) for _, detail in steps}


def enter_step(
    db: Database,
    campaign_ref: str | int,
    seq: int,
    values: Mapping[str, Any],
    *,
    by: str | None,
    source: str,
    not_run: str | None = None,
) -> str:
    """Enter the number of the manual step experiment `seq` waits on (or say it could not be done); returns what
    was done: "entered", "not-run" or "unchanged" (the same value again). Raises SpecError naming the field."""
    person = check_person(by)
    with db.session() as session:
        campaign = find_campaign(session, campaign_ref)
        experiment = session.scalar(
            select(Experiment).where(Experiment.campaign_id == campaign.id, Experiment.seq == seq)
        )
        if experiment is None:
            raise SpecError("SEQ", f"no experiment #{seq} in campaign '{campaign.name}'")
        waiting = open_requests(session, campaign.id, [RequestKind.STEP], experiment_id=experiment.id)
        if not waiting:
            return _entered_before(session, experiment, values, not_run)
        request = waiting[0]
        outcome, unit = str(request.detail.get("outcome")), str(request.detail.get("unit") or "")
        step = f"step {request.detail.get('step')} of #{seq} ({request.detail.get('instructions')})"
        if not_run is not None:
            reason = not_run.strip()
            if not reason:
                raise SpecError("--not-run", "say why the step could not be done")
            if values:
                raise SpecError("VALUES", "give either values or --not-run, not both")
            answer(session, request, by=person, resolution=NOT_RUN, note=reason)
            _event(session, experiment, request, by=person, source=source, reason=reason)
            return NOT_RUN
        value = _step_value(values, outcome, unit, step)
        answer(session, request, by=person, resolution=ENTERED)
        request.detail = {**request.detail, "value": value, "source": source}
        _event(session, experiment, request, by=person, source=source, value=value)
        return ENTERED


def _step_value(values: Mapping[str, Any], outcome: str, unit: str, step: str) -> float:
    wanted = f"{outcome}=NUMBER" + (f" (in {unit})" if unit else "")
    if set(values) != {outcome}:
        given = ", ".join(values) or "nothing"
        raise SpecError("VALUES", f"{step} waits for {wanted}; got {given}")
    return finite_number(values[outcome], outcome)


def _entered_before(session: Session, experiment: Experiment, values: Mapping[str, Any], not_run: str | None) -> str:
    """No step waits: the same entry given again (the last step answered, with this value) changes nothing."""
    last = session.scalar(
        select(PersonRequest)
        .where(PersonRequest.experiment_id == experiment.id, PersonRequest.kind == RequestKind.STEP)
        .order_by(PersonRequest.id.desc())
        .limit(1)
    )
    if last is not None and last.resolution == ENTERED and not_run is None:
        outcome = str(last.detail.get("outcome"))
        if set(values) == {outcome}:
            value = _step_value(values, outcome, str(last.detail.get("unit") or ""), f"#{experiment.seq}")
            if value == last.detail.get("value"):
                return "unchanged"
    if last is not None and last.resolution == NOT_RUN and not_run is not None and not_run.strip() == last.note:
        return "unchanged"
    shown = f" (the last one was {last.resolution} by {last.resolved_by})" if last is not None else ""
    raise SpecError("SEQ", f"experiment #{experiment.seq} has no manual step waiting{shown}")


def _event(
    session: Session, experiment: Experiment, request: PersonRequest, *, by: str, source: str, **what: Any
) -> None:
    detail = {
        "seq": experiment.seq,
        "step": request.detail.get("step"),
        "instructions": request.detail.get("instructions"),
        "outcome": request.detail.get("outcome"),
        "unit": request.detail.get("unit"),
        "by": by,
        "source": source,
        **what,
    }
    add_event(session, experiment.campaign_id, "experiment", experiment.id, EventKind.STEP_ENTERED, detail=detail)
