"""A person's hand in the hypothesis ledger: stating a hypothesis, and withdrawing one.

A person's claim passes the same guards as the model's and the LLM's (names, ranges, duplicates, safety), against
the campaign's problem rebuilt from its stored spec. A refused claim writes nothing; an accepted one is written
`open` with its Event in one transaction, and gets its credence at the campaign's next induction. No model is fitted
here, so the command stays quick (this module and what it imports never load torch).

The helpers `stored_spec` and `campaign_problem` are shared with knowledge import and the ledger view.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.campaign.spec import CampaignSpec
from orchestrator.errors import PeirceError, SpecError
from orchestrator.lab.build import build_lab
from orchestrator.ledger.hypotheses import ledger, log_hypothesis, new_hypothesis_row
from orchestrator.store.models import Campaign, CampaignStatus, Cycle, Hypothesis, HypothesisStatus
from orchestrator.store.records import add_event, find_campaign
from planners.hypotheses.claims import CLAIM_KINDS, Claim, first_problem, parse_claim
from planners.hypotheses.guards import GuardError, check_claim

if TYPE_CHECKING:
    from orchestrator.store.database import Database
    from planners.base import PlanningProblem


class ClaimRefused(PeirceError):
    """The guards refused a person's claim (or a retirement is not possible); nothing was written."""

    exit_code = 2


# --- shared look-ups ---------------------------------------------------------------------------------------------


def stored_spec(campaign: Campaign) -> CampaignSpec:
    """The campaign's spec as stored when it was created (paths already resolved)."""

    try:
        return CampaignSpec.model_validate(campaign.spec)
    except ValidationError as exc:  # a spec stored by an older peirce that this one no longer reads
        raise PeirceError(
            f"campaign '{campaign.name}': its stored spec no longer loads: {first_problem(exc)}"
        ) from None


def campaign_problem(spec: CampaignSpec) -> PlanningProblem:
    """The planning problem the guards check claims against: the space (a lookup lab's rows as candidates, so a
    region must contain a point the lab can run), the objectives and the safety exclusions."""

    return spec.problem(candidates=build_lab(spec).candidates)


def latest_cycle_id(session: Session, campaign_id: int) -> int | None:
    """The cycle a person's hypothesis is filed under: the campaign's newest one, or none before the first."""
    return session.scalar(
        select(Cycle.id).where(Cycle.campaign_id == campaign_id).order_by(Cycle.index.desc()).limit(1)
    )


# --- building a claim from command-line options ------------------------------------------------------------------

_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|=)\s*(.+?)\s*$")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$")

# Which options each kind reads; any other given option is refused rather than silently ignored.
_KIND_OPTIONS = {
    "effect": {"--parameter", "--from", "--to", "--direction", "--context"},
    "contrast": {"--parameter", "--better", "--worse", "--context"},
    "region": {"--where"},
    "attainability": {"--above", "--below"},
}


