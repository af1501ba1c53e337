"""The acts by which a person answers a proposal: approve it, reject it, edit it, or allow a rejected point again.

Plain functions on a `Database`: the CLI, the Python API and Prefect's form call these same functions, so an act is
the same record whichever way it came. Each act
- checks everything first (the person's name, the campaign, each experiment and every value) and refuses bad input
  with one `SpecError` naming the field at fault (exit status 2), before anything is written;
- then writes in one transaction: the approval request answered with `requests.answer` (a conditional update: of
  two people answering at once one wins, and the other gets `AlreadyAnswered` naming who answered first, with
  nothing of theirs written), the experiment moved, and events naming the person, the note or reason, and the
  rules that caught the proposal.

The person's name is required (`requests.check_person`); a rejection's reason is required too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from instruments.errors import InstrumentError
from instruments.limits import SafetyLimits
from instruments.station import ActionStep, substitute
from orchestrator.campaign.spec import CampaignSpec
from orchestrator.errors import SpecError
from orchestrator.lab.build import build_lab
from orchestrator.lab.station import StationAdapter, StationRuntime
from orchestrator.ledger.hypotheses import model_settings
from orchestrator.people.requests import AlreadyAnswered, answer, check_person, open_requests
from orchestrator.records.decisions import DeductionState
from orchestrator.records.events import Entity, EventKind
from orchestrator.store.database import Database
from orchestrator.store.models import (
    Campaign,
    Decision,
    Event,
    Experiment,
    ExperimentState,
    PersonRequest,
    RequestKind,
    utcnow,
)
from orchestrator.store.queries import observations
from orchestrator.store.records import add_event, find_campaign, move_experiment
from planners.base import PlanningProblem
from planners.calibration import spread, standardized_errors
from planners.space import point_key

ALL: Literal["all"] = "all"
"""`approve(db, campaign, ALL, …)`: every experiment of the campaign waiting for approval."""

# How a request's answer is recorded (`PersonRequest.resolution`).
APPROVED = "approved"
REJECTED = "rejected"
EDITED = "edited"


@dataclass(frozen=True)
class ActReport:
    """What an act did: the campaign, its status now (a `waiting` campaign continues with `peirce resume`), the
    experiments it answered (by seq), and for an edit the values and predictions before and after."""

    campaign: str
    status: str
    seqs: list[int]
    detail: dict[str, Any] = field(default_factory=dict)


def approve(
    db: Database,
    campaign_ref: str | int,
    seqs: Sequence[int] | Literal["all"],
    by: str | None,
    note: str | None = None,
) -> ActReport:
    """Approve experiments waiting for approval (by seq, or `ALL` of the campaign's): they run when the runner
    next looks (at once if it waits in its process; after `peirce resume` if the campaign is paused)."""
    person = check_person(by)
    with db.session() as session:
        campaign = find_campaign(session, campaign_ref)
        if seqs == ALL:
            waiting = _all_waiting(session, campaign)
        else:
            if not seqs:
                raise SpecError("SEQ", "name the experiments to approve (or all of them)")
            waiting = [_awaiting_approval(session, campaign, seq) for seq in dict.fromkeys(seqs)]
        for experiment, request in waiting:
            answer(session, request, by=person, resolution=APPROVED, note=_text(note))
            move_experiment(
                session, experiment, ExperimentState.APPROVED, detail=_answered(person, request, note=_text(note))
            )
        return ActReport(campaign.name, campaign.status, [experiment.seq for experiment, _ in waiting])


def reject(db: Database, campaign_ref: str | int, seq: int, by: str | None, reason: str | None) -> ActReport:
    """Reject an experiment waiting for approval: it never reaches the lab, is never fed to the model, does not
    count against the budget, and its point is not proposed again unless a person allows it (`allow`)."""
    person = check_person(by)
    why = _text(reason)
    if why is None:
        raise SpecError("--reason", "say why the experiment is rejected (it is recorded with the rejection)")
    with db.session() as session:
        campaign = find_campaign(session, campaign_ref)
        experiment, request = _awaiting_approval(session, campaign, seq)
        answer(session, request, by=person, resolution=REJECTED, note=why)
        move_experiment(session, experiment, ExperimentState.REJECTED, detail=_answered(person, request, reason=why))
        return ActReport(campaign.name, campaign.status, [experiment.seq])


def edit(
    db: Database,
    campaign_ref: str | int,
    seq: int,
    changes: Mapping[str, Any],
    by: str | None,
    note: str | None = None,
) -> ActReport:
    """Replace some of the parameters of an experiment waiting for approval by a person's values, and approve it.

    An edit approves the experiment (its request is answered "edited"): the person chose the point knowingly, so
    it is not put in front of a person again, whatever rule caught the planner's proposal. The planner's values are
    kept in `Experiment.original_parameters` and both are in the event. The edited point must pass every limit a
    proposal passes: the space's bounds, values and levels, the linear constraints, the safety rules' forbidden
    regions, the lab's table of points (a lookup campaign) and, on a station, each instrument's declared argument
    ranges and the campaign's safety limits, per action and summed over the experiment, checked as the drivers
    check them before sending (nothing is sent here). The prediction is made again for the edited point, by the
    campaign's model fitted on its completed results (none under a planner that predicts nothing, or with fewer
    than two results)."""
    person = check_person(by)
    if not changes:
        raise SpecError("name=value", "give at least one parameter to change, as name=value")
    with db.session() as session:
        campaign = find_campaign(session, campaign_ref)
        name, campaign_id = campaign.name, campaign.id
        spec = CampaignSpec.model_validate(campaign.spec)
        experiment, request = _awaiting_approval(session, campaign, seq)
        proposed, decision_id = dict(experiment.parameters), experiment.decision_id
    point = {**proposed, **_coerced(spec, changes)}
    if point_key(point) == point_key(proposed):
        raise SpecError("name=value", f"these are the values proposed for #{seq}; to run it as proposed, approve it")
    lab = build_lab(spec)
    problem = spec.problem(candidates=lab.candidates)
    _check_point(spec, problem, lab, point, changed=[k for k in changes])
    predicted = _prediction(db, spec, problem, campaign_id, decision_id, point)
    unpredicted = None
    if predicted is None:
        bayesian = spec.planner.kind == "bayesian"
        unpredicted = "the model needs two results" if bayesian else f"the {spec.planner.kind} planner predicts nothing"
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        experiment, request = _awaiting_approval(session, campaign, seq)
        answer(session, request, by=person, resolution=EDITED, note=_text(note))
        original, predicted_before = dict(experiment.parameters), experiment.predicted
        experiment.original_parameters = original
        experiment.parameters = point
        experiment.predicted = predicted
        session.flush()
        changed = {k: [original.get(k), point[k]] for k in point if point[k] != original.get(k)}
        add_event(
            session,
            campaign_id,
            Entity.EXPERIMENT,
            experiment.id,
            EventKind.EDITED,
            detail={
                "seq": seq,
                "by": person,
                **({"note": _text(note)} if _text(note) else {}),
                "original": original,
                "parameters": point,
                "changed": changed,
                "predicted_before": predicted_before,
                "predicted": predicted,
                "reasons": request.detail.get("reasons", []),
            },
        )
        move_experiment(
            session,
            experiment,
            ExperimentState.APPROVED,
            detail={**_answered(person, request, note=_text(note)), "edited": sorted(changed)},
        )
        return ActReport(
            name,
            campaign.status,
            [seq],
            {
                "original": original,
                "parameters": point,
                "changed": changed,
                "predicted_before": predicted_before,
                "predicted": predicted,
                "no_prediction": unpredicted,
            },
        )


def allow(db: Database, campaign_ref: str | int, seq: int, by: str | None, note: str | None = None) -> ActReport:
    """Lift a rejection's ban: the rejected experiment stays rejected (it never runs), but its point may be proposed
    again (planners no longer see it as pending). Allowed once: a second allow is refused, naming who allowed it."""
    person = check_person(by)
    with db.session() as session:
        campaign = find_campaign(session, campaign_ref)
        experiment = _experiment(session, campaign, seq)
        # A write first, on the experiment's row: SQLite's write lock, PostgreSQL's row lock. Two allows at once are
        # then one after the other, and the second reads the first's event below.
        session.execute(
            update(Experiment)
            .where(Experiment.id == experiment.id)
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.refresh(experiment)
        if experiment.state != ExperimentState.REJECTED:
            raise SpecError("SEQ", f"experiment #{seq} is {experiment.state}; only a rejected experiment is allowed")
        earlier = session.scalar(
            select(Event.detail)
            .where(
                Event.campaign_id == campaign.id,
                Event.entity == Entity.EXPERIMENT,
                Event.entity_id == experiment.id,
                Event.kind == EventKind.ALLOWED,
            )
            .limit(1)
        )
        if earlier is not None:
            raise AlreadyAnswered(f"experiment #{seq} was already allowed again by {(earlier or {}).get('by')}")
        add_event(
            session,
            campaign.id,
            Entity.EXPERIMENT,
            experiment.id,
            EventKind.ALLOWED,
            detail={
                "seq": seq,
                "by": person,
                **({"note": _text(note)} if _text(note) else {}),
                "parameters": experiment.parameters,
            },
        )
        return ActReport(campaign.name, campaign.status, [seq])


# --- finding what waits --------------------------------------------------------------------------------------------


def _experiment(session: Session, campaign: Campaign, seq: int) -> Experiment:
    experiment = session.scalar(select(Experiment).where(Experiment.campaign_id == campaign.id, Experiment.seq == seq))
    if experiment is None:
        raise SpecError("SEQ", f"no experiment #{seq} in campaign '{campaign.name}'")
    return experiment


def _awaiting_approval(session: Session, campaign: Campaign, seq: int) -> tuple[Experiment, PersonRequest]:
    """Experiment #`seq` and its open approval request; refused (one line) if it does not wait for approval."""
    experiment = _experiment(session, campaign, seq)
    requests = open_requests(session, campaign.id, [RequestKind.APPROVAL], experiment_id=experiment.id)
    if experiment.state == ExperimentState.PLANNED and requests:
        return experiment, requests[0]
    answered = session.scalar(
        select(PersonRequest)
        .where(
            PersonRequest.experiment_id == experiment.id,
            PersonRequest.kind == RequestKind.APPROVAL,
            PersonRequest.resolved_at.is_not(None),
        )
        .order_by(PersonRequest.id.desc())
        .limit(1)
    )
    if answered is not None:
        raise AlreadyAnswered(
            f"approval request for experiment #{seq} was already answered ({answered.resolution}) by "
            f"{answered.resolved_by}"
        )
    raise SpecError("SEQ", f"experiment #{seq} is {experiment.state}, not waiting for approval")


