"""Literature notes into the ledger: each note's claims become open hypotheses when the campaign is created.

A note (`orchestrator.campaign.notes_file`) is a scientist's reading of a paper: prose, plus a front matter with
the citation and claims in the campaign's names. What a paper found is only a prior here: each claim enters
`open`, to be tested by the campaign like any other (deduction picks experiments that discriminate it, induction
settles it), with the note and its citation in `origin` and in its rationale. A claim the guards refuse (a
parameter the space lacks, a value out of range, a repeat) is kept `rejected` with their reason.

Every note is recorded as read (`note-read`, with the hypotheses it gave), and every line that reads as an
instruction to an AI model as `note-flagged`: such a line is never read as anything but data (the model-based
abductor reads no prose; an LLM sees it fenced and marked). A flag inside the front matter withholds the note's
claims, rejected with the flag as their reason, since that text was to be read as structure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from orchestrator.campaign.notes_file import Note, NoteClaim, read_note
from orchestrator.ledger.hypotheses import ledger, log_hypothesis, new_hypothesis_row
from orchestrator.records.events import Entity, EventKind, NoteFlaggedDetail, NoteReadDetail
from orchestrator.store.models import Hypothesis, HypothesisStatus
from orchestrator.store.records import add_event
from planners.hypotheses.base import LedgerEntry
from planners.hypotheses.claims import parse_claim
from planners.hypotheses.guards import GuardError, check_claim

if TYPE_CHECKING:
    from orchestrator.campaign.spec import CampaignSpec
    from planners.base import PlanningProblem

FLAGGED_ACTION = "marked as data for an LLM; never read as an instruction"
FLAGGED_FRONT_ACTION = "in the front matter: the note's claims are not taken"


def import_notes(session: Session, campaign_id: int, spec: CampaignSpec, problem: PlanningProblem) -> list[Hypothesis]:
    """Write the claims of every note of `spec.hypotheses.notes` (the caller's transaction) and the notes' events.
    Returns the hypothesis rows written, open or rejected."""
    so_far: list[LedgerEntry] = ledger(session, campaign_id)
    written: list[Hypothesis] = []
    for i, path in enumerate(spec.hypotheses.notes):
        note = read_note(path, f"hypotheses.notes[{i}]")
        rows = [_claim_row(session, campaign_id, spec, problem, note, claim, so_far) for claim in note.claims]
        front = {flag.first for flag in note.front_flags}
        for flag in note.flags:
            detail = NoteFlaggedDetail(
                file=path.name,
                line=flag.line,
                text=flag.text,
                pattern=flag.pattern,
                lines=[flag.first, flag.last],
                action=FLAGGED_FRONT_ACTION if flag.first in front else FLAGGED_ACTION,
            )
            add_event(
                session, campaign_id, Entity.CAMPAIGN, campaign_id, EventKind.NOTE_FLAGGED, detail=detail.model_dump()
            )
        read = NoteReadDetail(
            file=path.name,
            citation=note.citation,
            claims=len(note.claims),
            hypotheses=[row.id for row in rows],
            flagged_lines=[flag.line for flag in note.flags],
        )
        add_event(session, campaign_id, Entity.CAMPAIGN, campaign_id, EventKind.NOTE_READ, detail=read.model_dump())
        written += rows
    return written


def _claim_row(
    session: Session,
    campaign_id: int,
    spec: CampaignSpec,
    problem: PlanningProblem,
    note: Note,
    item: NoteClaim,
    so_far: list[LedgerEntry],
) -> Hypothesis:
    claim = parse_claim(item.data)  # checked when the campaign file was read
    reason: str | None = None
    if note.front_flags:
        reason = f"{note.path.name} {note.front_flags[0].describe()}; its claims are not taken"
    else:
        try:
            claim = check_claim(claim, problem, so_far, spec.safety)
        except GuardError as exc:
            reason = str(exc)
    cited = f" ({note.citation})" if note.citation else ""
    rationale = f"from the literature note {note.path.name}{cited}" + (f": {item.rationale}" if item.rationale else "")
    row = new_hypothesis_row(campaign_id, None, None, claim, "person", rationale)
    row.origin = {"note": note.path.name, "citation": note.citation, "rationale": item.rationale}
    if reason is not None:  # stored as written, so a person sees what did not carry over and why
        row.status, row.reason, row.claim = HypothesisStatus.REJECTED, reason, item.data
    session.add(row)
    session.flush()
    if row.status == HypothesisStatus.OPEN:
        so_far.append(LedgerEntry(row.id, claim, row.statement, row.source, row.status, None, 0))
    log_hypothesis(session, campaign_id, row, from_note=note.path.name)
    return row
