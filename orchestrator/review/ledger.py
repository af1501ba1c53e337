"""Reading the hypothesis ledger back out: `peirce hypotheses` (the table, one hypothesis's history, JSON).

The table is what a scientist scans between cycles: what is believed, how strongly, on how many results, and who
proposed it. Rejected proposals are hidden by default (they were never hypotheses) but counted, so nothing is
silently dropped; `--all` shows them with the guards' reason. A hypothesis's history shows how its credence moved
cycle by cycle and which experiments tested it, with what it predicted beside what was measured.

A cycle can hold two credences of one hypothesis: the one it was proposed with (abduction evaluates a new claim
under the model of the results so far, before the cycle's experiments) and the one after the cycle's results
(induction). Each history row says which (`stage`: abduce or induce); the row itself does not record it, so it is
told by time: a credence written before its cycle entered induction is the abduction's.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.errors import SpecError
from orchestrator.store.models import (
    Cycle,
    Event,
    Experiment,
    Hypothesis,
    HypothesisCredence,
    HypothesisStatus,
    HypothesisTest,
    Measurement,
)
from orchestrator.store.records import find_campaign

if TYPE_CHECKING:
    from orchestrator.store.database import Database

STATUS_STYLE = {
    HypothesisStatus.OPEN: "cyan",
    HypothesisStatus.SUPPORTED: "green",
    HypothesisStatus.REFUTED: "red",
    HypothesisStatus.RETIRED: "dim",
    HypothesisStatus.REJECTED: "yellow",
}


# How the history table names the stage that wrote a credence.
STAGE_LABEL = {"abduce": "when proposed", "induce": "after the results"}


def _cycle_indices(session: Session, campaign_id: int) -> dict[int, int]:
    return dict(session.execute(select(Cycle.id, Cycle.index).where(Cycle.campaign_id == campaign_id)).all())


def _row_dict(row: Hypothesis, cycles: dict[int, int]) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "statement": row.statement,
        "source": row.source,
        "status": row.status,
        "credence": row.credence,
        "evidence": row.evidence,
        "cycle": cycles.get(row.cycle_id) if row.cycle_id is not None else None,
        "reason": row.reason,
        "rationale": row.rationale,
        "claim": row.claim,
        "origin": row.origin,
        "predicted": row.predicted,
        "created_at": row.created_at.isoformat(),
    }


def ledger_data(db: Database, ref: str, include_rejected: bool = False) -> dict[str, Any]:
    """The campaign's hypotheses in the order proposed; rejected ones counted, and listed with `include_rejected`."""
    with db.session() as session:
        campaign = find_campaign(session, ref)
        cycles = _cycle_indices(session, campaign.id)
        rows = session.scalars(
            select(Hypothesis).where(Hypothesis.campaign_id == campaign.id).order_by(Hypothesis.id)
        ).all()
        shown = [r for r in rows if include_rejected or r.status != HypothesisStatus.REJECTED]
        return {
            "campaign": campaign.name,
            "hypotheses": [_row_dict(r, cycles) for r in shown],
            "rejected": sum(r.status == HypothesisStatus.REJECTED for r in rows),
        }


def history_data(db: Database, ref: str, hypothesis_id: int) -> dict[str, Any]:
    """One hypothesis: its credence after each cycle, and every experiment that bore on it (chosen to test it or
    merely informative), with its prediction there and, once completed, the measured value."""
    with db.session() as session:
        campaign = find_campaign(session, ref)
        row = session.get(Hypothesis, hypothesis_id)
        if row is None or row.campaign_id != campaign.id:
            raise SpecError("--history", f"campaign '{campaign.name}' has no hypothesis {hypothesis_id}")
        cycles = _cycle_indices(session, campaign.id)
        induction_began = _induction_starts(session, campaign.id)
        credences = [
            {
                "cycle": cycles.get(c.cycle_id),
                "stage": _credence_stage(c, induction_began),
                "credence": c.credence,
                "evidence": c.evidence,
                "observations": c.observations,
            }
            for c in session.scalars(
                select(HypothesisCredence)
                .where(HypothesisCredence.hypothesis_id == row.id)
                .order_by(HypothesisCredence.id)
            )
        ]
        tests = []
        for test, experiment in session.execute(
            select(HypothesisTest, Experiment)
            .join(Experiment, HypothesisTest.experiment_id == Experiment.id)
            .where(HypothesisTest.hypothesis_id == row.id)
            .order_by(Experiment.seq)
        ).all():
            predicted = test.predicted or {}
            objective = predicted.get("objective") or (row.claim or {}).get("objective")
            tests.append(
                {
                    "seq": experiment.seq,
                    "chosen": test.chosen,
                    "information_bits": test.information_bits,
                    "predicted_mean": predicted.get("mean"),
                    "predicted_std": predicted.get("std"),
                    "objective": objective,
                    "state": experiment.state,
                    "measured": _measured(session, experiment.id, objective),
                    "parameters": experiment.parameters,
                }
            )
        return {
            "campaign": campaign.name,
            "hypothesis": _row_dict(row, cycles),
            "credences": credences,
            "tests": tests,
        }


