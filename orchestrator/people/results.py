"""Results entered by a person: for an experiment handed to a person (a manual lab, the Python API's `ask`), its
measured values, or that it could not be run and why.

Every entry of a call is checked before anything is written, and all of them are written in one transaction: a bad
row leaves the database as it was, with one line naming the row and the field at fault. Entering the same values
again changes nothing (a results file entered twice is harmless); other values for an experiment that already has
results are refused. Two people entering results for the same experiment at once: one wins, the other is told.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.campaign.spec import CampaignSpec
from orchestrator.errors import SpecError
from orchestrator.people.requests import answer, check_person, open_requests
from orchestrator.store.database import Database
from orchestrator.store.models import Campaign, Experiment, ExperimentState, Measurement, RequestKind
from orchestrator.store.records import find_campaign, move_experiment

ENTERED = "entered"
NOT_RUN = "not-run"


@dataclass(frozen=True)
class ResultEntry:
    """One experiment's results as a person gave them. `where` names the entry in messages ("row 3", "SEQ 12")."""

    seq: int
    values: Mapping[str, Any] = field(default_factory=dict)  # objective -> value (a number; text is parsed)
    units: Mapping[str, str] = field(default_factory=dict)  # objective -> the unit the person wrote, if any
    not_run: str | None = None  # the experiment could not be run: why
    where: str = ""


@dataclass(frozen=True)
class EntryReport:
    """What a call did, by experiment seq."""

    entered: list[int] = field(default_factory=list)
    not_run: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)  # the same values were already recorded


def enter_results(
    db: Database, campaign_ref: str | int, entries: Sequence[ResultEntry], *, by: str | None, source: str
) -> EntryReport:
    """Record `entries` for the campaign, by person `by`, from `source` (cli, csv file name, python-api).

    Raises SpecError (exit 2) naming the entry and field at fault, before anything is written."""
    person = check_person(by)
    with db.session() as session:
        campaign = find_campaign(session, campaign_ref)
        spec = CampaignSpec.model_validate(campaign.spec)
        report = EntryReport()
        seen: dict[int, str] = {}
        for entry in entries:
            where = entry.where or f"SEQ {entry.seq}"
            if entry.seq in seen:
                raise SpecError(f"{where}: seq", f"experiment #{entry.seq} is also entered at {seen[entry.seq]}")
            seen[entry.seq] = where
            _enter(session, campaign, spec, entry, where, person, source, report)
        return report


def _enter(
    session: Session,
    campaign: Campaign,
    spec: CampaignSpec,
    entry: ResultEntry,
    where: str,
    person: str,
    source: str,
    report: EntryReport,
) -> None:
    experiment = session.scalar(
        select(Experiment).where(Experiment.campaign_id == campaign.id, Experiment.seq == entry.seq)
    )
    if experiment is None:
        raise SpecError(f"{where}: seq", f"no experiment #{entry.seq} in campaign '{campaign.name}'")
    if entry.not_run is not None:
        reason = entry.not_run.strip()
        if not reason:
            raise SpecError(f"{where}: reason", "say why the experiment could not be run")
        if experiment.state == ExperimentState.ABANDONED and experiment.error == _could_not_run(reason):
            report.unchanged.append(entry.seq)
            return
        request = _awaited(session, experiment, where)
        answer(session, request, by=person, resolution=NOT_RUN, note=reason)
        move_experiment(
            session,
            experiment,
            ExperimentState.ABANDONED,
            detail={"reason": _could_not_run(reason), "by": person, "source": source},
        )
        report.not_run.append(entry.seq)
        return
    values = checked_values(spec, entry.values, entry.units, where)
    if experiment.state == ExperimentState.COMPLETED:
        recorded = {m.name: m.value for m in experiment.measurements if m.attempt == experiment.attempts}
        if recorded == values:
            report.unchanged.append(entry.seq)
            return
        shown = ", ".join(f"{k}={v:g}" for k, v in recorded.items())
        raise SpecError(
            f"{where}: seq", f"experiment #{entry.seq} already has results ({shown}); they are not replaced"
        )
    request = _awaited(session, experiment, where)
    answer(session, request, by=person, resolution=ENTERED)
    write_measurements(session, experiment, values, spec)
    move_experiment(
        session, experiment, ExperimentState.COMPLETED, detail={"values": values, "by": person, "source": source}
    )
    report.entered.append(entry.seq)


def _could_not_run(reason: str) -> str:
    """The abandoned experiment's recorded reason (`Experiment.error`) for a person's "could not be run"."""
    return f"could not be run: {reason}"


def _awaited(session: Session, experiment: Experiment, where: str) -> Any:
    """The open results request of `experiment`; refuses an experiment that does not wait for results."""
    requests = open_requests(session, experiment.campaign_id, [RequestKind.RESULT], experiment_id=experiment.id)
    if experiment.state == ExperimentState.RUNNING and requests:
        return requests[0]
    if experiment.state == ExperimentState.REJECTED:
        why = "it was rejected; a rejected experiment has no results"
    elif experiment.state in (ExperimentState.PLANNED, ExperimentState.APPROVED):
        why = f"it is {experiment.state} and has not been handed out yet (see `peirce next`)"
    else:
        why = f"it is {experiment.state}, not waiting for results entered by hand"
    raise SpecError(f"{where}: seq", f"experiment #{experiment.seq}: {why}")


def checked_values(
    spec: CampaignSpec, values: Mapping[str, Any], units: Mapping[str, str], where: str
) -> dict[str, float]:
    """Every objective's value, a finite number in the objective's unit; one line naming the field otherwise."""
    objectives = {o.name: o for o in spec.objectives}
    for name in values:
        if name not in objectives:
            raise SpecError(f"{where}: {name}", f"unknown outcome '{name}' (outcomes: {', '.join(objectives)})")
    checked: dict[str, float] = {}
    for name, objective in objectives.items():
        if name not in values or values[name] is None or (isinstance(values[name], str) and not values[name].strip()):
            raise SpecError(f"{where}: {name}", f"no value for outcome '{name}'")
        value = finite_number(values[name], f"{where}: {name}")
        unit = (units.get(name) or "").strip()
        if unit and unit != objective.unit:
            wanted = f"'{objective.unit}'" if objective.unit else "no unit"
            raise SpecError(f"{where}: {name}", f"unit '{unit}', but {name} is recorded in {wanted}")
        checked[name] = value
    return checked


def finite_number(raw: Any, field: str) -> float:
    """A value a person gave for a measured outcome (a number, or text of one), as a finite float; one line naming
    `field` otherwise. True and False are not numbers here, though Python would read them as 1 and 0."""
    if isinstance(raw, bool):
        raise SpecError(field, f"{raw!r} is not a number")
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise SpecError(field, f"{str(raw)[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise SpecError(field, f"{raw!r} is not a finite number")
    return value


def write_measurements(
    session: Session, experiment: Experiment, values: Mapping[str, float], spec: CampaignSpec
) -> None:
    """One Measurement per value, under the experiment's current attempt, beside what the planner predicted."""
    units = {o.name: o.unit for o in spec.objectives}
    predicted = experiment.predicted or {}
    for name, value in values.items():
        session.add(
            Measurement(
                experiment_id=experiment.id,
                name=name,
                value=float(value),
                unit=units.get(name, ""),
                attempt=experiment.attempts,
                predicted_mean=predicted.get(name, {}).get("mean"),
                predicted_std=predicted.get(name, {}).get("std"),
            )
        )
