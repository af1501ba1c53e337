"""Commands for the people a campaign waits for: see what waits (`pending`), and answer a proposal: `approve`,
`reject`, `edit` (change its parameters, which approves it), `allow` (let a rejected point be proposed again).

Every answer names the person (`--by`), is written by the same acts the Python API and Prefect's form call
(`people.acts`), and is refused with one line, the database unchanged, when it is wrong: an unknown experiment, one
already answered (the line names who answered it), a value out of bounds. After an answer to a paused campaign the
command says how to continue it (`peirce resume`).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from orchestrator.cli import database, output
from orchestrator.cli.options import CampaignArg, DbOption, JsonOption
from orchestrator.errors import SpecError

if TYPE_CHECKING:
    from orchestrator.people.acts import ActReport
    from orchestrator.people.pending import PendingItem
    from orchestrator.store.database import Database

commands = typer.Typer()

ByOption = Annotated[
    str | None, typer.Option("--by", help="Who you are (recorded with the answer).", show_default=False, metavar="NAME")
]
NoteOption = Annotated[
    str | None, typer.Option("--note", help="A note kept with the answer.", show_default=False, metavar="TEXT")
]
SeqArg = Annotated[int, typer.Argument(metavar="SEQ", help="The experiment's number (#SEQ).", show_default=False)]

_WAITS_FOR = {"approval": "approval", "result": "results entered by hand", "step": "a manual step"}


@commands.command()
def pending(
    campaign: Annotated[str | None, typer.Argument(help="Campaign (default: all).", show_default=False)] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what waits for people: each experiment's parameters, predictions, why it waits, since when. Writes
    nothing."""
    # Imported here: the store loads SQLAlchemy, which `--help` does not need.
    from orchestrator.people.pending import pending_items

    opened = database.for_reading(db)
    items = pending_items(opened, campaign)
    if as_json:
        sys.stdout.write(json.dumps([item.as_dict() for item in items], indent=2, ensure_ascii=False) + "\n")
        return
    console = output.console()
    if not items:
        where = f"campaign '{campaign}'" if campaign is not None else "any campaign of " + opened.url
        console.print(f"nothing waits for people in {where}", markup=False)
        return
    by_campaign: dict[str, list[PendingItem]] = {}
    for item in items:
        by_campaign.setdefault(item.campaign, []).append(item)
    for name, waiting in by_campaign.items():
        _print_pending(console, name, waiting)


def _print_pending(console: Console, name: str, items: list[PendingItem]) -> None:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    what = ", ".join(
        f"{n} experiment{'s wait' if n > 1 else ' waits'} for {_WAITS_FOR.get(kind, kind)}"
        for kind, n in counts.items()
    )
    lines = [f"{name} ({items[0].campaign_status}): {what}"]
    for item in items:
        since = item.since.strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"  #{item.seq} waits for {_WAITS_FOR.get(item.kind, item.kind)} since {since}")
        if item.parameters:
            lines.append(f"      parameters: {_values(item.parameters)}")
        if item.original_parameters:
            lines.append(f"      proposed: {_values(item.original_parameters)}")
        if item.predicted:
            lines.append(f"      predicted: {_predictions(item.predicted)}")
        for reason in item.reasons:
            lines.append(f"      why: {reason}")
        for key in ("instructions", "manual", "step"):
            if isinstance(item.detail.get(key), str | int):
                lines.append(f"      {key}: {item.detail[key]}")
    if "approval" in counts:
        lines.append(
            f"  answer: peirce approve {name} SEQ… --by NAME (or --all) | peirce reject {name} SEQ --by NAME "
            f"--reason TEXT | peirce edit {name} SEQ name=value… --by NAME"
        )
    for line in lines:
        console.print(line, markup=False, highlight=False)


@commands.command()
def approve(
    campaign: CampaignArg,
    seqs: Annotated[
        list[int] | None, typer.Argument(metavar="[SEQ]...", help="Experiments to approve.", show_default=False)
    ] = None,
    approve_all: Annotated[bool, typer.Option("--all", help="Approve every experiment waiting for approval.")] = False,
    by: ByOption = None,
    note: NoteOption = None,
    db: DbOption = None,
) -> None:
    """Approve experiments waiting for approval, so they run."""
    # Imported here: the acts load the store and the lab builders, which `--help` does not need.
    from orchestrator.people import acts

    if approve_all and seqs:
        raise SpecError("SEQ", "give the experiments to approve or --all, not both")
    if not approve_all and not seqs:
        raise SpecError("SEQ", "name the experiments to approve, or give --all")
    opened = database.for_changing(db)
    report = acts.approve(opened, campaign, acts.ALL if approve_all else list(seqs or []), by, note)
    console = output.console()
    console.print(f"approved {_seqs(report.seqs)} of {report.campaign} (by {by_name(by)})", markup=False)
    _next_step(console, report, opened)


