"""`peirce`: the command line a scientist uses to write, check, run, watch, stop and export campaigns, and to read
and add to a campaign's hypothesis ledger.

Bad input (a wrong spec, an unknown campaign, an unreachable database) prints one line naming the field at fault
and exits with status 2; a failure while running exits 1. Neither prints a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.cli.instruments import instruments_command, twin_command
from orchestrator.cli.replay import replay_command
from orchestrator.cli.report import report_command
from orchestrator.errors import PeirceError, SpecError
from orchestrator.review.archive import archive_export_command, archive_import_command

app = typer.Typer(
    name="peirce",
    help="Closed-loop campaigns: hypotheses, planned experiments, simulators or instruments, replayable decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $PEIRCE_DB_URL, else sqlite:///peirce.db).", show_default=False),
]
CampaignArg = Annotated[str, typer.Argument(help="Campaign name (or numeric id).", show_default=False)]
Engine = Annotated[str, typer.Option("--engine", help="prefect: the Prefect flow (default); inline: plain functions.")]

TEMPLATE = Path(__file__).resolve().parents[1] / "campaign" / "templates" / "campaign.yaml"


def _quiet_prefect() -> None:
    # Prefect's own INFO lines and its temporary server's shutdown chatter would bury our progress lines.
    # Failures reach the person as one line from peirce, and in full in the database's events.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_SERVER_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example campaign.")] = Path("campaign.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example campaign to start from."""
    if path.exists() and not force:
        raise SpecError(str(path), "file exists (use --force to overwrite)")
    path.write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    console.print(
        f"wrote {path}; check it with [bold]peirce validate {path}[/], run it with [bold]peirce run {path}[/]"
    )


