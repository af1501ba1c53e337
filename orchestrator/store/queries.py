"""Read-only queries the review, the CLI and the cycle share: counts by state, results, best so far, calibration.

Nothing here writes. Each question is answered in one place, so `peirce status`, the review tables and the loop's
record of the best so far cannot disagree about what a result or the best one is:
- a result is a completed experiment's measurement from its final attempt (earlier failed attempts are not results),
  and a non-finite value is no result;
- the best so far of an objective is the best result in its own direction, the earliest experiment on a tie;
- a calibration counts the measured values that carried the planner's prediction with a standard deviation > 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.store.models import Campaign, Cycle, Experiment, ExperimentState, Measurement
from planners.base import Observation, Prediction


class ObjectiveLike(Protocol):
    """An objective as a campaign spec states it: its name and whether higher or lower is better."""

    @property
    def name(self) -> str: ...

    @property
    def direction(self) -> str: ...


@dataclass(frozen=True)
class Result:
    """A completed experiment's outcome: its seq, parameters and objective values from its final attempt."""

    seq: int
    parameters: dict[str, Any]
    values: dict[str, float]


@dataclass(frozen=True)
class BestStep:
    """One result of an objective in seq order, and the best so far once it is counted."""

    n: int  # results of this objective so far, this one included
    seq: int
    value: float
    best: float
    best_seq: int
    improved: bool


@dataclass(frozen=True)
class Calibration:
    """How the planner's predictions of one objective fared against what was then measured."""

    predictions: int
    within_1sd: float  # about 0.68 for a calibrated Gaussian model
    within_2sd: float  # about 0.95
    mean_z: float  # > 0: the model predicted too low
    rmse: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# --- experiments ------------------------------------------------------------------------------------------------


def count_by_state(session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Experiment.state, func.count()).where(Experiment.campaign_id == campaign_id).group_by(Experiment.state)
    ).all()
    return {state: n for state, n in rows}


def spent_count(states: dict[str, int]) -> int:
    """Experiments that used the lab, from `count_by_state`'s result."""
    return sum(states.get(s, 0) for s in ExperimentState.SPENT)


Observed = list[tuple[int, Observation]]
"""Finished experiments as (experiment id, observation), in campaign order."""


def observations(session: Session, campaign_id: int, objective_names: Sequence[str]) -> Observed:
    """Completed and infeasible experiments as the planner sees them, in campaign order, with their ids (what the
    planner, the hypothesis ledger, and a person's edit fit their model on)."""
    rows = session.scalars(
        select(Experiment)
        .where(
            Experiment.campaign_id == campaign_id,
            Experiment.state.in_((ExperimentState.COMPLETED, ExperimentState.INFEASIBLE)),
        )
        .order_by(Experiment.seq)
    ).all()
    return [(row.id, observation_of(row, objective_names)) for row in rows]


def observation_of(experiment: Experiment, objective_names: Sequence[str]) -> Observation:
    """A finished experiment as the planner sees it: its last attempt's objective values, or infeasible."""
    if experiment.state == ExperimentState.INFEASIBLE:
        return Observation(parameters=experiment.parameters, values={}, feasible=False)
    latest = {m.name: m.value for m in experiment.measurements if m.attempt == experiment.attempts}
    return Observation(
        parameters=experiment.parameters,
        values={name: latest[name] for name in objective_names if name in latest},
        predicted=predictions_of(experiment),
    )


def predictions_of(experiment: Experiment) -> dict[str, Prediction]:
    """What was predicted for the experiment when it was proposed (or when a person edited it), per objective.
    Records from before predictions carried their spread were stated as the model gave them: spread 1."""
    out = {}
    for name, guess in (experiment.predicted or {}).items():
        mean, std = guess.get("mean"), guess.get("std")
        if isinstance(mean, int | float) and isinstance(std, int | float):
            out[name] = Prediction(mean=float(mean), std=float(std), spread=_stated_spread(guess))
    return out


def _stated_spread(guess: Mapping[str, Any] | None) -> float:
    """The spread factor a stored prediction was stated with; 1 for records from before predictions carried it."""
    return float((guess or {}).get("spread") or 1.0)


def results(session: Session, campaign_id: int) -> list[Result]:
    """Every completed experiment's final-attempt values, in seq order (the values the planner was given)."""
    rows = session.execute(
        select(Experiment.seq, Experiment.parameters, Measurement.name, Measurement.value)
        .join(Measurement, Measurement.experiment_id == Experiment.id)
        .where(
            Experiment.campaign_id == campaign_id,
            Experiment.state == ExperimentState.COMPLETED,
            Measurement.attempt == Experiment.attempts,
        )
        .order_by(Experiment.seq, Measurement.id)
    ).all()
    out: dict[int, Result] = {}
    for seq, parameters, name, value in rows:
        out.setdefault(seq, Result(seq, dict(parameters), {})).values[name] = float(value)
    return list(out.values())


# --- best so far --------------------------------------------------------------------------------------------------


def best_steps(found: Iterable[Result], objective: ObjectiveLike) -> Iterator[BestStep]:
    """The best so far of one objective after each of its results, in the order given (non-finite values are no
    result). The best moves only on a strictly better value, so a tie keeps the earlier experiment."""
    better = (lambda a, b: a > b) if objective.direction == "maximize" else (lambda a, b: a < b)
    best: float | None = None
    best_seq = 0
    n = 0
    for result in found:
        value = result.values.get(objective.name)
        if value is None or not math.isfinite(value):
            continue
        n += 1
        improved = best is None or better(value, best)
        if improved:
            best, best_seq = value, result.seq
        assert best is not None
        yield BestStep(n, result.seq, value, best, best_seq, improved)