def _induction_starts(session: Session, campaign_id: int) -> dict[int, datetime]:
    """When each cycle of the campaign entered induction (its `state → inducing` event)."""
    rows = session.execute(
        select(Event.entity_id, func.min(Event.at))
        .where(
            Event.campaign_id == campaign_id,
            Event.entity == "cycle",
            Event.kind == "state",
            Event.to_state == "inducing",
        )
        .group_by(Event.entity_id)
    ).all()
    return {cycle_id: began for cycle_id, began in rows if cycle_id is not None}


def _credence_stage(credence: HypothesisCredence, induction_began: dict[int, datetime]) -> str:
    """abduce: the credence a new hypothesis was proposed with, written before its cycle's induction began (or in a
    cycle that has not reached induction); induce: the credence after the cycle's results."""
    began = induction_began.get(credence.cycle_id)
    return "induce" if began is not None and credence.created_at >= began else "abduce"


def _measured(session: Session, experiment_id: int, objective: str | None) -> float | None:
    """The experiment's latest measured value of the objective (none until it completes)."""
    if objective is None:
        return None
    return session.scalar(
        select(Measurement.value)
        .where(Measurement.experiment_id == experiment_id, Measurement.name == objective)
        .order_by(Measurement.id.desc())
        .limit(1)
    )


# --- rendering ----------------------------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _prediction(test: dict[str, Any]) -> str:
    mean, std = test["predicted_mean"], test["predicted_std"]
    if mean is None:
        return "—"
    return f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}"


def _source(entry: dict[str, Any]) -> str:
    return f"{entry['source']}, imported" if entry.get("origin") else entry["source"]


def print_ledger(console: Console, data: dict[str, Any], include_rejected: bool) -> None:
    entries = data["hypotheses"]
    if not entries:
        console.print(f"no hypotheses in campaign '{escape(data['campaign'])}'")
    else:
        table = Table(
            title=f"hypotheses of {escape(data['campaign'])}", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False
        )
        # Numbers and statuses never wrap; the statement (and the reason) share the width that is left.
        for column in ("id", "kind", "statement", "source", "credence", "status", "evidence", "cycle"):
            numeric = column in ("id", "credence", "evidence", "cycle")
            table.add_column(
                column,
                justify="right" if numeric else "left",
                no_wrap=numeric or column == "status",
                ratio=3 if column == "statement" else None,
            )
        if include_rejected:
            table.add_column("reason", ratio=2)
        for e in entries:
            style = STATUS_STYLE.get(e["status"], "")
            cells = [
                str(e["id"]),
                e["kind"],
                escape(e["statement"]),
                _source(e),
                _number(e["credence"]),
                f"[{style}]{e['status']}[/]" if style else e["status"],
                str(e["evidence"]),
                "—" if e["cycle"] is None else str(e["cycle"]),
            ]
            if include_rejected:
                cells.append(escape(e["reason"] or ""))
            table.add_row(*cells)
        console.print(table)
    hidden = data["rejected"]
    if hidden and not include_rejected:
        console.print(f"{hidden} proposal{'s were' if hidden != 1 else ' was'} rejected (--all shows why)")


def print_history(console: Console, data: dict[str, Any]) -> None:
    h = data["hypothesis"]
    console.print(f"[bold]hypothesis {h['id']}[/] ({h['kind']}, {_source(h)}): {escape(h['statement'])}")
    cycle = "before the first cycle" if h["cycle"] is None else f"in cycle {h['cycle']}"
    console.print(f"  status: {h['status']}, credence {_number(h['credence'])}, evidence {h['evidence']}")
    if h["reason"]:
        console.print(f"  reason: {escape(h['reason'])}")
    console.print(f"  proposed {cycle}; rationale: {escape(h['rationale'] or '(none given)')}")
    origin = h.get("origin")
    if origin:
        console.print(
            f"  imported from campaign {escape(str(origin.get('campaign')))} "
            f"({escape(str(origin.get('file', '')))}), where it was {origin.get('status')}"
        )
    if data["credences"]:
        table = Table("cycle", "when", "credence", "evidence", "observations", title="credence per cycle")
        for c in data["credences"]:
            table.add_row(
                "—" if c["cycle"] is None else str(c["cycle"]),
                STAGE_LABEL.get(c["stage"], c["stage"]),
                _number(c["credence"]),
                str(c["evidence"]),
                str(c["observations"]),
            )
        console.print(table)
    else:
        console.print("  no credence yet (it is computed at the next induction)")
    if data["tests"]:
        table = Table(
            "experiment", "chosen", "bits", "predicted", "measured", "state", title="experiments bearing on it"
        )
        for t in data["tests"]:
            table.add_row(
                f"#{t['seq']}",
                "yes" if t["chosen"] else "no",
                f"{t['information_bits']:.3f}",
                _prediction(t),
                "—" if t["measured"] is None else f"{t['measured']:.4g}",
                t["state"],
            )
        console.print(table)
    else:
        console.print("  no experiment has tested it yet")
