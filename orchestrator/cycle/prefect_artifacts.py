"""What Prefect's UI shows of a campaign after each cycle: artifacts built from the database.

After a cycle's induction the Prefect flow publishes three artifacts, each under a key that stays the same for the
campaign, so Prefect's UI shows each one's history cycle by cycle (`artifact_key`):

- `campaign-<name>-batch`: a table of the cycle's experiments, one row each: seq, parameters, the planner's
  prediction (mean ± sd) and the measured value of each objective, and the experiment's state;
- `campaign-<name>-best`: the best so far of each objective, with the experiment and parameters that reached it,
  the budget spent and, once the campaign stops, why;
- `campaign-<name>-hypotheses`: the hypotheses proposed, settled or re-weighed this cycle, with their credences.

Each ends with where the full review is: a link when $PEIRCE_REPORT_URL_BASE names the folder a lab serves its
reports from (`peirce report NAME` writes NAME-report.html), else the command that writes it. Nothing here names
the database: its URL may hold a password. The inline engine publishes none of this (it has no Prefect).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from typing import Any
from urllib.parse import quote

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlalchemy import select

from orchestrator.cycle.context import CampaignContext
from orchestrator.cycle.progress import CycleReport
from orchestrator.store.models import Cycle, Experiment, Hypothesis, HypothesisCredence
from orchestrator.store.queries import best_with_parameters, declared_order

REPORT_URL_ENV = "PEIRCE_REPORT_URL_BASE"
KINDS = ("batch", "best", "hypotheses")
_OWN_COLUMNS = ("seq", "state")  # the batch table's own columns: a parameter of the same name is told apart


def artifact_key(campaign: str, kind: str) -> str:
    """`campaign-<name>-<kind>`: Prefect's keys take lowercase letters, digits and dashes only. A campaign name
    (letters, digits, underscores) has its underscores written as dashes; a name with capitals, which lowercasing
    could make another campaign's, gets a short digest of itself appended."""
    slug = re.sub(r"[^a-z0-9]", "-", campaign.lower())
    if campaign != campaign.lower():
        slug += "-" + hashlib.sha256(campaign.encode()).hexdigest()[:6]
    return f"campaign-{slug}-{kind}"


def report_pointer(campaign: str) -> str:
    """Where the campaign's full review is, as a line of Markdown."""
    base = os.environ.get(REPORT_URL_ENV, "").strip()
    if base:
        url = f"{base.rstrip('/')}/{quote(campaign)}-report.html"
        return f"Full report: [{campaign}-report.html]({url})"
    return f"Full report: run `peirce report {campaign}` (it writes {campaign}-report.html)."


def publish_cycle(ctx: CampaignContext, cycle_id: int, report: CycleReport) -> None:
    """Publish the cycle's artifacts to the flow run this is called in."""
    with ctx.db.session() as session:
        batch = batch_rows(session, ctx, cycle_id)
        best = best_markdown(session, ctx, report)
        hypotheses = hypotheses_markdown(session, ctx, cycle_id, report)
    pointer = report_pointer(ctx.name)
    create_table_artifact(
        table=batch,
        key=artifact_key(ctx.name, "batch"),
        description=f"**{ctx.name}**, cycle {report.cycle}: {len(batch)} experiments. {pointer}",
    )
    create_markdown_artifact(
        markdown=f"{best}\n\n{pointer}\n",
        key=artifact_key(ctx.name, "best"),
        description=f"{ctx.name}: best so far after cycle {report.cycle}",
    )
    create_markdown_artifact(
        markdown=f"{hypotheses}\n\n{pointer}\n",
        key=artifact_key(ctx.name, "hypotheses"),
        description=f"{ctx.name}: hypotheses changed in cycle {report.cycle}",
    )


def batch_rows(session: Any, ctx: CampaignContext, cycle_id: int) -> list[dict[str, Any]]:
    """One row per experiment of the cycle, in seq order: `seq`, each parameter (in the spec's order), then per
    objective `<name> predicted` ("mean ± sd", empty without a prediction) and `<name> measured` (the final
    attempt's value, None without one), and `state`."""
    declared = [p.name for p in ctx.spec.space]
    objectives = [o.name for o in ctx.spec.objectives]
    rows = []
    for experiment in session.scalars(
        select(Experiment).where(Experiment.cycle_id == cycle_id).order_by(Experiment.seq)
    ).all():
        measured = {m.name: m.value for m in experiment.measurements if m.attempt == experiment.attempts}
        row: dict[str, Any] = {"seq": experiment.seq}
        for name, value in declared_order(experiment.parameters, declared).items():
            row[name if name not in _OWN_COLUMNS else f"{name} (parameter)"] = value
        for name in objectives:
            row[f"{name} predicted"] = _prediction((experiment.predicted or {}).get(name))
            row[f"{name} measured"] = measured.get(name)
        row["state"] = experiment.state
        rows.append(row)
    return rows


