"""Guards: what every proposed hypothesis must pass, whoever proposed it (an LLM, the model, a person).

A claim is refused, with one line saying why, when it
- names an objective, parameter or level the campaign does not have, or a value outside a parameter's range;
- gives a molecule as SMILES that RDKit rejects, or as a structure that is not one of the parameter's molecules
  (a valid SMILES of a listed molecule is accepted and replaced by the molecule's name);
- repeats a hypothesis already in the ledger, or states the opposite of one (same subject, other direction);
- touches a forbidden region of the campaign's safety rules, or a molecule with a forbidden substructure.
Claims the data already contradicts are refused by the orchestrator once their credence is known (it needs the
fitted model); see `contradiction_reason`.

Guards only ever reject or normalise names; they never widen what a claim may say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from planners.base import PlanningProblem
from planners.hypotheses.base import LedgerEntry
from planners.hypotheses.claims import AttainabilityClaim, Claim, Condition, ContrastClaim, EffectClaim, RegionClaim
from planners.molecules import canonical_smiles
from planners.space import CategoricalParameter, MoleculeParameter


class ForbiddenRegion(BaseModel):
    """Points where every condition holds must never be run (e.g. a solvent above its flash point)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    where: list[Condition] = Field(min_length=1)
    reason: str = ""

    def holds(self, point: dict[str, Any]) -> bool:
        return all(c.parameter in point and c.holds(point[c.parameter]) for c in self.where)

    def describe(self) -> str:
        words = " and ".join(c.words() for c in self.where)
        return f"{words}{f' ({self.reason})' if self.reason else ''}"


class ForbiddenSubstructure(BaseModel):
    """No molecule containing this SMARTS pattern may be used (e.g. an azide, a peroxide)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    smarts: str = Field(min_length=1)
    reason: str = ""

    def is_valid(self) -> bool:
        from rdkit import Chem

        return Chem.MolFromSmarts(self.smarts) is not None

    def matches(self, smiles: str) -> bool:
        from rdkit import Chem

        molecule, pattern = Chem.MolFromSmiles(smiles), Chem.MolFromSmarts(self.smarts)
        return molecule is not None and pattern is not None and molecule.HasSubstructMatch(pattern)


class SafetyRules(BaseModel):
    """The campaign's `safety:` block: what no planned experiment and no hypothesis may involve."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    forbidden_regions: list[ForbiddenRegion] = Field(default_factory=list)
    forbidden_substructures: list[ForbiddenSubstructure] = Field(default_factory=list)

    def exclusions(self, parameters: Sequence[Any]) -> list[ForbiddenRegion]:
        """The regions the space must exclude: the forbidden regions, plus each molecule level that contains a
        forbidden substructure (as a one-condition region)."""
        regions = list(self.forbidden_regions)
        for p in parameters:
            if not isinstance(p, MoleculeParameter):
                continue
            for rule in self.forbidden_substructures:
                levels = [name for name, smiles in p.smiles.items() if rule.matches(smiles)]
                if levels:
                    reason = f"forbidden substructure {rule.smarts}" + (f": {rule.reason}" if rule.reason else "")
                    regions.append(ForbiddenRegion(where=[Condition(parameter=p.name, levels=levels)], reason=reason))
        return regions


class GuardError(ValueError):
    """A claim the guards refuse; the message is the reason, in one line."""


def check_claim(
    claim: Claim,
    problem: PlanningProblem,
    ledger: Sequence[LedgerEntry] = (),
    safety: SafetyRules | None = None,
) -> Claim:
    """Return the claim (molecule SMILES replaced by names) or raise GuardError naming what is wrong."""
    objectives = [o.name for o in problem.objectives]
    if claim.objective not in objectives:
        raise GuardError(f"objective: unknown objective '{claim.objective}' (objectives: {', '.join(objectives)})")
    space = problem.space
    names = space.names
    for name in claim.parameters():
        if name not in names:
            raise GuardError(f"parameter: unknown parameter '{name}' (parameters: {', '.join(names)})")
    claim = _normalise(claim, problem)
    for entry in ledger:
        if entry.status == "rejected":
            continue
        if entry.claim.key() == claim.key():
            raise GuardError(f"duplicate of hypothesis {entry.id} ({entry.statement})")
        if entry.claim.subject() == claim.subject():
            raise GuardError(f"same question as hypothesis {entry.id} ({entry.statement})")
    if safety is not None:
        _check_safety(claim, problem, safety)
    return claim


def contradiction_reason(credence: float, threshold: float, observations: int) -> str | None:
    """Why a new claim is refused as already contradicted by the data, or None."""
    if credence <= threshold:
        return f"the data already contradicts it (credence {credence:.3f} from {observations} results)"
    return None