@commands.command()
def reject(
    campaign: CampaignArg,
    seq: SeqArg,
    by: ByOption = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required; recorded).", show_default=False, metavar="TEXT")
    ] = None,
    db: DbOption = None,
) -> None:
    """Reject an experiment waiting for approval: it is never run, and its point is not proposed again."""
    # Imported here (start-up time, as in `approve`).
    from orchestrator.people import acts

    opened = database.for_changing(db)
    report = acts.reject(opened, campaign, seq, by, reason)
    console = output.console()
    console.print(
        f"rejected #{seq} of {report.campaign} (by {by_name(by)}): it will not be run, and its point is not "
        f"proposed again (`peirce allow {report.campaign} {seq}` lifts that)",
        markup=False,
    )
    _next_step(console, report, opened)


@commands.command()
def edit(
    campaign: CampaignArg,
    seq: SeqArg,
    values: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="NAME=VALUE...", help="The parameters to change, e.g. temperature=120.", show_default=False
        ),
    ] = None,
    by: ByOption = None,
    note: NoteOption = None,
    db: DbOption = None,
) -> None:
    """Change the parameters of an experiment waiting for approval, which approves it (the planner's are kept)."""
    # Imported here (start-up time, as in `approve`).
    from orchestrator.people import acts

    changes: dict[str, str] = {}
    for text in values or []:
        name, equals, value = text.partition("=")
        if not equals or not name.strip():
            raise SpecError("NAME=VALUE", f"'{text}' is not name=value (e.g. temperature=120)")
        if name.strip() in changes:
            raise SpecError(name.strip(), "given twice")
        changes[name.strip()] = value
    opened = database.for_changing(db)
    report = acts.edit(opened, campaign, seq, changes, by, note)
    changed = ", ".join(
        f"{name} {_value(old)} → {_value(new)}" for name, (old, new) in report.detail["changed"].items()
    )
    console = output.console()
    console.print(f"edited #{seq} of {report.campaign} (by {by_name(by)}) and approved it: {changed}", markup=False)
    predicted, before = report.detail["predicted"], report.detail["predicted_before"]
    if predicted:
        was = f" (for the planner's values: {_predictions(before)})" if before else ""
        console.print(f"  predicted: {_predictions(predicted)}{was}", markup=False)
    else:
        console.print(f"  no prediction for the edited point: {report.detail['no_prediction']}", markup=False)
    _next_step(console, report, opened)


@commands.command()
def allow(
    campaign: CampaignArg, seq: SeqArg, by: ByOption = None, note: NoteOption = None, db: DbOption = None
) -> None:
    """Let the point of a rejected experiment be proposed again (the rejected experiment itself stays rejected)."""
    # Imported here (start-up time, as in `approve`).
    from orchestrator.people import acts

    opened = database.for_changing(db)
    report = acts.allow(opened, campaign, seq, by, note)
    output.console().print(
        f"allowed the point of rejected #{seq} of {report.campaign} again (by {by_name(by)}): planners may propose it",
        markup=False,
    )


def by_name(by: str | None) -> str:
    return (by or "").strip()


def _next_step(console: Console, report: ActReport, opened: Database) -> None:
    if report.status == "waiting":
        # Imported here: the lease's module loads the store (SQLAlchemy), which `--help` does not need.
        from orchestrator.campaign.runs import continue_command
        from orchestrator.store.records import find_campaign

        with opened.session() as session:
            command = continue_command(session, find_campaign(session, report.campaign))
        console.print(f"continue with: {command}", markup=False)


def _seqs(seqs: list[int]) -> str:
    return ", ".join(f"#{seq}" for seq in seqs)


def _value(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _values(parameters: dict[str, Any]) -> str:
    return ", ".join(f"{name}={_value(value)}" for name, value in parameters.items())


def _predictions(predicted: dict[str, Any]) -> str:
    shown = []
    for name, p in predicted.items():
        if isinstance(p, dict) and "mean" in p:
            shown.append(f"{name} {p['mean']:.4g} ± {p.get('std', 0.0):.2g}")
    return ", ".join(shown)
