"""The `approval:` block of a campaign file: who must approve planned experiments before they run, and when.

    approval: none                      # nobody (the default)
    approval: batch                     # a person approves every batch
    approval:                           # a person approves what a rule catches; the rest goes ahead
      rules:                            # (`policy: rules` is implied)
        - {parameter: "temperature > 150"}      # a proposed parameter value (>, >=, <, <=, ==, != a number;
        - {parameter: "ligand in [XPhos, tBuXPhos]"}  #  ==, != or `in [a, b]` a categorical level or molecule)
        - {tests_hypothesis: llm}               # chosen to test a hypothesis from llm | model | person | any
        - {first_use: ligand}                   # a level or molecule no approved experiment has used yet
        - {predicted: "yield > 90"}             # the predicted mean of an objective (`yield.std > 10`: its sd)
      timeout: 30m                      # how long the runner waits for an answer before the campaign pauses

Each rule is one key. Its condition is parsed here, by a small grammar (never `eval`), and checked against the
campaign's parameters and objectives when the file is loaded (`check_rules`), so a misspelt name is refused with its
field path (`approval.rules[1].parameter: 'tempx' is not a parameter`) before anything runs. Evaluating a rule
against a proposal is the people room's work (`people.approval`); this module only says what the rules are, and
`campaign.spec.ApprovalPolicy` holds them with the policy and its timeout.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from orchestrator.errors import SpecError
from orchestrator.records.base import StrictModel as _Strict

NUMERIC_OPERATORS = (">=", "<=", "==", "!=", ">", "<")
LEVEL_OPERATORS = ("==", "!=", "in")
HYPOTHESIS_SOURCES = ("llm", "model", "person", "any")

_CONDITION = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\.(?P<field>mean|std))?\s*"
    r"(?P<op>>=|<=|==|!=|>|<|\bin\b)\s*(?P<value>.+?)\s*$"
)


@dataclass(frozen=True)
class Condition:
    """`name op value`: a number for >, >=, <, <=, ==, !=; a level (or a list of levels for `in`) otherwise.
    `field` (predicted rules only): `mean` or `std` of the prediction."""

    name: str
    operator: str
    value: float | str | tuple[str, ...]
    field: str = "mean"

    @property
    def numeric(self) -> bool:
        return isinstance(self.value, float)

    def holds(self, x: Any) -> bool:
        """Whether value `x` meets the condition (a number against a number, a level against levels)."""
        if isinstance(self.value, float):
            if isinstance(x, str):  # a level that looks like a number (`solvent == 2`)
                if self.operator not in ("==", "!="):
                    return False
                return (x == _level_text(self.value)) == (self.operator == "==")
            if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
                return False
            y = self.value
            equal = math.isclose(float(x), y, rel_tol=1e-9, abs_tol=1e-12)
            return {
                ">": x > y and not equal,
                ">=": x >= y or equal,
                "<": x < y and not equal,
                "<=": x <= y or equal,
                "==": equal,
                "!=": not equal,
            }[self.operator]
        if self.operator == "in":
            return str(x) in self.value
        return (str(x) == self.value) == (self.operator == "==")

    def words(self) -> str:
        subject = self.name if self.field == "mean" else f"{self.name}.{self.field}"
        if isinstance(self.value, tuple):
            return f"{subject} in [{', '.join(self.value)}]"
        value = f"{self.value:g}" if isinstance(self.value, float) else self.value
        return f"{subject} {self.operator} {value}"


def parse_condition(text: str, *, allow_field: bool = False) -> Condition:
    """A condition from its text; ValueError (saying what a condition looks like) if it is not one."""
    example = "'yield > 90' or 'yield.std > 10'" if allow_field else "'temperature > 150' or 'ligand in [a, b]'"
    match = _CONDITION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a condition such as {example}")
    name, field, operator, raw = match["name"], match["field"], match["op"], match["value"]
    if raw[:1] in "<>=!":  # `x >> 1`, `x =< 1`
        raise ValueError(f"{text!r} is not a condition such as {example}")
    if field is not None and not allow_field:
        raise ValueError(f"{text!r}: '.{field}' applies to predictions only (a `predicted` rule)")
    if operator == "in":
        if not (raw.startswith("[") and raw.endswith("]")):
            raise ValueError(f"{text!r}: `in` takes a list of levels, such as [a, b]")
        levels = tuple(_unquoted(item) for item in raw[1:-1].split(",") if item.strip())
        if not levels or any(not level for level in levels):
            raise ValueError(f"{text!r}: `in` takes a list of levels, such as [a, b]")
        return Condition(name, operator, levels, field or "mean")
    number = _number(raw)
    if number is not None:
        return Condition(name, operator, number, field or "mean")
    if operator not in ("==", "!="):
        raise ValueError(f"{text!r}: {operator} compares with a number, and {raw!r} is not one")
    level = _unquoted(raw)
    if not level:
        raise ValueError(f"{text!r} is not a condition such as {example}")
    return Condition(name, operator, level, field or "mean")


def _number(raw: str) -> float | None:
    if raw[:1] in ("'", '"'):
        return None  # a quoted value is a level even when it looks like a number
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _unquoted(raw: str) -> str:
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in ("'", '"'):
        return text[1:-1]
    return text


RuleKind = Literal["parameter", "tests_hypothesis", "first_use", "predicted"]
RULE_KINDS: tuple[RuleKind, ...] = ("parameter", "tests_hypothesis", "first_use", "predicted")


class ApprovalRule(_Strict):
    """One rule of `approval.rules`: exactly one of its keys. A proposal that a rule catches waits for a person."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    parameter: str | None = Field(
        default=None, description="A condition on a proposed parameter: 'temperature > 150', 'ligand in [a, b]'."
    )
    tests_hypothesis: Literal["llm", "model", "person", "any"] | None = Field(
        default=None, description="The proposal tests a hypothesis from this source (llm, model, person, any)."
    )
    first_use: str | None = Field(
        default=None, description="A categorical or molecule parameter: a value no approved experiment used yet."
    )
    predicted: str | None = Field(
        default=None, description="A condition on a prediction: 'yield > 90' (mean), 'yield.std > 10'."
    )

    @field_validator("parameter")
    @classmethod
    def _parameter_condition(cls, value: str | None) -> str | None:
        if value is not None:
            parse_condition(value)
        return value

    @field_validator("predicted")
    @classmethod
    def _predicted_condition(cls, value: str | None) -> str | None:
        if value is not None:
            condition = parse_condition(value, allow_field=True)
            if not condition.numeric:
                raise ValueError(f"{value!r}: a prediction compares with a number")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> ApprovalRule:
        given = [kind for kind in RULE_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"a rule has exactly one key, one of: {', '.join(RULE_KINDS)} (given: {len(given)})")
        return self

    @property
    def kind(self) -> RuleKind:
        return next(kind for kind in RULE_KINDS if getattr(self, kind) is not None)

    @property
    def condition(self) -> Condition:
        """The parsed condition of a `parameter` or `predicted` rule."""
        if self.parameter is not None:
            return parse_condition(self.parameter)
        if self.predicted is not None:
            return parse_condition(self.predicted, allow_field=True)
        raise TypeError(f"a {self.kind} rule has no condition")

    def words(self) -> str:
        """The rule as a person reads it."""
        if self.tests_hypothesis is not None:
            source = "any source" if self.tests_hypothesis == "any" else self.tests_hypothesis
            return f"tests a hypothesis from {source}"
        if self.first_use is not None:
            return f"first use of a {self.first_use}"
        prefix = "predicted " if self.predicted is not None else ""
        return prefix + self.condition.words()


