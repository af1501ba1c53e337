"""Event vocabulary: the entities an Event is about, every kind of event in use, and the details readers parse.

Writers pass these names (`EventKind.STATE`), readers compare with them, and the archive knows from `Entity` which
table an event's `entity_id` points into. A kind written by a station's journal (`action-started`, …) is named here
too: the station writes the string, the database keeps it, and the review reads it back by this name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from orchestrator.records.base import StrictModel


class Entity(StrEnum):
    CAMPAIGN = "campaign"
    CYCLE = "cycle"
    DECISION = "decision"
    EXPERIMENT = "experiment"
    HYPOTHESIS = "hypothesis"


class EventKind(StrEnum):
    # Any entity.
    CREATED = "created"
    STATE = "state"
    # A decision.
    WARNING = "warning"
    # An experiment a person answered: parameters edited before it ran (the planner's kept), or a rejected point
    # allowed to be proposed again.
    EDITED = "edited"
    ALLOWED = "allowed"
    # A cycle taken up again after an interruption.
    RESUMED = "resumed"
    # A campaign.
    IMPORTED = "imported"
    RUNNER_REPLACED = "runner-replaced"
    INSTRUMENTS_MOVED = "instruments-moved"  # the campaign file gave its instruments other ports
    # Prefect's record of a dead runner's flow run, set to Crashed by the run that took the campaign over.
    FLOW_RUN_CRASHED = "flow-run-crashed"
    # An experiment on a station: its journal, written as each action happens.
    SAMPLE = "sample"
    WAIT = "wait"
    ACTION_STARTED = "action-started"
    ACTION_DONE = "action-done"
    ACTION_FAILED = "action-failed"
    INSTRUMENT_SAFE = "instrument-safe"
    INSTRUMENT_SAFE_FAILED = "instrument-safe-failed"
    CONNECT_STARTED = "connect-started"
    CONNECT_DONE = "connect-done"
    CONNECT_FAILED = "connect-failed"
    # An analysis step turned saved arrays (stored as data products) into numbers, or could not.
    ANALYSIS_DONE = "analysis-done"
    ANALYSIS_FAILED = "analysis-failed"
    # A person entered the number of a station's manual step (or said it could not be done); the station's journal
    # then shows the step as an action of the instrument "person".
    STEP_ENTERED = "step-entered"
    # A campaign's webhook did not take a notification (people/notify.py).
    NOTIFY_FAILED = "notify-failed"
    # A literature note of `hypotheses.notes` read when the campaign was created, and each of its lines that reads
    # as an instruction to an AI model (orchestrator/ledger/notes.py).
    NOTE_READ = "note-read"
    NOTE_FLAGGED = "note-flagged"


# The journal kinds of one instrument action: started before a byte is sent, then done or failed.
ACTION_KINDS = (EventKind.ACTION_STARTED, EventKind.ACTION_DONE, EventKind.ACTION_FAILED)


class ActionDetail(StrictModel):
    """The detail of an `action-*` event: which protocol step on which instrument, and (once it ended) how."""

    step: int | None = None
    instrument: str | None = None
    action: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    attempt: int | None = None
    result: Any = None
    seconds: float | None = None
    error: str | None = None
    message: str | None = None
    limit: Any = None
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    by: str | None = None  # who entered the value of a manual step (instrument "person")
    saved: dict[str, str] = Field(default_factory=dict)  # returned measurement -> the name the protocol saved it as


class AnalysisDetail(StrictModel):
    """The detail of an `analysis-*` event: which step, which analysis on which saved arrays, and what it gave."""

    step: int
    analyse: str
    input: dict[str, str]  # the analysis's array argument -> the saved array's name
    args: dict[str, Any] = Field(default_factory=dict)
    attempt: int | None = None
    result: dict[str, float] = Field(default_factory=dict)
    message: str | None = None


class NotifyFailedDetail(StrictModel):
    """The detail of a `notify-failed` event: which webhook (by its variable, never its URL), which notification,
    and how it failed (the HTTP status it answered, or the kind of error)."""

    webhook: str
    event: str
    status: int | None = None
    error: str | None = None


class NoteReadDetail(StrictModel):
    """The detail of a campaign's `note-read` event: which note, its citation, the claims it gave the ledger (ids)
    and how many of its lines were flagged."""

    file: str
    citation: str = ""
    claims: int
    hypotheses: list[int] = Field(default_factory=list)
    flagged_lines: list[int] = Field(default_factory=list)


class NoteFlaggedDetail(StrictModel):
    """The detail of a campaign's `note-flagged` event: a line of a note that reads as an instruction to an AI model,
    and what was done with it."""

    file: str
    line: int  # the line that matched
    text: str
    pattern: str
    lines: list[int]  # the first and last lines of its paragraph, all marked
    action: str  # e.g. "marked as data for an LLM; never read as an instruction"


class ImportedDetail(StrictModel):
    """The detail of a campaign's `imported` event: where it came from and which id here was which id there."""

    archive: str
    members_sha256: str
    exported_at: str | None = None
    peirce_version: str | None = None
    rehashed_decisions: int
    unverified_decisions: list[int]
    ids: dict[str, dict[str, int]]
