"""Parameter spaces: the typed parameters a campaign may vary, its linear constraints, its mixtures and its objectives.

These pydantic models are both the campaign file's vocabulary (the orchestrator's spec embeds them) and the
planners' description of the problem, so a parameter is defined in exactly one place.

Values a point takes, by parameter type:
    continuous -> float, integer -> int, discrete -> float (one of `values`),
    categorical -> str (one of `levels`), molecule -> str (one of the names in `smiles`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator, model_validator

from planners.molecules import canonical_smiles

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Point = dict[str, Any]
"""One point of a space: parameter name -> value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Parameter(_Strict):
    name: Identifier
    description: str = ""

    @property
    def is_numeric(self) -> bool:
        return False

    @property
    def is_finite(self) -> bool:
        return True

    def contains(self, value: Any) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


def _check_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    lower, upper = bounds
    try:
        finite = math.isfinite(lower) and math.isfinite(upper)
    except OverflowError:  # an integer past the largest float
        finite = False
    if not finite:
        raise ValueError("bounds must be finite numbers")
    # Planners scale each parameter by its span (to the unit cube and back): a span past the largest float is inf,
    # and every point drawn from it is inf or nan.
    if not math.isfinite(float(upper) - float(lower)):
        raise ValueError(f"the span upper - lower = {upper:g} - {lower:g} is larger than a float can hold")
    if lower > upper:
        raise ValueError(f"lower {lower:g} > upper {upper:g}")
    if lower == upper:
        raise ValueError(f"lower {lower:g} equals upper {upper:g}: the parameter cannot vary")
    return bounds


class ContinuousParameter(_Parameter):
    type: Literal["continuous"]
    bounds: tuple[float, float]
    unit: str = ""

    _bounds_ok = field_validator("bounds")(_check_bounds)

    @property
    def is_numeric(self) -> bool:
        return True

    @property
    def is_finite(self) -> bool:
        return False

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.bounds[0] <= float(value) <= self.bounds[1]


class IntegerParameter(_Parameter):
    type: Literal["integer"]
    bounds: tuple[int, int]
    unit: str = ""

    _bounds_ok = field_validator("bounds")(_check_bounds)

    @property
    def is_numeric(self) -> bool:
        return True

    @property
    def values(self) -> list[int]:
        return list(range(self.bounds[0], self.bounds[1] + 1))

    def contains(self, value: Any) -> bool:
        return _is_number(value) and float(value).is_integer() and self.bounds[0] <= value <= self.bounds[1]


class DiscreteParameter(_Parameter):
    """A numeric parameter restricted to listed values (e.g. the temperatures a block can hold)."""

    type: Literal["discrete"]
    values: list[FiniteFloat] = Field(min_length=2)
    unit: str = ""

    @field_validator("values")
    @classmethod
    def _distinct_sorted(cls, values: list[float]) -> list[float]:
        seen = set()
        for v in values:
            if v in seen:
                raise ValueError(f"value {v:g} is listed twice")
            seen.add(v)
        return sorted(values)

    @property
    def is_numeric(self) -> bool:
        return True

    def contains(self, value: Any) -> bool:
        return _is_number(value) and any(
            math.isclose(float(value), v, rel_tol=1e-9, abs_tol=1e-12) for v in self.values
        )