@dataclass
class ClaimOptions:
    """The `peirce hypothesize` options, as given (None or empty when not given)."""

    kind: str
    objective: str | None = None
    parameter: str | None = None
    from_value: float | None = None
    to_value: float | None = None
    direction: str | None = None
    better: str | None = None
    worse: str | None = None
    where: list[str] = field(default_factory=list)
    above: float | None = None
    below: float | None = None
    context: list[str] = field(default_factory=list)

    def given(self) -> set[str]:
        values = {
            "--parameter": self.parameter,
            "--from": self.from_value,
            "--to": self.to_value,
            "--direction": self.direction,
            "--better": self.better,
            "--worse": self.worse,
            "--where": self.where or None,
            "--above": self.above,
            "--below": self.below,
            "--context": self.context or None,
        }
        return {name for name, value in values.items() if value is not None}

    def to_data(self, problem: PlanningProblem) -> dict[str, Any]:
        """The claim as plain data for `parse_claim`; option errors name the option (`--where`, `--context`)."""
        if self.kind not in CLAIM_KINDS:
            raise SpecError("KIND", f"'{self.kind}' is not one of: {', '.join(CLAIM_KINDS)}")
        stray = sorted(self.given() - _KIND_OPTIONS[self.kind])
        if stray:
            raise SpecError(stray[0], f"not used by a{'n' if self.kind[0] in 'ae' else ''} {self.kind} claim")
        data: dict[str, Any] = {"kind": self.kind, "objective": default_objective(self.objective, problem)}
        if self.kind == "effect":
            _require(
                self,
                ("--parameter", "parameter"),
                ("--from", "from_value"),
                ("--to", "to_value"),
                ("--direction", "direction"),
            )
            data.update(
                parameter=self.parameter,
                from_value=self.from_value,
                to_value=self.to_value,
                direction=self.direction,
                context=parse_context(self.context, problem),
            )
        elif self.kind == "contrast":
            _require(self, ("--parameter", "parameter"), ("--better", "better"), ("--worse", "worse"))
            data.update(
                parameter=self.parameter,
                better=self.better,
                worse=self.worse,
                context=parse_context(self.context, problem),
            )
        elif self.kind == "region":
            if not self.where:
                raise SpecError("--where", "a region needs at least one condition, e.g. --where 'temperature>=105'")
            data["where"] = parse_where(self.where, problem)
        else:
            if (self.above is None) == (self.below is None):
                raise SpecError("--above", "give either --above X or --below X")
            data["relation"] = "above" if self.above is not None else "below"
            data["value"] = self.above if self.above is not None else self.below
        return data


def _require(options: ClaimOptions, *pairs: tuple[str, str]) -> None:
    for option, attribute in pairs:
        if getattr(options, attribute) is None:
            raise SpecError(option, f"required for a{'n' if options.kind[0] in 'ae' else ''} {options.kind} claim")


def default_objective(objective: str | None, problem: PlanningProblem) -> str:
    """The objective named, or the campaign's only one (a campaign with several must be told which)."""
    if objective is not None:
        return objective
    names = [o.name for o in problem.objectives]
    if len(names) > 1:
        raise SpecError("--objective", f"the campaign has several objectives ({', '.join(names)}); name one")
    return names[0]


def _numeric(name: str, problem: PlanningProblem) -> bool | None:
    """True/False for a known parameter; None for an unknown one (the guards then name it)."""
    try:
        return bool(problem.space.parameter(name).is_numeric)
    except KeyError:
        return None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_context(items: Sequence[str], problem: PlanningProblem) -> dict[str, Any]:
    """`--context p=v` options: a number for a numeric parameter, a level name otherwise."""
    context: dict[str, Any] = {}
    for item in items:
        match = _ASSIGNMENT.match(item)
        if match is None:
            raise SpecError("--context", f"'{item}' is not of the form parameter=value")
        name, text = match.groups()
        numeric = _numeric(name, problem)
        value = _number(text) if numeric is not False else None
        context[name] = value if value is not None else text
    return context


def parse_where(items: Sequence[str], problem: PlanningProblem) -> list[dict[str, Any]]:
    """`--where` options (`p>=x`, `p<=x`, `p=LEVEL`, `p=L1|L2`) as conditions; bounds on one parameter merge
    (`--where t>=90 --where t<=105` is the range 90..105), since a region holds one condition per parameter."""
    conditions: dict[str, dict[str, Any]] = {}
    for item in items:
        match = _CONDITION.match(item)
        if match is None:
            raise SpecError("--where", f"'{item}' is not of the form p>=x, p<=x, p=LEVEL or p=L1|L2")
        name, operator, text = match.groups()
        condition = conditions.setdefault(name, {"parameter": name})
        bounds: dict[str, Any]
        numeric = _numeric(name, problem)
        if operator == "=":
            value = _number(text) if numeric is not False else None
            if numeric and value is None:
                raise SpecError("--where", f"'{item}': {name} is numeric; give a number")
            if value is not None and "|" not in text:  # a numeric parameter pinned to one value
                bounds = {"at_least": value, "at_most": value}
            else:
                bounds = {"levels": [level.strip() for level in text.split("|") if level.strip()]}
        else:
            value = _number(text)
            if value is None:
                raise SpecError("--where", f"'{item}': {operator} needs a number")
            bounds = {"at_least" if operator == ">=" else "at_most": value}
        for key, value in bounds.items():
            if key in condition:
                raise SpecError("--where", f"'{item}': {name} already has {key.replace('_', ' ')} set")
            condition[key] = value
    return list(conditions.values())