def best_so_far(session: Session, campaign_id: int, objectives: Sequence[ObjectiveLike]) -> dict[str, dict[str, Any]]:
    """Best so far per objective, `{name: {"value", "seq"}}`, from the results in the database (objectives with no
    result yet left out): what each finished cycle records as its `best`."""
    found = results(session, campaign_id)
    best: dict[str, dict[str, Any]] = {}
    for objective in objectives:
        steps = list(best_steps(found, objective))
        if steps:
            last = steps[-1]
            best[objective.name] = {"value": last.best, "seq": last.best_seq}
    return best


def latest_best(session: Session, campaign_id: int, before_cycle: int | None = None) -> dict[str, Any]:
    """Best so far (objective -> {value, seq}) as recorded by the newest finished cycle, or {} if none."""
    query = select(Cycle.best).where(Cycle.campaign_id == campaign_id, Cycle.best.is_not(None))
    if before_cycle is not None:
        query = query.where(Cycle.index < before_cycle)
    return session.scalar(query.order_by(Cycle.index.desc()).limit(1)) or {}


def best_with_parameters(session: Session, campaign_id: int) -> dict[str, dict[str, Any]]:
    """Best so far per objective (as `latest_best`) with the parameters of the experiment that reached it; both the
    objectives and the parameters in the order the campaign's spec declares them (a JSONB column on PostgreSQL
    keeps its keys in an order of its own)."""
    spec = session.get_one(Campaign, campaign_id).spec
    declared = [p["name"] for p in spec["space"]]
    recorded = declared_order(latest_best(session, campaign_id), [o["name"] for o in spec["objectives"]])
    best = {}
    for name, entry in recorded.items():
        experiment = session.scalar(
            select(Experiment).where(Experiment.campaign_id == campaign_id, Experiment.seq == entry["seq"])
        )
        parameters = declared_order(experiment.parameters, declared) if experiment else {}
        best[name] = {**entry, "parameters": parameters}
    return best


def declared_order(values: dict[str, Any], declared: Sequence[str]) -> dict[str, Any]:
    """A mapping by name (a point's parameters, a best per objective) in the spec's order of those names; any the
    spec does not name come after them, as stored."""
    ordered = {name: values[name] for name in declared if name in values}
    ordered.update((name, value) for name, value in values.items() if name not in ordered)
    return ordered


# --- predictions ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictedMeasurement:
    """One measured value beside what was predicted for it: the stated mean and sd, and the spread factor the sd
    was stated with (`planners.calibration`; 1 for a prediction stated as the model gave it)."""

    objective: str
    measured: float
    mean: float
    std: float
    spread: float

    @property
    def own_std(self) -> float:
        """The model's own sd: the stated one without the spread factor."""
        return self.std / self.spread


def predicted_measurements(session: Session, campaign_id: int) -> list[PredictedMeasurement]:
    """Every measured value (every attempt's) whose prediction had a standard deviation > 0, in the order measured:
    the model's track record on experiments it had not yet seen."""
    rows = session.execute(
        select(
            Measurement.name,
            Measurement.value,
            Measurement.predicted_mean,
            Measurement.predicted_std,
            Experiment.predicted,
        )
        .join(Experiment, Measurement.experiment_id == Experiment.id)
        .where(
            Experiment.campaign_id == campaign_id,
            Measurement.predicted_mean.is_not(None),
            Measurement.predicted_std.is_not(None),
            Measurement.predicted_std > 0,
        )
        .order_by(Measurement.id)
    ).all()
    return [
        PredictedMeasurement(name, value, mean, std, _stated_spread((predicted or {}).get(name)))
        for name, value, mean, std, predicted in rows
        if mean is not None and std is not None
    ]


def prediction_errors(session: Session, campaign_id: int) -> dict[str, list[float]]:
    """Per objective, the standardised errors (measured − predicted mean) / the model's own sd: the stated sd divided
    by the spread it was stated with (`planners.calibration`). The ledger widens the model's posterior by these, so
    they must be read against the model, not against intervals already widened (which would read as calibrated)."""
    errors: dict[str, list[float]] = {}
    for p in predicted_measurements(session, campaign_id):
        errors.setdefault(p.objective, []).append((p.measured - p.mean) / p.own_std)
    return errors


def calibration_of(points: Iterable[tuple[float, float, float]]) -> Calibration | None:
    """The calibration of (measured, predicted mean, predicted sd > 0) triples; None when there are none."""
    rows = list(points)
    if not rows:
        return None
    z = [(value - mean) / std for value, mean, std in rows]
    return Calibration(
        predictions=len(z),
        within_1sd=sum(abs(v) <= 1 for v in z) / len(z),
        within_2sd=sum(abs(v) <= 2 for v in z) / len(z),
        mean_z=sum(z) / len(z),
        rmse=math.sqrt(sum((value - mean) ** 2 for value, mean, _ in rows) / len(rows)),
    )


def calibration(session: Session, campaign_id: int) -> dict[str, Calibration]:
    """Per objective (in name order), the calibration of the planner's predictions."""
    grouped: dict[str, list[tuple[float, float, float]]] = {}
    for p in predicted_measurements(session, campaign_id):
        grouped.setdefault(p.objective, []).append((p.measured, p.mean, p.std))
    out = {}
    for name in sorted(grouped):
        summary = calibration_of(grouped[name])
        if summary is not None:
            out[name] = summary
    return out
