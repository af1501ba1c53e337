"""What a decision records, as types: the planner's own state, the hypothesis-test selection, the abduction's inputs.

A `Decision` row keeps them as JSON (`model_state`, `proposals`); replay and the archive parse them with these
models (`DeductionState.model_validate(row.model_state)`) instead of reaching into dicts. The planner's state and
the orchestrator's own record of the batch are separate fields: the planner gets back only its own state as the
next warm start.

Records written before this split are read too (see `DeductionState` and `PlannedProposal`): a deduction's
`model_state` was then the planner's state with the test selection merged into it under `hypothesis_tests`, and a
test proposal named its hypothesis only in its rationale (`tests hypothesis 3 (…)`).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator

from orchestrator.records.base import StrictModel

# How a test proposal named its hypothesis before the record had a field for it (ledger `select_tests`).
_LEGACY_TEST_MENTION = re.compile(r"^tests hypothesis (\d+) \(")


class SurrogateFit(StrictModel):
    """What the ledger's surrogate was fitted from besides the results: the hyper-parameters it warm-started from
    and the seed of the stage that fitted it first. Replay fits the same surrogate from these."""

    warm_start: dict[str, Any] = Field(default_factory=dict)
    seed: int


class OpenClaim(StrictModel):
    """An open hypothesis as the test selection saw it."""

    id: int
    claim: dict[str, Any]


class TestInputs(StrictModel):
    """What the choice of a batch's hypothesis tests rested on besides the results."""

    open: list[OpenClaim]
    widening: dict[str, float] = Field(default_factory=dict)
    surrogate: SurrogateFit
    n_tests: int = Field(ge=0)


class TestSelection(StrictModel):
    """The part of a batch chosen to test hypotheses: how many (the first `tests` proposals), and why none, or how
    many candidates and open claims the choice weighed, with its inputs (absent in records older than them)."""

    __test__ = False  # not a pytest test class, whatever its name says

    tests: int = Field(default=0, ge=0)
    reason: str | None = None
    candidates: int | None = None
    open: int | None = None
    inputs: TestInputs | None = None


class RelatedSeen(StrictModel):
    """The results of one related campaign a deduction's planner saw: the campaign and its experiments' ids, in the
    order they were given (replay reads the same rows again, whatever the campaign has done since)."""

    campaign: str
    observation_ids: list[int]


class DeductionState(StrictModel):
    """A deduction's `model_state`: the planner's own state (its next warm start), the test selection, and the
    related campaigns' results it was given (absent for a campaign that names none).

    Stored as `{"planner": …, "hypothesis_tests": …, "related": …}`. Older records merged the first two into one
    mapping (the planner's keys with `hypothesis_tests` beside them); they are read into the same fields.
    """

    planner: dict[str, Any] | None = None
    hypothesis_tests: TestSelection | None = None
    related: list[RelatedSeen] | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_legacy(cls, data: Any) -> Any:
        if data is None:
            return {}
        if not isinstance(data, dict) or is_split_deduction_state(data):
            return data
        planner = {key: value for key, value in data.items() if key != "hypothesis_tests"}
        return {"planner": planner or None, "hypothesis_tests": data.get("hypothesis_tests")}

    @property
    def tests(self) -> int:
        return self.hypothesis_tests.tests if self.hypothesis_tests is not None else 0

    def stored(self) -> dict[str, Any] | None:
        """The JSON a Decision row keeps (None when there is nothing to keep)."""
        if self.planner is None and self.hypothesis_tests is None and self.related is None:
            return None
        # `related` only where there is some: the record of a campaign without related campaigns is as before.
        return self.model_dump(mode="json", exclude={"related"} if self.related is None else set())


def is_split_deduction_state(data: dict[str, Any]) -> bool:
    """Whether a stored deduction state has the two separate fields (rather than the older merged mapping)."""
    return (
        "planner" in data
        and set(data) <= {"planner", "hypothesis_tests", "related"}
        and isinstance(data["planner"], dict | None)
    )


class PredictedValue(StrictModel):
    """A proposal's prediction of one objective; `spread` is the factor its sd was widened by
    (`planners.base.Prediction`): 1 in records older than it, which stated the model's own sd."""

    mean: float
    std: float
    spread: float = 1.0


class PlannedProposal(StrictModel):
    """One experiment a deduction proposed: its parameters, the planner's prediction, why, and — for a test of
    the hypothesis ledger — the hypothesis it tests."""

    parameters: dict[str, Any]
    predicted: dict[str, PredictedValue] = Field(default_factory=dict)
    rationale: str = ""
    tests_hypothesis: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_link(cls, data: Any) -> Any:
        """A record older than the field names its hypothesis only in the rationale the ledger wrote."""
        if not isinstance(data, dict) or "tests_hypothesis" in data:
            return data
        match = _LEGACY_TEST_MENTION.match(str(data.get("rationale") or ""))
        return {**data, "tests_hypothesis": int(match.group(1)) if match else None}


class LedgerEntryRecord(StrictModel):
    """One hypothesis of the ledger as an abduction saw it."""

    id: int
    claim: dict[str, Any]
    statement: str
    source: str
    status: str
    credence: float | None = None
    evidence: int = 0


class AbductionInputs(StrictModel):
    """An abduction's inputs beyond the results: the ledger as it stood, the room for new claims, the widening of
    the model's errors, and what its surrogate was fitted from (None: too few results for a model)."""

    ledger: list[LedgerEntryRecord]
    max_new: int
    widening: dict[str, float] = Field(default_factory=dict)
    surrogate: SurrogateFit | None = None


class AbductionState(StrictModel):
    """An abduction's `model_state`: the surrogate's hyper-parameters and the inputs (absent in older records)."""

    hyperparameters: dict[str, Any] | None = None
    inputs: AbductionInputs | None = None

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, data: Any) -> Any:
        return {} if data is None else data


class ProposedClaim(StrictModel):
    """One claim an abduction proposed (before the guards): the claim, why, and who proposed it."""

    claim: dict[str, Any]
    rationale: str = ""
    source: str
