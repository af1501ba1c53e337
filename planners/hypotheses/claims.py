"""Typed hypotheses: testable claims about the unknown response, and the plain-words statement of each.

Four kinds (the `kind` field tells them apart, so a JSON answer or a YAML block is parsed to the right one):

- `effect`: changing numeric parameter `p` from `a` to `b` raises (or lowers) objective `y`;
- `contrast`: level `better` of a categorical or molecule parameter gives a higher `y` than level `worse`;
- `region`: the best `y` in the space lies where the stated conditions hold;
- `attainability`: `y` can go above (or below) a stated value somewhere in the space.

Effects and contrasts are *main effects*: parameters named in `context` are held at the stated values, all others
are averaged over the space (uniformly over its points). That is what "A gives a higher yield than B" means to a
chemist reading a screen, and it is how the benchmark decides whether a claim is true from a full data table.

The models here are only the claim: who proposed it, why, and its status are kept by the ledger beside it.
Unknown keys are refused (`extra="forbid"`), so an answer cannot smuggle anything in beside a claim.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Level = Annotated[str, Field(min_length=1, max_length=200)]
ContextValue = float | str

STATUSES = ("open", "supported", "refuted", "retired", "rejected")


class _Claim(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: Name

    def parameters(self) -> list[str]:
        """The parameters the claim names (guards check each exists)."""
        raise NotImplementedError

    def statement(self) -> str:
        raise NotImplementedError

    def key(self) -> str:
        """A canonical identity: two claims with the same key say the same thing."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    def subject(self) -> str:
        """What the claim is about, regardless of which way it points: a claim and its opposite share a subject."""
        return self.key()


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float | int) and not isinstance(value, bool) else str(value)


def _context_words(context: dict[str, ContextValue]) -> str:
    if not context:
        return "averaged over the other parameters"
    held = ", ".join(f"{name} = {_format(v)}" for name, v in sorted(context.items()))
    return f"with {held}, averaged over the other parameters"


