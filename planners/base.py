"""The planner contract: what every planner (baseline or Bayesian) receives and returns.

A planner is asked for a batch of `batch_size` new points given
- the space and the objectives,
- the observations so far (completed experiments with their measured objectives, plus infeasible points),
- the points still pending (planned or running), so a batch can be planned while the last one runs,
- the results of related campaigns, where the campaign names some (`PlanningProblem.related`),
- a seed, which makes the proposal reproducible.

It returns a `Plan`: one `Proposal` per point, each with the planner's predicted outcome where it has one, plus
the model state it fitted (recorded with the decision, and handed back as `warm_start` next cycle) and any
warnings. Planners keep no state between calls that matters for the result: everything they need is in the
arguments, which is what lets a decision be replayed from its record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from planners.space import Objective, OutcomeConstraint, Point, Space


class PlanningError(Exception):
    """The planner cannot produce a proposal; the message names the cause (e.g. a constraint no point meets)."""


@dataclass(frozen=True)
class Prediction:
    """A planner's belief about one objective at a proposed point: the measurement's mean and standard deviation.

    `spread` is the factor by which the model's own sd was multiplied to give `std` (`planners.calibration`); 1 for
    a prediction stated as the model gave it."""

    mean: float
    std: float
    spread: float = 1.0


@dataclass(frozen=True)
class Proposal:
    parameters: Point
    predicted: Mapping[str, Prediction] = field(default_factory=dict)
    rationale: str = ""


@dataclass(frozen=True)
class Plan:
    """What a planner returns for one batch."""

    proposals: list[Proposal]
    model_state: dict[str, Any] = field(default_factory=dict)
    """JSON-ready: fitted hyper-parameters, encodings, acquisition, timings, device. Passed back as `warm_start`."""
    warnings: list[str] = field(default_factory=list)
    """Things a person should know about this decision (e.g. an objective that never varies)."""


@dataclass(frozen=True)
class Observation:
    """One finished experiment as a planner sees it.

    `values` holds the measured objectives of a completed experiment; an infeasible experiment has
    `feasible=False` and may have no values. `predicted` is what the planner predicted for it when it was proposed
    (empty where nothing was predicted): the planner's track record, from which its stated uncertainty is
    calibrated (`planners.calibration`).
    """

    parameters: Point
    values: Mapping[str, float]
    feasible: bool = True
    predicted: Mapping[str, Prediction] = field(default_factory=dict)


@dataclass(frozen=True)
class RelatedResults:
    """The finished experiments of an earlier, related campaign (a related task) that a planner may learn from:
    the campaign's name and its results as observations of this problem's objectives (matched by name)."""

    name: str
    observations: tuple[Observation, ...]


@dataclass(frozen=True)
class PlanningProblem:
    space: Space
    objectives: Sequence[Objective]
    outcome_constraints: Sequence[OutcomeConstraint] = ()
    related: Sequence[RelatedResults] = ()
    """Results of related campaigns, for planners that learn across tasks (the Bayesian planner's multi-task
    model, `planners.bo.transfer`); others ignore them."""


class Planner(Protocol):
    """Anything that proposes a batch. `name` and `config()` are recorded with every decision."""

    name: str

    def config(self) -> dict[str, Any]:
        """The planner's full configuration, as JSON-ready data, for the decision record."""
        ...

    def propose(
        self,
        problem: PlanningProblem,
        observations: Sequence[Observation],
        pending: Sequence[Point],
        batch_size: int,
        seed: int,
        warm_start: Mapping[str, Any] | None = None,
    ) -> Plan:
        """`warm_start` is the `model_state` of the previous decision, if any; it may speed fitting up but a
        planner must give a valid plan without it."""
        ...
