"""Commands a reviewer uses on a finished (or running) campaign: `replay` (re-derive every decision and compare) and
`report` (one self-contained HTML file). Both only read the database.

Replay and the report load torch, the planners, pandas and matplotlib; they are imported inside the commands so
the rest of the CLI starts without them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli import database, output
from orchestrator.cli.options import CampaignArg, DbOption, JsonOption
from orchestrator.errors import SpecError

if TYPE_CHECKING:
    from orchestrator.review.replay import ReplayReport

commands = typer.Typer()


@commands.command()
def replay(
    campaign: CampaignArg,
    planner: Annotated[
        str | None,
        typer.Option(
            "--planner",
            help="Counterfactual: other planner settings as YAML/JSON, e.g. 'kind: random' or "
            "'{kind: bayesian, mc_samples: 256}'.",
        ),
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Re-derive every decision from its record and say whether it matches (exit 1 if any does not). Writes
    nothing."""
    # Imported here: replay loads torch and the planners (start-up time).
    from orchestrator.review.arrays import reanalyse
    from orchestrator.review.replay import replay_campaign

    override = _parse_planner(planner) if planner is not None else None
    opened = database.for_reading(db)
    report = replay_campaign(opened, campaign, override)
    # A station's analysis steps, computed again from the arrays stored with each experiment.
    analyses = reanalyse(opened, campaign).to_dict("records")
    analyses_match = all(row["status"] == "match" for row in analyses)
    if as_json:
        payload: dict[str, Any] = {
            "campaign": report.campaign,
            "status": report.status,
            "finished": report.finished,
            "all_match": report.all_match() and analyses_match,
            "version_differences": report.version_differences,
            "counterfactual": report.counterfactual,
            "rows": report.as_dicts(),
            "analyses": analyses,
        }
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        _print_replay(output.console(), report)
        _print_analyses(output.console(), analyses)
    if override is None and not (report.all_match() and analyses_match):
        raise typer.Exit(1)


def _parse_planner(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError("--planner", f"not YAML or JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise SpecError("--planner", "give planner settings with a kind, e.g. 'kind: random'")
    return data


def _print_replay(console: Console, report: ReplayReport) -> None:
    if not report.finished:
        shown = f"campaign '{report.campaign}' is {report.status}: the decisions made so far are replayed"
        console.print(f"[yellow]{escape(shown)}[/]")
    counterfactual = report.counterfactual
    title = f"replay of {report.campaign}" + (
        f" — counterfactual planner {counterfactual['planner']['kind']}" if counterfactual is not None else ""
    )
    table = Table(title=escape(title), title_justify="left")
    columns = ["cycle", "decision", "stage", "proposals", "result"]
    columns += ["predicted best (run)", "predicted best (other)"] if counterfactual else ["largest difference"]
    for column in [*columns, "note"]:
        table.add_column(column)
    for row in report.rows:
        cells = [str(row.cycle), str(row.decision_id), row.stage, str(row.proposals), row.status]
        if counterfactual:
            cells += [_number(row.recorded_value), _number(row.alternative_value)]
        else:
            cells.append(_number(row.max_difference))
        table.add_row(*cells, escape(row.note))
    console.print(table)
    if report.version_differences:
        shown = "; ".join(f"{k}: recorded {a}, now {b}" for k, (a, b) in report.version_differences.items())
        console.print(f"versions that differ from the record (a mismatch can come from these): {shown}", markup=False)
    if counterfactual:
        console.print(
            "predicted best: under a model fitted to the results known at that cycle, the best predicted value of "
            "the first objective among the experiments run, and among the other planner's choices"
        )
    else:
        derived = [r for r in report.rows if r.status in ("match", "mismatch")]
        matched = sum(r.status == "match" for r in derived)
        console.print(f"{matched} of {len(derived)} decisions re-derived exactly")


def _print_analyses(console: Console, analyses: list[dict[str, Any]]) -> None:
    if not analyses:
        return
    matched = sum(row["status"] == "match" for row in analyses)
    console.print(
        f"{matched} of {len(analyses)} analysis steps computed again from the stored arrays give the same numbers",
        markup=False,
    )
    for row in analyses:
        if row["status"] != "match":
            shown = f"  experiment #{row['seq']} step {row['step']} ({row['analyse']}): {row['status']}"
            console.print(shown + (f": {row['note']}" if row["note"] else ""), markup=False)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


@commands.command()
def report(
    campaign: CampaignArg,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default: CAMPAIGN-report.html).")
    ] = None,
    db: DbOption = None,
    skip_replay: Annotated[
        bool, typer.Option("--skip-replay", help="Leave replay out (it re-derives every decision: slow on long runs).")
    ] = False,
) -> None:
    """Write a self-contained HTML review of a campaign: status, spec, plots, hypotheses, instruments, replay.
    Writes nothing to the database."""
    # Imported here: the report loads pandas, matplotlib and replay (torch) (start-up time).
    from orchestrator.review.report import write_report

    opened = database.for_reading(db)
    path = write_report(opened, campaign, out or Path(f"{campaign}-report.html"), replay=not skip_replay)
    output.console().print(f"wrote {path}", markup=False)