def check_rules(
    rules: Sequence[ApprovalRule], space: Sequence[Any], objectives: Sequence[Any], planner_kind: str
) -> None:
    """The rules (`approval.rules`) against the campaign: names of parameters and objectives, levels, types.
    Raises the first fault as a SpecError naming `approval.rules[i].<key>`."""
    parameters = {p.name: p for p in space}
    objective_names = [o.name for o in objectives]
    for i, rule in enumerate(rules):
        where = f"approval.rules[{i}].{rule.kind}"
        if rule.parameter is not None:
            _check_parameter_condition(where, rule.condition, parameters)
        elif rule.first_use is not None:
            parameter = parameters.get(rule.first_use)
            if parameter is None:
                raise SpecError(where, f"'{rule.first_use}' is not a parameter (parameters: {', '.join(parameters)})")
            if parameter.type not in ("categorical", "molecule"):
                raise SpecError(
                    where, f"'{rule.first_use}' is {parameter.type}; a first use is of a categorical level or molecule"
                )
        elif rule.predicted is not None:
            name = rule.condition.name
            if name not in objective_names:
                raise SpecError(where, f"'{name}' is not an objective (objectives: {', '.join(objective_names)})")
            if planner_kind != "bayesian":
                raise SpecError(
                    where, f"the {planner_kind} planner predicts nothing; a `predicted` rule needs planner bayesian"
                )


def _check_parameter_condition(where: str, condition: Condition, parameters: dict[str, Any]) -> None:
    parameter = parameters.get(condition.name)
    if parameter is None:
        raise SpecError(where, f"'{condition.name}' is not a parameter (parameters: {', '.join(parameters)})")
    if parameter.is_numeric:
        if not condition.numeric:
            raise SpecError(where, f"'{condition.name}' is {parameter.type}: compare it with a number")
        return
    if condition.numeric and condition.operator not in ("==", "!="):
        raise SpecError(where, f"'{condition.name}' is {parameter.type}: use ==, != or `in [levels]`")
    levels = condition.value if isinstance(condition.value, tuple) else (str(_level_text(condition.value)),)
    known = list(parameter.values)
    for level in levels:
        if level not in known:
            raise SpecError(where, f"'{level}' is not a level of '{condition.name}' (levels: {', '.join(known)})")


def _level_text(value: float | str | tuple[str, ...]) -> str:
    # A level that looks like a number (`solvent == 2`) was parsed as one; compare it as its text.
    return f"{value:g}" if isinstance(value, float) else str(value)