def _all_waiting(session: Session, campaign: Campaign) -> list[tuple[Experiment, PersonRequest]]:
    waiting = [
        (session.get_one(Experiment, request.experiment_id), request)
        for request in open_requests(session, campaign.id, [RequestKind.APPROVAL])
        if request.experiment_id is not None
    ]
    if not waiting:
        last = session.scalar(
            select(PersonRequest)
            .where(
                PersonRequest.campaign_id == campaign.id,
                PersonRequest.kind == RequestKind.APPROVAL,
                PersonRequest.resolved_at.is_not(None),
            )
            .order_by(PersonRequest.resolved_at.desc(), PersonRequest.id.desc())
            .limit(1)
        )
        answered = (
            ""
            if last is None
            else f" (the last request, for #{last.detail.get('seq')}, was answered ({last.resolution}) by "
            f"{last.resolved_by})"
        )
        raise SpecError("SEQ", f"nothing in campaign '{campaign.name}' waits for approval{answered}")
    return sorted(waiting, key=lambda pair: pair[0].seq)


def _answered(person: str, request: PersonRequest, **said: str | None) -> dict[str, Any]:
    """The detail of the move an answer makes: who, what they said, and why a person was asked."""
    return {
        "by": person,
        **{key: value for key, value in said.items() if value},
        "request": request.id,
        "reasons": request.detail.get("reasons", []),
    }