@app.command()
def validate(spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Campaign file (YAML).")]) -> None:
    """Check a campaign file, including its lab (data files, columns, levels). Writes nothing."""
    from orchestrator.campaign.spec import load_spec
    from orchestrator.lab.build import build_lab

    spec, _ = load_spec(spec_path)
    lab = build_lab(spec)
    space = spec.search_space(lab.candidates)
    size = f"{space.grid_size} points" if space.is_finite else "continuous"
    console.print(
        f"[green]ok[/] {spec.name}: {len(spec.space)} parameters ({size}), "
        f"{len(spec.objectives)} objective(s), budget {spec.budget.experiments} experiments "
        f"in batches of {spec.budget.batch_size}, planner {spec.planner.kind}, lab {_lab_name(spec)}"
    )


def _lab_name(spec: Any) -> str:
    lab = spec.lab
    from orchestrator.campaign.station import StationLab

    if isinstance(lab, StationLab):
        mode = "on device twins" if lab.twins is not None else "on instruments"
        return f"station {lab.station} ({len(lab.instruments)} instruments, {mode})"
    return str(lab.simulator)


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of campaign files (for editors' YAML language servers)."""
    from orchestrator.campaign.spec import json_schema

    text = json.dumps(json_schema(), indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"wrote {out}")
    else:
        sys.stdout.write(text + "\n")


@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Campaign file (YAML).")],
    db: DbOption = None,
    engine: Engine = "prefect",
) -> None:
    """Run a campaign to its budget or stop criterion; an existing campaign of the same spec is continued."""
    from orchestrator.campaign.spec import load_spec
    from orchestrator.cycle.context import open_campaign
    from orchestrator.lab.build import build_lab
    from orchestrator.store.database import open_database

    _check_engine(engine)
    spec, text = load_spec(spec_path)
    build_lab(spec)  # every check that can fail on input runs before the database is touched
    database = open_database(db)
    campaign_id, how = open_campaign(database, spec, text)
    if how == "reopened":
        console.print(f"continuing campaign '{spec.name}' from the database")
    _drive(database, campaign_id, engine)


@app.command()
def resume(campaign: CampaignArg, db: DbOption = None, engine: Engine = "prefect") -> None:
    """Continue a campaign from the database (after a crash, a kill, or a stop)."""
    from orchestrator.store.database import open_database
    from orchestrator.store.records import find_campaign

    _check_engine(engine)
    database = open_database(db)
    with database.session() as session:
        campaign_id = find_campaign(session, campaign).id
    _drive(database, campaign_id, engine)


def _drive(database: Any, campaign_id: int, engine: str) -> None:
    from orchestrator.campaign import runs
    from orchestrator.cycle.progress import CycleReport, subscribe
    from orchestrator.cycle.stages import load_context

    ctx = load_context(database, campaign_id)
    runs.claim(database, campaign_id)
    budget = ctx.spec.budget.experiments
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    bar = progress.add_task(ctx.name, total=budget)

    def show(report: CycleReport) -> None:
        progress.update(bar, completed=report.spent)
        best = ", ".join(f"{name} = {b['value']:.4g} (#{b['seq']})" for name, b in report.best.items()) or "none yet"
        mark = " [green]↑[/]" if report.improved else ""
        failed = f", {report.failed_in_cycle} failed" if report.failed_in_cycle else ""
        progress.console.print(
            f"cycle {report.cycle:>3}  {report.spent:>4}/{report.budget} experiments{failed}  best {best}{mark}"
        )
        for warning in report.warnings:
            progress.console.print(f"  [yellow]planner warning:[/] {warning}", markup=True, highlight=False)
        for news in report.hypotheses:
            progress.console.print(f"  [cyan]{escape(news)}[/]", markup=True, highlight=False)

    unsubscribe = subscribe(show)
    try:
        with progress:
            if engine == "prefect":
                _quiet_prefect()
                from orchestrator.cycle.flow import run_with_prefect

                reason = run_with_prefect(
                    str(database.engine.url.render_as_string(hide_password=False)),
                    campaign_id,
                    ctx.name,
                    ctx.lab.max_concurrency,
                )
            else:
                from orchestrator.cycle.loop import InlineStages, run_loop

                reason = run_loop(ctx, InlineStages(ctx))
    except KeyboardInterrupt:
        errors.print(f"interrupted; continue with: peirce resume {ctx.name}")
        raise typer.Exit(130) from None
    except PeirceError:
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        runs.release_after_error(database, campaign_id, message)
        raise PeirceError(f"campaign '{ctx.name}' failed: {message}") from exc
    finally:
        unsubscribe()
    console.print(f"[bold]{ctx.name}[/] finished: {reason}")
    _print_status(database, ctx.name)


@app.command()
def status(
    campaign: Annotated[str | None, typer.Argument(help="Campaign (default: all).")] = None, db: DbOption = None
) -> None:
    """Show a campaign's state: experiments by state, cycles, best so far, why it stopped."""
    from orchestrator.store.database import open_database

    database = open_database(db)
    if campaign is None:
        _print_list(database)
        return
    _print_status(database, campaign)


@app.command(name="list")
def list_campaigns(db: DbOption = None) -> None:
    """List the campaigns in the database."""
    from orchestrator.store.database import open_database

    _print_list(open_database(db))


@app.command()
def stop(campaign: CampaignArg, db: DbOption = None) -> None:
    """Ask a running campaign to stop after the experiments now running; nothing is lost."""
    from orchestrator.campaign.runs import request_stop
    from orchestrator.store.database import open_database

    console.print(request_stop(open_database(db), campaign))


@app.command()
def export(
    campaign: CampaignArg,
    db: DbOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default: CAMPAIGN.FORMAT).")] = None,
) -> None:
    """Export one row per experiment: parameters, measured objectives, predictions, state and times."""
    from orchestrator.review.export import experiments_frame, write_frame
    from orchestrator.store.database import open_database

    if fmt not in ("csv", "parquet"):
        raise SpecError("--format", f"'{fmt}' is not one of: csv, parquet")
    frame = experiments_frame(open_database(db), campaign)
    path = out or Path(f"{campaign}.{fmt}")
    write_frame(frame, path, fmt)
    console.print(f"wrote {len(frame)} experiments to {path}")