def best_markdown(session: Any, ctx: CampaignContext, report: CycleReport) -> str:
    """The best so far per objective with its experiment's parameters, the budget spent, and the stop reason."""
    best = best_with_parameters(session, ctx.campaign_id)
    lines = [
        f"**{ctx.name}** after cycle {report.cycle}: {report.spent}/{report.budget} experiments spent"
        + (f", {report.failed_in_cycle} failed this cycle" if report.failed_in_cycle else "")
        + ("; the best improved this cycle." if report.improved else "."),
        "",
    ]
    if not best:
        lines.append("No result yet.")
    else:
        names = [p.name for p in ctx.spec.space]
        directions = {o.name: o.direction for o in ctx.spec.objectives}
        lines += [
            "| objective | best | experiment | " + " | ".join(names) + " |",
            "|---|---|---|" + "---|" * len(names),
        ]
        for objective, entry in best.items():
            values = [_cell(entry["parameters"].get(name, "")) for name in names]
            lines.append(
                f"| {objective} ({directions.get(objective, '')}) | {_number(entry['value'])} | #{entry['seq']} | "
                + " | ".join(values)
                + " |"
            )
    if report.stop_reason:
        lines += ["", f"The campaign stops: {report.stop_reason}."]
    return "\n".join(lines)


def hypotheses_markdown(session: Any, ctx: CampaignContext, cycle_id: int, report: CycleReport) -> str:
    """What happened to hypotheses this cycle: the news lines the terminal shows, then a table of every hypothesis
    proposed or re-weighed this cycle (status, credence before and after, evidence)."""
    if not ctx.ledger.enabled:
        return f"**{ctx.name}** keeps no hypotheses (`hypotheses: none` in its campaign file)."
    cycle_index = session.get_one(Cycle, cycle_id).index
    weighed = {
        c.hypothesis_id: c
        for c in session.scalars(select(HypothesisCredence).where(HypothesisCredence.cycle_id == cycle_id)).all()
    }
    changed = session.scalars(
        select(Hypothesis)
        .where(
            Hypothesis.campaign_id == ctx.campaign_id,
            (Hypothesis.cycle_id == cycle_id) | Hypothesis.id.in_(list(weighed)),
        )
        .order_by(Hypothesis.id)
    ).all()
    lines = [f"**{ctx.name}**, cycle {cycle_index}: {len(changed)} hypotheses proposed or re-weighed.", ""]
    lines += [f"- {news}" for news in report.hypotheses]
    if not changed:
        return "\n".join([*lines, "No hypothesis changed this cycle."])
    lines += ["", "| id | statement | status | credence before | credence now | evidence |", "|" + "---|" * 6]
    for hypothesis in changed:
        before = _credence_before(session, hypothesis.id, cycle_id)
        now = weighed[hypothesis.id].credence if hypothesis.id in weighed else hypothesis.credence
        lines.append(
            f"| {hypothesis.id} | {_cell(hypothesis.statement)} | {hypothesis.status} | {_number(before)} | "
            f"{_number(now)} | {hypothesis.evidence} |"
        )
    return "\n".join(lines)


def _credence_before(session: Any, hypothesis_id: int, cycle_id: int) -> float | None:
    """The hypothesis's credence recorded by the cycle before this one, or None (new this cycle)."""
    return session.scalar(
        select(HypothesisCredence.credence)
        .where(HypothesisCredence.hypothesis_id == hypothesis_id, HypothesisCredence.cycle_id < cycle_id)
        .order_by(HypothesisCredence.id.desc())
        .limit(1)
    )


def _prediction(predicted: Any) -> str:
    if not isinstance(predicted, dict) or predicted.get("mean") is None:
        return ""
    std = predicted.get("std")
    return _number(predicted["mean"]) + (f" ± {_number(std)}" if std is not None else "")


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _cell(value: Any) -> str:
    """A value in a Markdown table cell: numbers shortened, pipes and line breaks escaped."""
    return _number(value).replace("|", "\\|").replace("\n", " ")