def _normalise(claim: Claim, problem: PlanningProblem) -> Claim:
    space = problem.space
    if isinstance(claim, EffectClaim):
        p = space.parameter(claim.parameter)
        if not p.is_numeric:
            raise GuardError(f"parameter: '{p.name}' is {p.type}; an effect needs a numeric parameter (use a contrast)")
        for field in ("from_value", "to_value"):
            _check_number(p, getattr(claim, field), field)
        return claim.model_copy(update={"context": _context(claim.context, problem)})
    if isinstance(claim, ContrastClaim):
        p = space.parameter(claim.parameter)
        if not isinstance(p, CategoricalParameter | MoleculeParameter):
            raise GuardError(f"parameter: '{p.name}' is {p.type}; a contrast needs a categorical or molecule parameter")
        better, worse = _level(p, claim.better, "better"), _level(p, claim.worse, "worse")
        if better == worse:
            raise GuardError(f"better and worse name the same {p.name} '{better}'")
        return claim.model_copy(update={"better": better, "worse": worse, "context": _context(claim.context, problem)})
    if isinstance(claim, RegionClaim):
        where = [_condition(c, problem, f"where[{i}]") for i, c in enumerate(claim.where)]
        points = list(space.grid()) if space.is_finite and space.grid_size <= 200_000 else None
        if points is not None:
            inside = sum(1 for point in points if all(c.holds(point[c.parameter]) for c in where))
            if inside == 0:
                raise GuardError("where: no point of the space lies in the region")
            if inside == len(points):
                raise GuardError("where: the region is the whole space, so the claim says nothing")
        return claim.model_copy(update={"where": where})
    if isinstance(claim, AttainabilityClaim):
        return claim
    raise GuardError(f"unknown kind of claim {type(claim).__name__}")  # unreachable: the union is closed


def _check_number(p: Any, value: float, field: str) -> None:
    low, high = p.bounds if hasattr(p, "bounds") else (min(p.values), max(p.values))
    if not (math.isfinite(value) and low - 1e-9 <= value <= high + 1e-9):
        raise GuardError(f"{field}: {value:g} is outside {p.name}'s range [{low:g}, {high:g}]")


def _level(p: CategoricalParameter | MoleculeParameter, value: str, field: str) -> str:
    if value in p.values:
        return value
    if isinstance(p, MoleculeParameter):
        canonical = canonical_smiles(value)
        if canonical is None:
            raise GuardError(f"{field}: '{value}' is neither a {p.name} of the space nor a SMILES that RDKit accepts")
        for name, smiles in p.smiles.items():
            if canonical_smiles(smiles) == canonical:
                return name
        raise GuardError(f"{field}: the molecule {value} is not one of the {p.name} options ({', '.join(p.values)})")
    raise GuardError(f"{field}: '{value}' is not a level of {p.name} (levels: {', '.join(p.values)})")


def _context(context: dict[str, Any], problem: PlanningProblem) -> dict[str, Any]:
    fixed: dict[str, Any] = {}
    for name, value in context.items():
        p = problem.space.parameter(name)
        if p.is_numeric:
            if not isinstance(value, int | float):
                raise GuardError(f"context.{name}: '{value}' is not a number")
            _check_number(p, float(value), f"context.{name}")
            fixed[name] = float(value)
        else:
            fixed[name] = _level(p, str(value), f"context.{name}")
    return fixed


def _condition(condition: Condition, problem: PlanningProblem, where: str) -> Condition:
    p = problem.space.parameter(condition.parameter)
    if condition.levels is not None:
        if p.is_numeric:
            raise GuardError(f"{where}: '{p.name}' is numeric; give at_least / at_most, not levels")
        return condition.model_copy(
            update={"levels": [_level(p, level, f"{where}.levels") for level in condition.levels]}
        )
    if not p.is_numeric:
        raise GuardError(f"{where}: '{p.name}' is {p.type}; give levels, not at_least / at_most")
    for field in ("at_least", "at_most"):
        value = getattr(condition, field)
        if value is not None:
            _check_number(p, value, f"{where}.{field}")
    return condition


def _check_safety(claim: Claim, problem: PlanningProblem, safety: SafetyRules) -> None:
    """A claim is unsafe when testing it needs a forbidden point or a molecule with a forbidden substructure."""
    for region in safety.forbidden_regions:
        if _pins_into(claim, region):
            raise GuardError(f"testing it needs experiments in a forbidden region: {region.describe()}")
    for name, level in _named_levels(claim):
        p = problem.space.parameter(name)
        if not isinstance(p, MoleculeParameter):
            continue
        for rule in safety.forbidden_substructures:
            if rule.matches(p.smiles[level]):
                why = f" ({rule.reason})" if rule.reason else ""
                raise GuardError(f"{name} = {level} has the forbidden substructure {rule.smarts}{why}")


def _named_levels(claim: Claim) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    if isinstance(claim, ContrastClaim):
        pairs += [(claim.parameter, claim.better), (claim.parameter, claim.worse)]
    if isinstance(claim, EffectClaim | ContrastClaim):
        pairs += [(k, v) for k, v in claim.context.items() if isinstance(v, str)]
    if isinstance(claim, RegionClaim):
        pairs += [(c.parameter, level) for c in claim.where for level in c.levels or []]
    return pairs


def _pins_into(claim: Claim, region: ForbiddenRegion) -> bool:
    """True when every condition of the forbidden region is met by what the claim fixes (so its test points
    would lie in the region)."""
    fixed: dict[str, list[Any]] = {}
    if isinstance(claim, EffectClaim):
        fixed[claim.parameter] = [claim.from_value, claim.to_value]
    if isinstance(claim, ContrastClaim):
        fixed[claim.parameter] = [claim.better, claim.worse]
    if isinstance(claim, EffectClaim | ContrastClaim):
        fixed.update({k: [v] for k, v in claim.context.items()})
    if isinstance(claim, RegionClaim):
        for c in claim.where:
            if c.levels is not None:
                fixed[c.parameter] = list(c.levels)
            elif c.at_least is not None and c.at_most is not None:
                fixed[c.parameter] = [c.at_least, c.at_most]
    if not fixed:
        return False
    for condition in region.where:
        values = fixed.get(condition.parameter)
        if values is None or not any(condition.holds(v) for v in values):
            return False
    return True