class EffectClaim(_Claim):
    """Changing `parameter` from `from_value` to `to_value` `direction` `objective`."""

    kind: Literal["effect"] = "effect"
    parameter: Name
    from_value: float
    to_value: float
    direction: Literal["raises", "lowers"]
    context: dict[Name, ContextValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _a_change(self) -> EffectClaim:
        if not (math.isfinite(self.from_value) and math.isfinite(self.to_value)):
            raise ValueError("from_value and to_value must be finite numbers")
        if self.from_value == self.to_value:
            raise ValueError(f"from_value equals to_value ({self.from_value:g}): nothing changes")
        if self.parameter in self.context:
            raise ValueError(f"'{self.parameter}' is the parameter that changes; it cannot also be held in context")
        return self

    def parameters(self) -> list[str]:
        return [self.parameter, *self.context]

    def statement(self) -> str:
        verb = "raising" if self.to_value > self.from_value else "lowering"
        return (
            f"{verb} {self.parameter} from {_format(self.from_value)} to {_format(self.to_value)} "
            f"{self.direction} {self.objective} ({_context_words(self.context)})"
        )

    def subject(self) -> str:
        low, high = sorted((self.from_value, self.to_value))
        return json.dumps(["effect", self.objective, self.parameter, low, high, sorted(self.context.items())])


class ContrastClaim(_Claim):
    """Level `better` of `parameter` gives a higher `objective` than level `worse`."""

    kind: Literal["contrast"] = "contrast"
    parameter: Name
    better: Level
    worse: Level
    context: dict[Name, ContextValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _two_levels(self) -> ContrastClaim:
        if self.better == self.worse:
            raise ValueError(f"better and worse are the same level '{self.better}'")
        if self.parameter in self.context:
            raise ValueError(f"'{self.parameter}' is the parameter compared; it cannot also be held in context")
        return self

    def parameters(self) -> list[str]:
        return [self.parameter, *self.context]

    def statement(self) -> str:
        return (
            f"{self.parameter} = {self.better} gives a higher {self.objective} than {self.parameter} = {self.worse} "
            f"({_context_words(self.context)})"
        )

    def subject(self) -> str:
        pair = sorted((self.better, self.worse))
        return json.dumps(["contrast", self.objective, self.parameter, pair, sorted(self.context.items())])


class Condition(BaseModel):
    """One condition of a region: a numeric range (`at_least`, `at_most`) or a set of levels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parameter: Name
    at_least: float | None = None
    at_most: float | None = None
    levels: list[Level] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        numeric = self.at_least is not None or self.at_most is not None
        if numeric == (self.levels is not None):
            raise ValueError(f"condition on '{self.parameter}' needs either at_least/at_most or levels (not both)")
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError(f"condition on '{self.parameter}': at_least {self.at_least:g} > at_most {self.at_most:g}")
        return self

    def holds(self, value: Any) -> bool:
        if self.levels is not None:
            return value in self.levels
        x = float(value)
        return (self.at_least is None or x >= self.at_least - 1e-12) and (
            self.at_most is None or x <= self.at_most + 1e-12
        )

    def words(self) -> str:
        if self.levels is not None:
            return f"{self.parameter} is {' or '.join(self.levels)}"
        if self.at_least is not None and self.at_most is not None:
            return f"{_format(self.at_least)} ≤ {self.parameter} ≤ {_format(self.at_most)}"
        if self.at_least is not None:
            return f"{self.parameter} ≥ {_format(self.at_least)}"
        return f"{self.parameter} ≤ {_format(self.at_most)}"


class RegionClaim(_Claim):
    """The best `objective` in the space lies where every condition of `where` holds."""

    kind: Literal["region"] = "region"
    where: list[Condition] = Field(min_length=1)

    @field_validator("where")
    @classmethod
    def _one_per_parameter(cls, where: list[Condition]) -> list[Condition]:
        names = [c.parameter for c in where]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"parameter '{name}' has more than one condition; merge them into one")
        return sorted(where, key=lambda c: c.parameter)

    def parameters(self) -> list[str]:
        return [c.parameter for c in self.where]

    def holds(self, point: dict[str, Any]) -> bool:
        return all(c.holds(point[c.parameter]) for c in self.where)

    def statement(self) -> str:
        return f"the best {self.objective} lies where " + " and ".join(c.words() for c in self.where)


class AttainabilityClaim(_Claim):
    """Somewhere in the space `objective` goes above (or below) `value`."""

    kind: Literal["attainability"] = "attainability"
    value: float
    relation: Literal["above", "below"] = "above"

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("value must be a finite number")
        return value

    def parameters(self) -> list[str]:
        return []

    def statement(self) -> str:
        return f"{self.objective} can go {self.relation} {_format(self.value)} somewhere in the space"

    def subject(self) -> str:
        return json.dumps(["attainability", self.objective, self.value])


Claim = Annotated[EffectClaim | ContrastClaim | RegionClaim | AttainabilityClaim, Field(discriminator="kind")]
CLAIM_KINDS = ("effect", "contrast", "region", "attainability")
_CLAIM = TypeAdapter(Claim)


def parse_claim(data: Any) -> EffectClaim | ContrastClaim | RegionClaim | AttainabilityClaim:
    """Validate one claim from plain data (JSON, YAML); raises pydantic's ValidationError on bad input."""
    return _CLAIM.validate_python(data)


def claim_json_schema() -> dict[str, Any]:
    """The JSON Schema of one claim, as given to an LLM with the request for hypotheses."""
    return _CLAIM.json_schema()


def first_problem(exc: Exception) -> str:
    """A pydantic validation error as one line naming the field at fault (for rejection reasons and the CLI)."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    error = errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"] if part not in CLAIM_KINDS)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field is missing"
    return f"{where}: {message}" if where else message
