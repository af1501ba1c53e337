"""Commands for work done by hand: what is handed out (`next`), and entering what was measured (`record` a results
sheet, `tell` one experiment's results or one manual step's number).

`next` only reads. `record` and `tell` check everything they are given before one transaction writes it (a bad row
or value: one line naming it, exit 2, nothing written); the same entry given again changes nothing. Every entry
names the person who made it (`--by`). When nothing waits for people any more and the campaign's runner has gone
(status `waiting`), they say how to continue: `peirce resume CAMPAIGN`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli import database, output
from orchestrator.cli.options import CampaignArg, DbOption
from orchestrator.errors import SpecError

if TYPE_CHECKING:
    from orchestrator.people.worksheet import Handout
    from orchestrator.store.database import Database

commands = typer.Typer()

FORMATS = ("table", "csv", "markdown")
ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who enters it (required; recorded with the entry).", show_default=False, metavar="NAME"),
]


@commands.command(name="next")
def next_work(
    campaign: CampaignArg,
    db: DbOption = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table, csv (a results sheet to fill in) or markdown.")
    ] = "table",
    out: Annotated[
        Path | None, typer.Option("--output", help="Write to this file instead of standard output.", metavar="FILE")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the --output file if it exists.")] = False,
) -> None:
    """Show the work handed out: experiments waiting for results, manual steps waiting. Writes nothing."""
    # Imported here: the store and the spec load SQLAlchemy and pydantic, which `--help` does not need.
    from orchestrator.people.worksheet import handout, write_sheet

    if fmt not in FORMATS:
        raise SpecError("--format", f"'{fmt}' is not one of: {', '.join(FORMATS)}")
    if out is not None and out.exists() and not force:
        raise SpecError("--output", f"{out} exists (it may hold results being entered); --force overwrites it")
    handed = handout(database.for_reading(db), campaign)
    console = output.console()
    notes = output.errors() if fmt == "csv" else console  # standard output carries the sheet itself
    if not handed.work and not handed.steps:
        notes.print(_nothing_line(handed), markup=False)
        return
    wrote = bool(handed.work)
    if fmt == "csv":
        if handed.work:
            _emit(write_sheet(handed), out)
        else:
            notes.print(f"no experiment of {handed.campaign} waits for results, so no sheet is written", markup=False)
        for line in _step_lines(handed):
            notes.print(line, markup=False)
    elif fmt == "markdown":
        _emit(_markdown(handed), out)
        wrote = True
    elif out is not None:
        with out.open("w", encoding="utf-8") as stream:
            _print_table(Console(file=stream, highlight=False, width=output.PIPED_WIDTH, color_system=None), handed)
        wrote = True
    else:
        _print_table(console, handed)
    if out is not None and wrote:
        console.print(f"wrote {_count(len(handed.work), 'experiment')} waiting for results to {out}", markup=False)
        if fmt == "csv":
            console.print(
                f"fill in the outcome columns (or not_run), then: peirce record {handed.campaign} {out} --by NAME",
                markup=False,
            )


def _emit(text: str, out: Path | None) -> None:
    if out is not None:
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


@commands.command()
def record(
    campaign: CampaignArg,
    sheet: Annotated[
        Path, typer.Argument(metavar="FILE", help="The results sheet (`peirce next --format csv`), filled in.")
    ],
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Enter the results of a filled-in results sheet (CSV: seq, one column per outcome, optional not_run)."""
    # Imported here: the people room loads SQLAlchemy and pydantic, which `--help` does not need.
    from orchestrator.people.requests import check_person
    from orchestrator.people.worksheet import enter_sheet

    person = check_person(by)
    try:
        text = sheet.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError(str(sheet), "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(sheet), f"cannot read: {exc}") from None
    opened = database.for_changing(db)
    read, report = enter_sheet(opened, campaign, text, by=person, source=sheet.name)
    console = output.console()
    if report.entered:
        console.print(f"recorded results of {_seqs(report.entered)} (by {person})", markup=False)
    if report.not_run:
        console.print(f"not run: {_seqs(report.not_run)} (abandoned; not counted against the budget)", markup=False)
    if report.unchanged:
        console.print(f"unchanged: {_seqs(report.unchanged)} (already recorded with these values)", markup=False)
    if not read.entries:
        console.print(f"unchanged: {sheet.name} has no results filled in", markup=False)
    if read.not_done:
        console.print(f"not filled in yet: {_seqs(read.not_done)}", markup=False)
    _what_next(opened, campaign)


@commands.command()
def tell(
    campaign: CampaignArg,
    seq: Annotated[int, typer.Argument(metavar="SEQ", help="The experiment's number.", show_default=False)],
    values: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="NAME=VALUE...", help="Each outcome's value (or a manual step's number).", show_default=False
        ),
    ] = None,
    not_run: Annotated[
        str | None,
        typer.Option("--not-run", metavar="REASON", help="It could not be run (or the step not done): why."),
    ] = None,
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Enter one experiment's results (yield=83.1), a manual step's number (mass_mg=12.3), or --not-run "why"."""
    # Imported here: the store and the people room load SQLAlchemy and pydantic (start-up time).
    from orchestrator.people.requests import check_person
    from orchestrator.people.results import ResultEntry, enter_results
    from orchestrator.people.steps import enter_step, is_step_entry
    from orchestrator.store.records import find_campaign

    person = check_person(by)
    given = _name_values(values or [])
    if not given and not_run is None:
        raise SpecError("VALUES", "give NAME=VALUE for each outcome, or --not-run REASON")
    opened = database.for_changing(db)
    with opened.session() as session:
        found = find_campaign(session, campaign)
        name, units = found.name, {o["name"]: o.get("unit", "") for o in found.spec["objectives"]}
        step = is_step_entry(session, found.id, seq, set(given), not_run is not None)
    console = output.console()
    if step:
        done = enter_step(opened, name, seq, given, by=person, source="peirce tell", not_run=not_run)
        shown = ", ".join(f"{k} = {v}" for k, v in given.items())
        lines = {
            "entered": f"entered {shown} for the manual step of #{seq} (by {person}); the station goes on",
            "not-run": f"the manual step of #{seq} was not done ({not_run}); the experiment ends abandoned",
            "unchanged": f"unchanged: #{seq}'s step already has {shown}",
        }
        console.print(lines[done], markup=False)
        return
    entry = ResultEntry(seq, given, not_run=not_run, where=f"SEQ {seq}")
    report = enter_results(opened, name, [entry], by=person, source="peirce tell")
    if report.entered:
        shown = ", ".join(f"{k} = {v} {units.get(k, '')}".rstrip() for k, v in given.items())
        console.print(f"recorded #{seq}: {shown} (by {person})", markup=False)
    elif report.not_run:
        console.print(f"#{seq} could not be run ({not_run}): abandoned, not counted against the budget", markup=False)
    else:
        console.print(f"unchanged: #{seq} already has these results", markup=False)
    _what_next(opened, name)


def _name_values(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise SpecError("VALUES", f"'{pair}' is not NAME=VALUE (e.g. yield=83.1)")
        if name.strip() in values:
            raise SpecError("VALUES", f"'{name.strip()}' is given twice")
        values[name.strip()] = value.strip()
    return values


def _seqs(seqs: list[int]) -> str:
    return ", ".join(f"#{seq}" for seq in seqs)


def _what_next(opened: Database, ref: str) -> None:
    """After an entry: what still waits for people, or how the campaign continues once nothing does."""
    # Imported here with the commands that call it (start-up time, as above).
    from orchestrator.people.waiting import waiting
    from orchestrator.store.models import CampaignStatus
    from orchestrator.store.records import find_campaign

    with opened.session() as session:
        campaign = find_campaign(session, ref)
        what, status, name = waiting(session, campaign.id), campaign.status, campaign.name
    console = output.console()
    if what:
        console.print(f"still waiting: {what.describe(name)}", markup=False)
    elif status == CampaignStatus.WAITING:
        console.print(f"nothing waits for people now; continue with: peirce resume {name}", markup=False)
    elif status == CampaignStatus.RUNNING:
        console.print(f"nothing waits for people now; {name}'s runner goes on by itself", markup=False)


def _nothing_line(handed: Handout) -> str:
    name = handed.campaign
    if handed.status == "created":
        return (
            f"{name} has not been run yet, so nothing is handed out: start it with `peirce run CAMPAIGN_FILE` "
            f"(or `peirce resume {name}`)"
        )
    others = f"; {handed.waiting.describe(name)}" if handed.waiting else ""
    return f"nothing of {name} waits for results or a manual step (status {handed.status}){others}"


def _header(name: str, unit: str | None) -> str:
    return f"{name} [{unit}]" if unit else name


def _to_enter(handed: Handout) -> list[str]:
    return [_header(n, u) for n, u in handed.units.items()]


def _print_table(console: Console, handed: Handout) -> None:
    name = handed.campaign
    if handed.work:
        parameters = [p.name for p in handed.spec.space]
        headers = [_header(p.name, getattr(p, "unit", "")) for p in handed.spec.space]
        noun = "experiment waits" if len(handed.work) == 1 else "experiments wait"
        title = escape(f"{name}: {len(handed.work)} {noun} for results")
        table = Table("seq", *(escape(h) for h in headers), "enter", "instructions", title=title)
        # Imported here with the command (start-up time, as above).
        from orchestrator.people.worksheet import shown

        for work in handed.work:
            cells = [f"#{work.seq}", *(shown(work.parameters.get(p, "")) for p in parameters)]
            table.add_row(*(escape(c) for c in cells), escape(", ".join(_to_enter(handed))), escape(work.instructions))
        console.print(table)
        for outcome, how in handed.outcomes.items():
            if how:
                console.print(f"  {outcome}: {how}", markup=False)
        console.print(
            f"enter them with: peirce next {name} --format csv --output FILE, fill it in, "
            f"peirce record {name} FILE --by NAME; or one at a time: peirce tell {name} SEQ "
            + " ".join(f"{o}=VALUE" for o in handed.units)
            + ' --by NAME (--not-run "why" for one that could not be run)',
            markup=False,
        )
    for line in _step_lines(handed):
        console.print(line, markup=False)


def _step_lines(handed: Handout) -> list[str]:
    lines = []
    for step in handed.steps:
        unit = f" (in {step.unit})" if step.unit else ""
        lines.append(
            f"manual step waiting: #{step.seq} step {step.step}: {step.instructions}; enter {step.outcome}{unit} "
            f"with: peirce tell {handed.campaign} {step.seq} {step.outcome}=VALUE --by NAME"
        )
    return lines


def _markdown(handed: Handout) -> str:
    name = handed.campaign
    lines = []
    if handed.work:
        lines.append(f"# {name}: {len(handed.work)} experiment{'s' if len(handed.work) != 1 else ''} to run")
        lines.append("")
        for outcome, unit in handed.units.items():
            how = handed.outcomes[outcome]
            lines.append(f"Measure **{outcome}**" + (f" [{unit}]" if unit else "") + (f": {how}" if how else ""))
        lines.append("")
        # Imported here with the command (start-up time, as above).
        from orchestrator.people.worksheet import shown

        units = {p.name: getattr(p, "unit", "") or "" for p in handed.spec.space}
        for work in handed.work:
            conditions = ", ".join(
                f"{k} = {shown(v)}" + (f" {units[k]}" if units.get(k) else "") for k, v in work.parameters.items()
            )
            lines.append(f"- [ ] **#{work.seq}** — {conditions}  ")
            lines.append(f"  {work.instructions}  ")
            lines.append("  " + ", ".join(f"{entry}: ______" for entry in _to_enter(handed)))
        lines.append("")
        lines.append(
            f"Record: `peirce record {name} FILE --by NAME` (a sheet from `peirce next {name} --format csv`), or "
            f"`peirce tell {name} SEQ "
            + " ".join(f"{o}=VALUE" for o in handed.units)
            + f' --by NAME`; one that could not be run: `peirce tell {name} SEQ --not-run "why" --by NAME`.'
        )
    if handed.steps:
        lines.append("")
        lines.append(f"# {name}: manual steps waiting")
        lines.append("")
        for step in handed.steps:
            unit = f" [{step.unit}]" if step.unit else ""
            lines.append(
                f"- [ ] **#{step.seq}**, step {step.step}: {step.instructions} — "
                f"`peirce tell {name} {step.seq} {step.outcome}=VALUE --by NAME`{unit}"
            )
    return "\n".join(lines) + "\n"
