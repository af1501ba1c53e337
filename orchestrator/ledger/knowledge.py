"""Knowledge carried from one campaign to the next: export the settled hypotheses, import them as open claims.

A knowledge file is JSON:

    {"format": "peirce-knowledge", "version": 1, "campaign": "...", "goal": "...", "exported_at": "...",
     "objectives": [...], "hypotheses": [{"claim": {...}, "statement", "status", "credence", "evidence",
     "source", "rationale", "reason", "origin"?}]}

What was supported or refuted elsewhere is only a prior belief here: the space, the lab or the chemistry may
differ. So imported claims enter the new campaign `open`, to be tested like any other, with where they came from
in `origin` and in their rationale; claims that do not fit the new campaign (a parameter it lacks, a value out of
its range, a duplicate) are kept `rejected` with the guards' reason, so a person sees what did not carry over.

A malformed file is refused when the campaign file is loaded (`orchestrator.campaign.knowledge_file.check_file`), before
anything is written; that check reads JSON and parses claims only, so `peirce validate` stays fast.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.campaign.knowledge_file import FORMAT, VERSION, KnowledgeEntry, KnowledgeFile, read_file
from orchestrator.ledger.edits import campaign_problem, latest_cycle_id, stored_spec
from orchestrator.ledger.hypotheses import ledger, log_hypothesis, new_hypothesis_row
from orchestrator.ledger.notes import import_notes
from orchestrator.store.models import Hypothesis, HypothesisStatus
from orchestrator.store.records import find_campaign
from planners.hypotheses.base import LedgerEntry
from planners.hypotheses.claims import Claim, parse_claim
from planners.hypotheses.guards import GuardError, check_claim

if TYPE_CHECKING:
    from orchestrator.campaign.spec import CampaignSpec
    from orchestrator.store.database import Database
    from planners.base import PlanningProblem

EXPORTED = (HypothesisStatus.SUPPORTED, HypothesisStatus.REFUTED)
EXPORTED_ALL = (*EXPORTED, HypothesisStatus.OPEN, HypothesisStatus.RETIRED)


# --- export -------------------------------------------------------------------------------------------------------


def export_knowledge(db: Database, ref: str, include_all: bool = False) -> dict[str, Any]:
    """The campaign's supported and refuted hypotheses (with `include_all`, also open and retired ones) as a
    knowledge file's content. Rejected proposals never leave the campaign: they were never hypotheses."""
    statuses = EXPORTED_ALL if include_all else EXPORTED
    with db.session() as session:
        campaign = find_campaign(session, ref)
        rows = session.scalars(
            select(Hypothesis)
            .where(Hypothesis.campaign_id == campaign.id, Hypothesis.status.in_(statuses))
            .order_by(Hypothesis.id)
        ).all()
        entries = []
        for row in rows:
            entry: dict[str, Any] = {
                "claim": row.claim,
                "statement": row.statement,
                "status": row.status,
                "credence": row.credence,
                "evidence": row.evidence,
                "source": row.source,
                "rationale": row.rationale,
                "reason": row.reason,
            }
            if row.origin:
                entry["origin"] = row.origin
            entries.append(entry)
        return {
            "format": FORMAT,
            "version": VERSION,
            "campaign": campaign.name,
            "goal": campaign.goal,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "objectives": list(campaign.spec.get("objectives", [])),
            "hypotheses": entries,
        }


# --- import -------------------------------------------------------------------------------------------------------


def import_at_creation(session: Session, campaign_id: int, spec: CampaignSpec) -> None:
    """Import every file of `spec.hypotheses.knowledge`, then the claims of every literature note of
    `spec.hypotheses.notes` (`orchestrator.ledger.notes`), into a campaign being created (the caller's
    transaction, so the campaign and its imported hypotheses are written together or not at all)."""
    paths = list(spec.hypotheses.knowledge)
    if not paths and not spec.hypotheses.notes:
        return
    problem = campaign_problem(spec)
    for i, path in enumerate(paths):
        import_file(session, campaign_id, spec, problem, path, f"hypotheses.knowledge[{i}]", cycle_id=None)
    if spec.hypotheses.notes:
        import_notes(session, campaign_id, spec, problem)


def import_into(db: Database, ref: str, path: Path) -> tuple[str, int, int]:
    """`peirce knowledge import`: import one file into an existing campaign. Returns (name, open, rejected)."""
    knowledge = read_file(path, "FILE")  # refuse a malformed file before opening a transaction
    with db.session() as session:
        campaign = find_campaign(session, ref)
        spec = stored_spec(campaign)
        problem = campaign_problem(spec)
        rows = import_file(
            session,
            campaign.id,
            spec,
            problem,
            path,
            "FILE",
            cycle_id=latest_cycle_id(session, campaign.id),
            knowledge=knowledge,
        )
        opened = sum(row.status == HypothesisStatus.OPEN for row in rows)
        return campaign.name, opened, len(rows) - opened


def import_file(
    session: Session,
    campaign_id: int,
    spec: CampaignSpec,
    problem: PlanningProblem,
    path: Path,
    field: str,
    cycle_id: int | None,
    knowledge: KnowledgeFile | None = None,
) -> list[Hypothesis]:
    """Write each entry of one knowledge file as an `open` hypothesis, or `rejected` when the guards refuse it
    against this campaign (checked against the ledger so far, so two files stating the same claim import it once)."""
    knowledge = knowledge or read_file(path, field)
    so_far: list[LedgerEntry] = ledger(session, campaign_id)
    rows: list[Hypothesis] = []
    for entry in knowledge.hypotheses:
        claim = parse_claim(entry.claim)
        try:
            claim = check_claim(claim, problem, so_far, spec.safety)
            reason = None
        except GuardError as exc:
            reason = str(exc)
        row = _row(campaign_id, cycle_id, claim, entry, _origin(knowledge, entry, path), knowledge.campaign)
        if reason is not None:  # stored as proposed, so a person sees what did not carry over and why
            row.status, row.reason, row.claim = HypothesisStatus.REJECTED, reason, entry.claim
        session.add(row)
        session.flush()
        if row.status == HypothesisStatus.OPEN:
            so_far.append(LedgerEntry(row.id, claim, row.statement, row.source, row.status, None, 0))
        log_hypothesis(session, campaign_id, row, imported_from=str(path))
        rows.append(row)
    return rows


def _origin(knowledge: KnowledgeFile, entry: KnowledgeEntry, path: Path) -> dict[str, Any]:
    origin: dict[str, Any] = {
        "campaign": knowledge.campaign,
        "status": entry.status,
        "credence": entry.credence,
        "evidence": entry.evidence,
        "file": str(path),
        "rationale": entry.rationale,
        "reason": entry.reason,
    }
    if entry.origin:
        origin["origin"] = entry.origin  # the campaign before that, when it was itself imported
    return origin


def _row(
    campaign_id: int,
    cycle_id: int | None,
    claim: Claim,
    entry: KnowledgeEntry,
    origin: dict[str, Any],
    campaign: str,
) -> Hypothesis:
    row = new_hypothesis_row(campaign_id, cycle_id, None, claim, entry.source, imported_rationale(campaign, entry))
    row.origin = origin
    return row


def imported_rationale(campaign: str, entry: KnowledgeEntry) -> str:
    """`was supported in campaign X (credence 0.973, 4 results)`: the prior a person reads beside the claim."""
    credence = "no credence" if entry.credence is None else f"credence {entry.credence:.3f}"
    results = f"{entry.evidence} result{'s' if entry.evidence != 1 else ''}"
    return f"was {entry.status} in campaign {campaign} ({credence}, {results})"
