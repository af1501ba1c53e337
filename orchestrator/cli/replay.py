"""`peirce replay CAMPAIGN [--planner SETTINGS]`: the replay table a reviewer reads (`orchestrator.review.replay`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from orchestrator.errors import SpecError

console = Console(highlight=False)


def replay_command(
    campaign: Annotated[str, typer.Argument(help="Campaign name (or numeric id).", show_default=False)],
    planner: Annotated[
        str | None,
        typer.Option(
            "--planner",
            help="Counterfactual: other planner settings as YAML/JSON, e.g. 'kind: random' or "
            "'{kind: bayesian, mc_samples: 256}'.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Database URL.", show_default=False)] = None,
) -> None:
    """Re-derive every decision from its record and say whether it matches (exit 1 if any does not)."""
    from orchestrator.review.replay import replay_campaign
    from orchestrator.store.database import open_database

    override = _parse_planner(planner) if planner is not None else None
    report = replay_campaign(open_database(db), campaign, override)
    if as_json:
        payload: dict[str, Any] = {
            "campaign": report.campaign,
            "status": report.status,
            "finished": report.finished,
            "all_match": report.all_match(),
            "version_differences": report.version_differences,
            "counterfactual": report.counterfactual,
            "rows": report.as_dicts(),
        }
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        _print(report)
    if override is None and not report.all_match():
        raise typer.Exit(1)


def _parse_planner(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError("--planner", f"not YAML or JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise SpecError("--planner", "give planner settings with a kind, e.g. 'kind: random'")
    return data


def _print(report: Any) -> None:
    if not report.finished:
        console.print(
            f"[yellow]campaign '{report.campaign}' is {report.status}: the decisions made so far are replayed[/]"
        )
    counterfactual = report.counterfactual is not None
    title = f"replay of {report.campaign}" + (
        f" — counterfactual planner {report.counterfactual['planner']['kind']}" if counterfactual else ""
    )
    table = Table(title=title, title_justify="left")
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
        table.add_row(*cells, row.note)
    console.print(table)
    if report.version_differences:
        shown = "; ".join(f"{k}: recorded {a}, now {b}" for k, a, b in _triples(report.version_differences))
        console.print(f"versions that differ from the record (a mismatch can come from these): {shown}")
    if counterfactual:
        console.print(
            "predicted best: under a model fitted to the results known at that cycle, the best predicted value of "
            "the first objective among the experiments run, and among the other planner's choices"
        )
    else:
        derived = [r for r in report.rows if r.status in ("match", "mismatch")]
        matched = sum(r.status == "match" for r in derived)
        console.print(f"{matched} of {len(derived)} decisions re-derived exactly")


def _triples(differences: dict[str, tuple[Any, Any]]) -> list[tuple[str, Any, Any]]:
    return [(k, a, b) for k, (a, b) in differences.items()]


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"