def _text(value: str | None) -> str | None:
    text = (value or "").strip()
    return text or None


# --- an edited point ---------------------------------------------------------------------------------------------


def _coerced(spec: CampaignSpec, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The person's values, each as its parameter's type and checked against its bounds, values or levels."""
    parameters = {p.name: p for p in spec.space}
    out: dict[str, Any] = {}
    for name, raw in changes.items():
        parameter = parameters.get(name)
        if parameter is None:
            raise SpecError(name, f"'{name}' is not a parameter (parameters: {', '.join(parameters)})")
        out[name] = _value(parameter, raw)
    return out


def _value(parameter: Any, raw: Any) -> Any:
    name = parameter.name
    text = raw.strip() if isinstance(raw, str) else raw
    if not parameter.is_numeric:
        level = str(text)
        if level not in parameter.values:
            raise SpecError(name, f"'{level}' is not one of {name}'s values ({', '.join(parameter.values)})")
        return level
    try:
        if isinstance(text, bool):
            raise ValueError
        number = float(text)
    except (TypeError, ValueError):
        raise SpecError(name, f"{str(text)[:40]!r} is not a number ({name} is {parameter.type})") from None
    if not math.isfinite(number):
        raise SpecError(name, f"{text!r} is not a finite number")
    if parameter.type == "integer":
        if not number.is_integer():
            raise SpecError(name, f"{number:g} is not a whole number ({name} is integer)")
        number = int(number)
    if parameter.type == "discrete":
        listed = [v for v in parameter.values if math.isclose(number, v, rel_tol=1e-9, abs_tol=1e-12)]
        if not listed:
            shown = ", ".join(f"{v:g}" for v in parameter.values)
            raise SpecError(name, f"{number:g} is not one of {name}'s values ({shown})")
        return listed[0]
    low, high = parameter.bounds
    if not low <= number <= high:
        raise SpecError(name, f"{number:g} is outside {name}'s bounds [{low:g}, {high:g}]")
    return number


def _check_point(
    spec: CampaignSpec, problem: PlanningProblem, lab: Any, point: dict[str, Any], changed: list[str]
) -> None:
    """Every limit a proposal passes, for the edited point; the first it breaks as one SpecError."""
    where = ", ".join(changed)
    for i, mixture in enumerate(spec.mixtures):
        if not mixture.satisfied_by(point):
            value = sum(float(point[n]) for n in mixture.parameters)
            raise SpecError(f"mixtures[{i}]", f"the edited point breaks {mixture.describe()} (it gives {value:.12g})")
    for i, constraint in enumerate(spec.constraints):
        if not constraint.satisfied_by(point):
            value = sum(c * float(point[n]) for n, c in constraint.coefficients.items())
            raise SpecError(
                f"constraints[{i}]", f"the edited point breaks {constraint.describe()} (it gives {value:g})"
            )
    for region in problem.space.exclusions:
        if region.holds(point):
            raise SpecError(
                where, f"the edited point lies in a forbidden region of the safety rules: {region.describe()}"
            )
    if lab.candidates is not None and point_key(point) not in {point_key(c) for c in lab.candidates}:
        raise SpecError(where, "the edited point is not one the lab can run (not a row of its table)")
    if isinstance(lab, StationAdapter):
        refused = station_refusal(lab.station, point)
        if refused is not None:
            raise SpecError(where, refused)


def station_refusal(station: StationRuntime, point: Mapping[str, Any]) -> str | None:
    """Why the station would refuse `point` before sending anything, or None: each action's arguments bound and
    checked as `Driver.execute` checks them (the driver's declared argument types and device range, then the
    campaign's safety limits, the per-experiment sums counted over the protocol). Connects nothing."""
    limits = {
        name: SafetyLimits.from_mapping({k: v.model_dump() for k, v in instrument.limits.items()})
        for name, instrument in station.spec.instruments.items()
    }
    for index, step in enumerate(station.protocol):
        if not isinstance(step, ActionStep):
            continue  # a wait or a person's step sends nothing to check
        arguments = {name: substitute(value, point) for name, value in step.args.items()}
        try:
            bound = station.driver_classes[step.instrument].action(step.action).bind(arguments)
            limits[step.instrument].check(step.instrument, step.action, bound)
        except InstrumentError as exc:
            return f"lab.protocol[{index}] ({step.instrument}.{step.action}) would be refused: {exc.message}"
        limits[step.instrument].commit(step.action, bound)
    return None


def _prediction(
    db: Database,
    spec: CampaignSpec,
    problem: PlanningProblem,
    campaign_id: int,
    decision_id: int | None,
    point: dict[str, Any],
) -> dict[str, dict[str, float]] | None:
    """The campaign's model's prediction at `point` (objective -> mean, std), fitted on the completed results with
    the seed and warm start of the decision that proposed the experiment; None where no model predicts."""
    if spec.planner.kind != "bayesian":
        return None  # a baseline planner predicts nothing; its experiments carry no prediction either
    with db.session() as session:
        observed = [o for _, o in observations(session, campaign_id, [o.name for o in spec.objectives])]
        decision = session.get(Decision, decision_id) if decision_id is not None else None
        seed = decision.seed if decision is not None else spec.planner.seed
        warm = DeductionState.model_validate(decision.model_state).planner if decision is not None else None
    # Imported here: torch and BoTorch load only when an edit needs a prediction.
    from planners.bo.posterior import fit_surrogate

    surrogate = fit_surrogate(problem, observed, model_settings(spec.planner), warm, seed)
    if surrogate is None:
        return None
    predicted = {}
    for objective in spec.objectives:
        # Stated as the planner states its own proposals: a measurement's sd (the latent sd and the noise) times
        # the campaign's spread factor, so the edited experiment's record is calibrated like any other.
        mean, std = surrogate.predict(objective.name, [point])
        factor = spread(standardized_errors(observed, objective.name))
        measured_std = math.sqrt(float(std[0]) ** 2 + surrogate.noise_variance(objective.name)) * factor
        predicted[objective.name] = {"mean": float(mean[0]), "std": measured_std, "spread": factor}
    return predicted