@app.command()
def hypotheses(
    campaign: CampaignArg,
    db: DbOption = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also list rejected proposals, with the reason.")] = False,
    history: Annotated[
        int | None,
        typer.Option("--history", metavar="ID", help="One hypothesis: credence per cycle, the experiments testing it."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON instead of a table.")] = False,
) -> None:
    """Show the hypothesis ledger: each claim, who proposed it, its credence, status and evidence."""
    from orchestrator.review.ledger import history_data, ledger_data, print_history, print_ledger
    from orchestrator.store.database import open_database

    database = open_database(db)
    if history is not None:
        data = history_data(database, campaign, history)
    else:
        data = ledger_data(database, campaign, show_all)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif history is not None:
        print_history(console, data)
    else:
        print_ledger(console, data, show_all)


def _option(name: str, help_text: str, metavar: str | None = None) -> Any:
    return typer.Option(name, help=help_text, show_default=False, metavar=metavar)


@app.command()
def hypothesize(
    campaign: CampaignArg,
    kind: Annotated[
        str | None,
        typer.Argument(help="effect, contrast, region or attainability (or give --from-json).", show_default=False),
    ] = None,
    objective: Annotated[str | None, _option("--objective", "Objective (default: the campaign's only one).")] = None,
    parameter: Annotated[str | None, _option("--parameter", "Effect, contrast: the parameter.")] = None,
    from_value: Annotated[float | None, _option("--from", "Effect: the value changed from.", "A")] = None,
    to_value: Annotated[float | None, _option("--to", "Effect: the value changed to.", "B")] = None,
    direction: Annotated[str | None, _option("--direction", "Effect: raises or lowers.")] = None,
    better: Annotated[str | None, _option("--better", "Contrast: the level claimed better.")] = None,
    worse: Annotated[str | None, _option("--worse", "Contrast: the level claimed worse.")] = None,
    where: Annotated[
        list[str] | None, _option("--where", "Region: p>=x, p<=x, p=LEVEL or p=L1|L2 (repeatable).", "COND")
    ] = None,
    above: Annotated[float | None, _option("--above", "Attainability: the objective can exceed X.", "X")] = None,
    below: Annotated[float | None, _option("--below", "Attainability: the objective can go under X.", "X")] = None,
    context: Annotated[
        list[str] | None, _option("--context", "Effect, contrast: hold p at v, as p=v (repeatable).", "P=V")
    ] = None,
    rationale: Annotated[str, _option("--rationale", "Why you believe it (kept with the hypothesis).")] = "",
    from_json: Annotated[Path | None, _option("--from-json", "Read one claim (any kind) from a JSON file.")] = None,
    db: DbOption = None,
) -> None:
    """Add your own hypothesis to a campaign's ledger; it is checked like any other and tested from the next cycle."""
    from orchestrator.ledger.edits import ClaimOptions, add_hypothesis, read_claim_file
    from orchestrator.store.database import open_database

    options = ClaimOptions(
        kind=kind or "",
        objective=objective,
        parameter=parameter,
        from_value=from_value,
        to_value=to_value,
        direction=direction,
        better=better,
        worse=worse,
        where=where or [],
        above=above,
        below=below,
        context=context or [],
    )
    claim: ClaimOptions | dict[str, Any] = options
    if from_json is not None:
        if options.given():
            raise SpecError(sorted(options.given())[0], "give the claim either in --from-json or as options, not both")
        claim, from_file = read_claim_file(from_json, kind)
        if objective is not None:
            claim.setdefault("objective", objective)
        rationale = rationale or from_file
    elif kind is None:
        raise SpecError("KIND", "give the kind of claim (effect, contrast, region, attainability) or --from-json")
    added = add_hypothesis(open_database(db), campaign, claim, rationale)
    console.print(f"hypothesis {added.id} added: {escape(added.statement)}")
    for note in added.notes:
        console.print(f"  [yellow]note:[/] {escape(note)}")


@app.command()
def retire(
    campaign: CampaignArg,
    hypothesis_id: Annotated[int, typer.Argument(metavar="ID", help="The open hypothesis to withdraw.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is withdrawn (kept with it).")],
    db: DbOption = None,
) -> None:
    """Withdraw an open hypothesis: it stays in the ledger as retired, with your reason, and is no longer tested."""
    from orchestrator.ledger.edits import retire_hypothesis
    from orchestrator.store.database import open_database

    console.print(escape(retire_hypothesis(open_database(db), campaign, hypothesis_id, reason)))


knowledge_app = typer.Typer(
    help="Carry hypotheses between campaigns: export what one campaign settled, import it into another.",
    no_args_is_help=True,
)
app.add_typer(knowledge_app, name="knowledge")


@knowledge_app.command("export")
def knowledge_export(
    campaign: CampaignArg,
    db: DbOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default: CAMPAIGN.knowledge.json).")] = None,
    include_all: Annotated[bool, typer.Option("--all", help="Also open and retired hypotheses.")] = False,
) -> None:
    """Write the campaign's supported and refuted hypotheses as a knowledge file (list it under
    `hypotheses: knowledge:` in a new campaign to start from them)."""
    from orchestrator.ledger.knowledge import export_knowledge
    from orchestrator.store.database import open_database

    data = export_knowledge(open_database(db), campaign, include_all)
    path = out or Path(f"{data['campaign']}.knowledge.json")
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"wrote {len(data['hypotheses'])} hypotheses to {path}")