def read_claim_file(path: Path, kind: str | None) -> tuple[dict[str, Any], str]:
    """One claim from a JSON file (any kind), and its rationale when the file has a `rationale` key beside the
    claim's fields (as an LLM's or a colleague's proposal often does)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError("--from-json", f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError("--from-json", f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SpecError("--from-json", f"{path} is not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise SpecError("--from-json", f"{path} must hold one claim (a JSON object), not {type(data).__name__}")
    rationale = data.pop("rationale", "")
    if not isinstance(rationale, str):
        raise SpecError("rationale", "must be text")
    if kind is not None and data.get("kind") != kind:
        raise SpecError("KIND", f"'{kind}' given, but the claim in {path} is of kind '{data.get('kind')}'")
    return data, rationale


def parse_person_claim(data: Any) -> Claim:
    """Schema errors as one line naming the claim's field (e.g. `direction: Input should be ...`)."""
    try:
        return parse_claim(data)
    except ValidationError as exc:
        raise SpecError("claim", first_problem(exc)) from None


# --- writing ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Added:
    id: int
    statement: str
    notes: list[str]


def add_hypothesis(
    db: Database,
    ref: str,
    claim_data: ClaimOptions | dict[str, Any],
    rationale: str = "",
) -> Added:
    """Check a person's claim against the campaign and, when the guards accept it, write it `open`.

    `claim_data` is either the command-line options or one claim as plain data (from `--from-json`). A refused
    claim raises SpecError (malformed) or ClaimRefused (the guards' reason) and the transaction writes nothing.
    """

    with db.session() as session:
        campaign = find_campaign(session, ref)
        spec = stored_spec(campaign)
        problem = campaign_problem(spec)
        if isinstance(claim_data, ClaimOptions):
            data = claim_data.to_data(problem)
        else:
            data = dict(claim_data)
            if "objective" not in data:
                data["objective"] = default_objective(None, problem)
        claim = parse_person_claim(data)
        try:
            claim = check_claim(claim, problem, ledger(session, campaign.id), spec.safety)
        except GuardError as exc:
            raise ClaimRefused(str(exc)) from None
        row = new_hypothesis_row(campaign.id, latest_cycle_id(session, campaign.id), None, claim, "person", rationale)
        session.add(row)
        session.flush()
        log_hypothesis(session, campaign.id, row)
        notes = []
        if not spec.hypotheses.enabled:
            notes.append("this campaign has `hypotheses: none`, so no experiments will be chosen to test it")
        elif campaign.status == CampaignStatus.COMPLETED:
            notes.append(f"campaign '{campaign.name}' is completed; it is tested only if the campaign runs again")
        return Added(row.id, row.statement, notes)


def retire_hypothesis(db: Database, ref: str, hypothesis_id: int, reason: str) -> str:
    """A person withdraws an open hypothesis: it stays in the ledger as `retired`, with the reason, and is no
    longer tested. Settled and rejected hypotheses keep their status (their history is the record)."""
    reason = reason.strip()
    if not reason:
        raise SpecError("--reason", "say why the hypothesis is withdrawn")
    with db.session() as session:
        campaign = find_campaign(session, ref)
        row = session.get(Hypothesis, hypothesis_id)
        if row is None or row.campaign_id != campaign.id:
            raise SpecError("ID", f"campaign '{campaign.name}' has no hypothesis {hypothesis_id}")
        if row.status != HypothesisStatus.OPEN:
            raise ClaimRefused(f"hypothesis {hypothesis_id} is {row.status}; only an open hypothesis can be retired")
        row.status, row.reason = HypothesisStatus.RETIRED, f"retired by a person: {reason}"[:4000]
        session.flush()
        add_event(
            session,
            campaign.id,
            "hypothesis",
            row.id,
            "state",
            from_state=HypothesisStatus.OPEN,
            to_state=HypothesisStatus.RETIRED,
            detail={"reason": row.reason, "by": "person"},
        )
        return f"hypothesis {row.id} retired: {row.statement}"