class CategoricalParameter(_Parameter):
    type: Literal["categorical"]
    levels: list[Annotated[str, Field(min_length=1)]] = Field(min_length=2)

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: list[str]) -> list[str]:
        _reject_repeats(levels, "level")
        return levels

    @property
    def values(self) -> list[str]:
        return list(self.levels)

    def contains(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.levels


class MoleculeParameter(_Parameter):
    """A choice among named molecules; each name maps to a SMILES string that RDKit must accept."""

    type: Literal["molecule"]
    smiles: dict[Annotated[str, Field(min_length=1)], str] = Field(min_length=2)
    values_from: str | None = Field(
        default=None,
        description="A SMILES file (one molecule a line: SMILES, then its name), relative to the campaign file; "
        "read when the file is loaded, its molecules fill `smiles` and are stored with the campaign.",
    )

    @field_validator("smiles")
    @classmethod
    def _parsable(cls, smiles: dict[str, str]) -> dict[str, str]:
        canonical: dict[str, str] = {}
        for name, text in smiles.items():
            parsed = canonical_smiles(text)
            if parsed is None:
                raise ValueError(f"molecule '{name}': RDKit cannot parse SMILES '{text}'")
            if parsed in canonical:
                raise ValueError(f"molecules '{canonical[parsed]}' and '{name}' are the same structure")
            canonical[parsed] = name
        return smiles

    @property
    def values(self) -> list[str]:
        return list(self.smiles)

    def contains(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.smiles


Parameter = Annotated[
    ContinuousParameter | IntegerParameter | DiscreteParameter | CategoricalParameter | MoleculeParameter,
    Field(discriminator="type"),
]


class LinearConstraint(_Strict):
    """sum(coefficient * parameter) <operator> rhs, over numeric parameters."""

    coefficients: dict[Identifier, FiniteFloat] = Field(min_length=1)
    operator: Literal["<=", ">="]
    rhs: FiniteFloat

    def satisfied_by(self, point: Mapping[str, Any], tolerance: float = 1e-9) -> bool:
        lhs = sum(c * float(point[name]) for name, c in self.coefficients.items())
        return lhs <= self.rhs + tolerance if self.operator == "<=" else lhs >= self.rhs - tolerance

    def describe(self) -> str:
        terms = " + ".join(f"{c:g}*{name}" for name, c in self.coefficients.items())
        return f"{terms} {self.operator} {self.rhs:g}"


class Mixture(_Strict):
    """Continuous parameters that are the fractions of one whole: they sum to `total` (1 by default), each within
    its own bounds, e.g. the metals of a catalyst or the solvents of a blend.

    A mixture is an equality constraint with structure, and planners use the structure: the baselines draw points
    uniformly over the bounded simplex (see `Space.from_unit`), the Bayesian planner passes the equality to its
    optimiser, and an effect of one component is taken with the others changed in proportion (`Space.setting`).
    """

    parameters: list[Identifier] = Field(min_length=2)
    total: FiniteFloat = Field(default=1.0, gt=0)

    @field_validator("parameters")
    @classmethod
    def _distinct(cls, parameters: list[str]) -> list[str]:
        _reject_repeats(parameters, "parameter")
        return parameters

    def satisfied_by(self, point: Mapping[str, Any], tolerance: float = 1e-9) -> bool:
        """The components sum to the total (within `tolerance` times the total)."""
        return abs(sum(float(point[name]) for name in self.parameters) - self.total) <= tolerance * self.total

    def describe(self) -> str:
        return f"{' + '.join(self.parameters)} = {self.total:g}"


class OutcomeConstraint(_Strict):
    """A measured outcome must stay on one side of a value, e.g. `{outcome: impurity, operator: "<=", value: 2}`.

    The planner models the outcome and favours points likely to satisfy the constraint; it cannot guarantee it.
    """

    outcome: Identifier
    operator: Literal["<=", ">="]
    value: FiniteFloat

    def satisfied_by(self, value: float) -> bool:
        return value <= self.value if self.operator == "<=" else value >= self.value

    def describe(self) -> str:
        return f"{self.outcome} {self.operator} {self.value:g}"


class Objective(_Strict):
    name: Identifier
    direction: Literal["maximize", "minimize"]
    unit: str = ""
    target: FiniteFloat | None = None
    reference: FiniteFloat | None = Field(
        default=None,
        description="With several objectives: the worst value still worth having (hypervolume reference point); "
        "inferred from the data when not given.",
    )

    @model_validator(mode="before")
    @classmethod
    def _british_spelling(cls, data: Any) -> Any:
        # Lab people write both; store one spelling.
        if isinstance(data, dict) and data.get("direction") in ("maximise", "minimise"):
            data = {**data, "direction": data["direction"].replace("ise", "ize")}
        return data

    def better(self, a: float, b: float) -> bool:
        """True when value `a` is strictly better than `b` for this objective."""
        return a > b if self.direction == "maximize" else a < b

    def reached(self, value: float) -> bool:
        if self.target is None:
            return False
        return value >= self.target if self.direction == "maximize" else value <= self.target


@dataclass(frozen=True)
class Space:
    """The planners' view of a campaign: parameters in declared order plus linear constraints and mixtures."""

    parameters: Sequence[Any]
    constraints: Sequence[LinearConstraint] = ()
    candidates: Sequence[Point] | None = None
    """When set, the only points the lab can run (e.g. the rows of a lookup table); planners choose among them."""
    exclusions: Sequence[Any] = ()
    """Regions no experiment may enter (the campaign's safety rules); each has `holds(point) -> bool`."""
    mixtures: Sequence[Mixture] = ()
    """Groups of continuous parameters that sum to a total (the spec checks they exist and can)."""

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def parameter(self, name: str) -> Any:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def is_finite(self) -> bool:
        return self.candidates is not None or all(p.is_finite for p in self.parameters)

    @property
    def grid_size(self) -> int | float:
        """Number of points of a finite space before constraints (inf when any parameter is continuous)."""
        if self.candidates is not None:
            return len(self.candidates)
        if not self.is_finite:
            return math.inf
        return math.prod(len(p.values) for p in self.parameters)

    def grid(self) -> Iterator[Point]:
        """Every point of a finite space that satisfies the constraints, in a fixed order."""
        if self.candidates is not None:
            yield from (dict(p) for p in self.candidates if self.feasible(p))
            return
        names = self.names
        for combo in product(*(p.values for p in self.parameters)):
            point = dict(zip(names, combo, strict=True))
            if self.feasible(point):
                yield point

    def feasible(self, point: Mapping[str, Any]) -> bool:
        return (
            all(m.satisfied_by(point) and self._within_bounds(m, point) for m in self.mixtures)
            and all(c.satisfied_by(point) for c in self.constraints)
            and not any(region.holds(point) for region in self.exclusions)
        )

    def _within_bounds(self, mixture: Mixture, point: Mapping[str, Any]) -> bool:
        # `from_unit` keeps every other parameter within its bounds by construction; a mixture's components are
        # drawn on the simplex, where only the lower bounds hold by construction.
        for name in mixture.parameters:
            low, high = self.parameter(name).bounds
            if not low - 1e-12 <= float(point[name]) <= high + 1e-12:
                return False
        return True

    def mixture_of(self, name: str) -> Mixture | None:
        return next((m for m in self.mixtures if name in m.parameters), None)

    def setting(self, point: Mapping[str, Any], name: str, value: Any, fixed: Sequence[str] = ()) -> Point:
        """`point` with `name` set to `value`. For a component of a mixture, the other components (except those in
        `fixed`) are scaled in proportion so that the mixture still sums to its total: Cox's direction, the usual
        meaning of one component's effect in a mixture (J. A. Cornell, Experiments with Mixtures, 3rd ed., 2002).
        The result may break a component's bounds; `feasible` says so. `point` may lack `name`."""
        moved = {**point, name: value}
        mixture = self.mixture_of(name)
        if mixture is None:
            return moved
        free = [n for n in mixture.parameters if n != name and n not in fixed]
        held = sum(float(moved[n]) for n in mixture.parameters if n != name and n in fixed)
        target = mixture.total - float(value) - held
        current = sum(float(moved[n]) for n in free)
        for n in free:
            moved[n] = float(moved[n]) * target / current if current > 0 else target / len(free)
        return moved

    def snap(self, point: Mapping[str, Any]) -> Point:
        """`point` with each mixture moved to the nearest point (Euclidean) that sums exactly to its total within
        the components' bounds: an optimiser's equality holds to about 1e-6, an experiment's to rounding."""
        snapped = dict(point)
        for mixture in self.mixtures:
            bounds = [self.parameter(n).bounds for n in mixture.parameters]
            values = _project_bounded_simplex([float(point[n]) for n in mixture.parameters], bounds, mixture.total)
            snapped.update(zip(mixture.parameters, values, strict=True))
        return snapped

    def contains(self, point: Mapping[str, Any]) -> bool:
        return set(point) == set(self.names) and all(p.contains(point[p.name]) for p in self.parameters)

    def from_unit(self, u: Sequence[float]) -> Point:
        """Map a point of the unit cube [0, 1)^d (one coordinate per parameter) to a point of the space.

        Uniform points of the cube give uniform points of the space. A mixture of k components takes the
        coordinates of its first k - 1 components and maps them to a uniform point of the simplex above the
        components' lower bounds by stick-breaking (the j-th of k - 1 breaks has the Beta(1, k - 1 - j) law, drawn
        by its inverse distribution function; the last coordinate is unused). Upper bounds are then met by
        rejection: `feasible` refuses a point above one, so a uniform draw on the bounded simplex is what is kept.
        Normalising uniform draws instead would crowd the points towards the simplex's centre.
        """
        point: Point = {}
        coordinates: dict[str, float] = {}
        for p, x in zip(self.parameters, u, strict=True):
            x = min(max(float(x), 0.0), 1.0 - 1e-12)
            coordinates[p.name] = x
            if isinstance(p, ContinuousParameter):
                lo, hi = p.bounds
                point[p.name] = lo + x * (hi - lo)
            else:
                choices = p.values
                point[p.name] = choices[int(x * len(choices))]
        for mixture in self.mixtures:
            lows = [float(self.parameter(n).bounds[0]) for n in mixture.parameters]
            free = mixture.total - sum(lows)
            k = len(mixture.parameters)
            left = 1.0
            for j, (name, low) in enumerate(zip(mixture.parameters[:-1], lows, strict=False)):
                share = left * (1.0 - (1.0 - coordinates[name]) ** (1.0 / (k - 1 - j)))
                left -= share
                point[name] = low + free * share
            point[mixture.parameters[-1]] = lows[-1] + free * left
        return point


# Up to this many combinations of the constrained parameters' values, a finite space's constraints are checked
# point by point (a few milliseconds with numpy); past it, by the linear program over their ranges, as for
# continuous parameters, which proves infeasibility but not feasibility of a grid.
EXACT_CHECK_POINTS = 1_000_000


def constraints_satisfiable(
    parameters: Sequence[Any], constraints: Sequence[LinearConstraint], mixtures: Sequence[Mixture] = ()
) -> bool:
    """Whether some point of the parameters' ranges satisfies every linear constraint (and mixture) at once.

    Continuous parameters: a linear program over their bounds (feasibility only, no objective). Constrained
    parameters that are all finite (integer, discrete): every combination of their values, when there are at most
    `EXACT_CHECK_POINTS`. Otherwise (a mix, or more combinations) the linear program over their ranges, which
    finds every empty region and lets through only spaces whose relaxation has room and whose grid may not. Each
    constraint names numeric parameters only (the spec checks that first).
    """
    if mixtures:
        return _satisfiable_with_mixtures(parameters, constraints, mixtures)
    if not constraints:
        return True
    by_name = {p.name: p for p in parameters}
    names = [p.name for p in parameters if any(p.name in c.coefficients for c in constraints)]
    signed = [(1.0 if c.operator == "<=" else -1.0, c) for c in constraints]
    matrix = np.array([[sign * c.coefficients.get(name, 0.0) for name in names] for sign, c in signed])
    limits = np.array([sign * c.rhs for sign, c in signed])
    constrained = [by_name[name] for name in names]
    all_finite = not any(isinstance(p, ContinuousParameter) for p in constrained)
    if all_finite and math.prod(_count(p) for p in constrained) <= EXACT_CHECK_POINTS:
        axes = np.meshgrid(*(np.asarray(p.values, dtype=float) for p in constrained), indexing="ij")
        points = np.stack([axis.ravel() for axis in axes], axis=1)
        tolerance = 1e-9  # LinearConstraint.satisfied_by's
        return bool(np.any(np.all(points @ matrix.T <= limits + tolerance, axis=1)))
    ranges = [
        p.bounds if isinstance(p, ContinuousParameter | IntegerParameter) else (min(p.values), max(p.values))
        for p in constrained
    ]
    # Imported here: scipy.optimize takes a noticeable part of a second to load, and only a spec with constraints
    # needs it (`peirce validate` of any other stays quick).
    from scipy.optimize import linprog

    result = linprog(np.zeros(len(names)), A_ub=matrix, b_ub=limits, bounds=ranges, method="highs")
    return result.status != 2  # 2: infeasible (0 is a point found; a numerical failure is not proof of none)


def _satisfiable_with_mixtures(
    parameters: Sequence[Any], constraints: Sequence[LinearConstraint], mixtures: Sequence[Mixture]
) -> bool:
    """The linear program over the parameters' ranges with each mixture's sum as an equality (mixtures are made of
    continuous parameters, so the relaxation is the space itself for them)."""
    by_name = {p.name: p for p in parameters}
    names = sorted({n for c in constraints for n in c.coefficients} | {n for m in mixtures for n in m.parameters})
    signed = [(1.0 if c.operator == "<=" else -1.0, c) for c in constraints]
    a_ub = np.array([[sign * c.coefficients.get(n, 0.0) for n in names] for sign, c in signed]) if signed else None
    b_ub = np.array([sign * c.rhs for sign, c in signed]) if signed else None
    a_eq = np.array([[1.0 if n in m.parameters else 0.0 for n in names] for m in mixtures])
    b_eq = np.array([m.total for m in mixtures])
    ranges = [
        by_name[n].bounds if hasattr(by_name[n], "bounds") else (min(by_name[n].values), max(by_name[n].values))
        for n in names
    ]
    from scipy.optimize import linprog

    result = linprog(np.zeros(len(names)), A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=ranges, method="highs")
    return result.status != 2


def _project_bounded_simplex(
    values: Sequence[float], bounds: Sequence[tuple[float, float]], total: float
) -> list[float]:
    """The point nearest `values` with low_i <= x_i <= high_i and sum(x) = total: x_i = clip(v_i - t) for the shift
    t that meets the sum, found by bisection (the sum falls monotonically in t); what rounding leaves of the sum
    goes to the component farthest from its bounds, so the sum is exact to a few ulps."""
    v = np.asarray(values, dtype=float)
    low = np.array([b[0] for b in bounds], dtype=float)
    high = np.array([b[1] for b in bounds], dtype=float)
    a, b = float(np.min(v - high)) - 1.0, float(np.max(v - low)) + 1.0
    for _ in range(200):
        t = 0.5 * (a + b)
        if np.clip(v - t, low, high).sum() > total:
            a = t
        else:
            b = t
        if b - a < 1e-15:
            break
    x = np.clip(v - 0.5 * (a + b), low, high)
    room = np.minimum(x - low, high - x)
    i = int(np.argmax(room))
    x[i] = total - (x.sum() - x[i])
    return [float(value) for value in x]


def _count(parameter: Any) -> int:
    """How many values a finite numeric parameter takes (an integer's range is counted, not listed)."""
    if isinstance(parameter, IntegerParameter):
        return int(parameter.bounds[1] - parameter.bounds[0] + 1)
    return len(parameter.values)


def point_key(point: Mapping[str, Any]) -> tuple:
    """A hashable identity for a point, robust to float noise, used to avoid proposing a point twice."""
    return tuple((name, round(float(v), 9) if _is_number(v) else v) for name, v in sorted(point.items()))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _reject_repeats(items: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"{what} '{item}' is listed twice")
        seen.add(item)