@knowledge_app.command("import")
def knowledge_import(
    campaign: CampaignArg,
    path: Annotated[Path, typer.Argument(metavar="FILE", help="A knowledge file (peirce knowledge export).")],
    db: DbOption = None,
) -> None:
    """Import a knowledge file into an existing campaign: each claim that fits its space becomes an open
    hypothesis; the others are kept as rejected, with the reason."""
    from orchestrator.ledger.knowledge import import_into
    from orchestrator.store.database import open_database

    name, opened, rejected = import_into(open_database(db), campaign, path)
    console.print(f"imported into '{name}': {opened} open, {rejected} rejected (peirce hypotheses {name} --all)")


def _check_engine(engine: str) -> None:
    if engine not in ("prefect", "inline"):
        raise SpecError("--engine", f"'{engine}' is not one of: prefect, inline")


def _print_list(database: Any) -> None:
    from orchestrator.review.export import campaign_summaries

    rows = campaign_summaries(database)
    if not rows:
        console.print(f"no campaigns in {database.url}")
        return
    table = Table("id", "name", "status", "experiments", "best", "created", title=database.url)
    for row in rows:
        table.add_row(str(row["id"]), row["name"], row["status"], row["experiments"], row["best"], row["created"])
    console.print(table)


def _print_status(database: Any, ref: str) -> None:
    from orchestrator.review.export import campaign_status

    info = campaign_status(database, ref)
    console.print(f"[bold]{info['name']}[/] ({info['status']}) — {info['goal']}")
    console.print(f"  experiments: {info['spent']}/{info['budget']} spent; by state: {info['by_state']}")
    console.print(f"  cycles: {info['cycles']}; decisions: {info['decisions']}; events: {info['events']}")
    for name, best in info["best"].items():
        console.print(f"  best {name}: {best['value']:.6g} (experiment #{best['seq']}: {best['parameters']})")
    for name, c in info["calibration"].items():
        console.print(
            f"  calibration of {name}: {c['predictions']} predictions, {100 * c['within_1sd']:.0f} % within 1 sd, "
            f"{100 * c['within_2sd']:.0f} % within 2 sd of the measured value"
        )
    for instrument, counts in sorted(info["instrument_actions"].items()):
        failures = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if kind != "done")
        console.print(f"  {instrument}: {counts.get('done', 0)} actions done; failed: {failures or 'none'}")
    if info["hypotheses"]:
        counts = info["hypotheses"]
        shown = ", ".join(f"{counts[s]} {s}" for s in ("open", "supported", "refuted", "retired") if counts.get(s))
        rejected = f" ({counts['rejected']} proposals rejected)" if counts.get("rejected") else ""
        console.print(f"  hypotheses: {shown or 'none accepted'}{rejected}; see peirce hypotheses {info['name']}")
    if info["stop_reason"]:
        console.print(f"  stop reason: {info['stop_reason']}")


app.command(name="instruments")(instruments_command)
app.command(name="twin")(twin_command)
app.command(name="replay")(replay_command)
app.command(name="report")(report_command)
archive_app = typer.Typer(
    help="Carry a campaign to another database: one verified file out, in again.", no_args_is_help=True
)
app.add_typer(archive_app, name="archive")
archive_app.command("export")(archive_export_command)
archive_app.command("import")(archive_import_command)


def main() -> None:
    """Entry point: run the app, turning peirce's errors into one line and an exit status."""
    try:
        status = app(standalone_mode=False)
        if isinstance(status, int) and status:  # click returns a command's typer.Exit code here
            sys.exit(status)
    except PeirceError as exc:
        errors.print(f"error: {exc}", markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        errors.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors come here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            errors.print(f"error: {exc.format_message()}", markup=False, soft_wrap=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
