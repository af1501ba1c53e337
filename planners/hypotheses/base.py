"""What abductors receive and return, shared by the model-based and the LLM abductor.

An abductor proposes `Draft`s; it does not decide what enters the ledger. The guards (`guards.py`) check every
draft the same way whatever its source, and the orchestrator stores accepted and rejected ones alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from planners.base import Observation, PlanningProblem
from planners.hypotheses.claims import Claim


@dataclass(frozen=True)
class Draft:
    """A proposed hypothesis, before the guards."""

    claim: Claim
    rationale: str
    source: str  # llm | model | person


@dataclass(frozen=True)
class Rejected:
    """Something proposed as a hypothesis that did not become one, with the reason."""

    proposed: Any  # the claim as proposed (plain data), or the raw text when it could not be parsed
    reason: str
    source: str


@dataclass(frozen=True)
class LedgerEntry:
    """An existing hypothesis as abductors and guards see it."""

    id: int
    claim: Claim
    statement: str
    source: str
    status: str
    credence: float | None
    evidence: int


@dataclass(frozen=True)
class AbductionRequest:
    problem: PlanningProblem
    goal: str
    observations: Sequence[Observation]
    ledger: Sequence[LedgerEntry]
    max_new: int
    seed: int
    notes: Sequence[tuple[str, str]] = ()  # (file name, text) a scientist put beside the campaign


@dataclass
class Abduction:
    """What one abduction produced. `exchange` (LLM only) is stored with the Decision for reviewers."""

    drafts: list[Draft] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    exchange: dict[str, Any] | None = None
    error: str | None = None  # why the abductor produced nothing usable (endpoint down, malformed answer, ...)
