"""Commands for a campaign's life: write and check its file (`init`, `validate`, `schema`), run it (`run`,
`resume`, `stop`), watch it (`status`, `list`), take its results away (`export`), and bring an older database's
schema up to date (`upgrade`).

The modules behind them are imported inside each command, not here: the cycle brings torch and Prefect, the
review pandas, and `peirce --help`, `init` and `validate` should not wait for any of them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.cli import database, output
from orchestrator.cli.options import CampaignArg, DbOption, EngineOption
from orchestrator.errors import PeirceError, SpecError

if TYPE_CHECKING:
    from orchestrator.campaign.spec import CampaignSpec
    from orchestrator.cycle.context import CampaignContext
    from orchestrator.cycle.progress import CycleReport
    from orchestrator.store.database import Database

commands = typer.Typer()

TEMPLATE = Path(__file__).resolve().parents[1] / "campaign" / "templates" / "campaign.yaml"
# The templates of self-driving labs: the folders of examples/ beside the packages (docs/templates.md).
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "examples"
SpecArg = Annotated[Path, typer.Argument(metavar="SPEC", help="Campaign file (YAML).", show_default=False)]


@commands.command()
def init(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Where to write: the campaign file (default campaign.yaml), or with --template the folder "
            "(default: the template's name).",
            show_default=False,
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template", help="Start from a template of a self-driving lab (docs/templates.md).", metavar="NAME"
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file or folder.")] = False,
) -> None:
    """Write a commented example campaign to start from, or a template's folder (campaign, notes, README)."""
    if template is not None:
        _init_from_template(template, path or Path(template), force)
        return
    path = path or Path("campaign.yaml")
    if path.exists() and not force:
        raise SpecError(str(path), "file exists (use --force to overwrite)")
    path.write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    output.console().print(
        f"wrote {path}; check it with [bold]peirce validate {path}[/], run it with [bold]peirce run {path}[/]"
    )


def templates() -> dict[str, Path]:
    """The templates by name: each folder of examples/ that holds a campaign.yaml (they ship with the source)."""
    if not TEMPLATES_DIR.is_dir():
        return {}
    return {d.name: d for d in sorted(TEMPLATES_DIR.iterdir()) if (d / "campaign.yaml").is_file()}


def _init_from_template(name: str, folder: Path, force: bool) -> None:
    known = templates()
    if name not in known:
        choices = ", ".join(known) or "none found: they ship with peirce's source, in examples/"
        raise SpecError("--template", f"no template '{name}' (templates: {choices})")
    if folder.exists() and not folder.is_dir():
        raise SpecError(str(folder), "is a file, not a folder")
    files = [f for f in sorted(known[name].rglob("*")) if f.is_file() and not _generated(f)]
    targets = [folder / f.relative_to(known[name]) for f in files]
    clashes = [t for t in targets if t.exists()]
    if clashes and not force:
        raise SpecError(str(clashes[0]), "file exists (use --force to overwrite)")
    for source, target in zip(files, targets, strict=True):  # every check first: a refusal writes nothing
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    campaign = folder / "campaign.yaml"
    output.console().print(
        f"wrote {folder}/ ({len(files)} files) from template {name}; read {folder / 'README.md'}, "
        f"run it with peirce run {campaign}",
        markup=False,
        soft_wrap=True,
    )


def _generated(path: Path) -> bool:
    """What running a template leaves beside it (caches, databases, reports), never part of the template."""
    # SQLite's write-ahead log and shared memory (`x.db-wal`, `x.db-shm`) and rollback journal stay beside a
    # database while a run is alive or after it was killed.
    return (
        "__pycache__" in path.parts
        or path.suffix in (".pyc", ".db", ".db-wal", ".db-shm", ".db-journal")
        or path.name.endswith("-report.html")
    )


@commands.command()
def validate(spec_path: SpecArg) -> None:
    """Check a campaign file, including its lab (data files, columns, levels). Writes nothing."""
    # Imported here: the spec schema and the lab builders load pydantic models and the simulators, which `--help`
    # does not need (they load no torch: `validate` stays quick).
    from orchestrator.campaign.spec import load_spec
    from orchestrator.lab.build import build_lab

    spec, _ = load_spec(spec_path)
    lab = build_lab(spec)
    space = spec.search_space(lab.candidates)
    kinds: dict[str, int] = {}
    for parameter in spec.space:
        kinds[parameter.type] = kinds.get(parameter.type, 0) + 1
    size = (
        f"{space.grid_size} points"
        if space.is_finite
        else ("a continuous space" if set(kinds) == {"continuous"} else "a mixed space")
    )
    shape = ", ".join(f"{n} {kind}" for kind, n in kinds.items()) + f"; {size}"
    for count, noun in ((len(spec.mixtures), "mixture"), (len(spec.constraints), "linear constraint")):
        if count:
            shape += f"; {count} {noun}{'s' if count > 1 else ''}"
    output.console().print(
        f"[green]ok[/] {spec.name}: {len(spec.space)} parameters ({shape}), "
        f"{len(spec.objectives)} objective(s), budget {spec.budget.experiments} experiments "
        f"in batches of {spec.budget.batch_size}, planner {spec.planner.kind}, lab {_lab_name(spec)}"
    )


def _lab_name(spec: CampaignSpec) -> str:
    # Imported here with `load_spec`, which has already loaded them (start-up time, as in `validate`).
    from orchestrator.campaign.spec import ManualLab, PythonLab
    from orchestrator.campaign.station import StationLab

    lab = spec.lab
    if isinstance(lab, StationLab):
        mode = "on device twins" if lab.twins is not None else "on instruments"
        return f"station {lab.station} ({len(lab.instruments)} instruments, {mode})"
    if isinstance(lab, ManualLab):
        return "manual (a person runs each experiment and enters its results)"
    if isinstance(lab, PythonLab):
        return f"python function {lab.python}"
    return str(lab.simulator)


@commands.command()
def schema(
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of campaign files (for editors' YAML language servers)."""
    # Imported here: the spec schema loads pydantic models that `--help` does not need.
    from orchestrator.campaign.spec import json_schema

    text = json.dumps(json_schema(), indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        output.console().print(f"wrote {out}")
    else:
        sys.stdout.write(text + "\n")


@commands.command()
def run(spec_path: SpecArg, db: DbOption = None, engine: EngineOption = "prefect") -> None:
    """Run a campaign to its budget or stop criterion; an existing campaign of the same spec is continued."""
    # Imported here: the campaign context loads the planners (torch), which `--help` and `validate` do not need.
    from orchestrator.campaign.spec import load_spec
    from orchestrator.cycle.context import open_campaign
    from orchestrator.lab.build import build_lab

    _check_engine(engine)
    spec, text = load_spec(spec_path)
    build_lab(spec)  # every check that can fail on input runs before the database is touched
    opened = database.for_creating(db)
    campaign_id, how = open_campaign(opened, spec, text)
    if how == "reopened":
        output.console().print(f"continuing campaign '{spec.name}' from the database")
    _drive(opened, campaign_id, engine)


@commands.command()
def resume(campaign: CampaignArg, db: DbOption = None, engine: EngineOption = "prefect") -> None:
    """Continue a campaign from the database (after a crash, a kill, or a stop)."""
    # Imported here: the store's queries load SQLAlchemy, which `--help` does not need.
    from orchestrator.store.records import find_campaign

    _check_engine(engine)
    opened = database.for_changing(db)
    with opened.session() as session:
        campaign_id = find_campaign(session, campaign).id
    _drive(opened, campaign_id, engine)


def quiet_prefect() -> None:
    # Prefect's own INFO lines and its temporary server's shutdown chatter would bury our progress lines.
    # Failures reach the person as one line from peirce, and in full in the database's events.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_SERVER_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _drive(opened: Database, campaign_id: int, engine: str) -> None:
    """Run the loop with a progress bar (on a terminal) and one line per cycle; turn a crash into one line.

    The runner's lease is held for the whole run, its heartbeat beating on a thread of its own; SIGTERM and Ctrl-C
    stop at the next safe point, as `peirce stop` does (a second Ctrl-C interrupts at once)."""
    # Imported here: the cycle loads torch, the planners and the lab, which only running needs.
    from orchestrator.campaign import runs
    from orchestrator.cycle.context import load_context
    from orchestrator.cycle.progress import subscribe
    from orchestrator.cycle.release import release_failed
    from orchestrator.cycle.waiting import WAITING_FOR_PEOPLE

    console = output.console()
    ctx = load_context(opened, campaign_id)
    _warn_unless_held(ctx)
    lease = runs.claim(opened, campaign_id)
    ctx = replace(ctx, runner=lease.runner)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    bar = progress.add_task(ctx.name, total=ctx.spec.budget.experiments)

    def show(report: CycleReport) -> None:
        progress.update(bar, completed=report.spent)
        for line in _cycle_lines(report):
            progress.console.print(line, highlight=False)

    def announce(line: str) -> None:
        output.errors().print(line, markup=False)

    unsubscribe = subscribe(show)
    try:
        with lease, lease.stop_on_signals(announce), progress:
            reason = _run_engine(opened, ctx, campaign_id, engine)
    except KeyboardInterrupt:
        output.errors().print(f"interrupted; continue with: peirce resume {ctx.name}", markup=False)
        raise typer.Exit(130) from None
    except PeirceError:
        raise  # a lost lease among them: the campaign is the other runner's now, neither failed nor finished
    except Exception as exc:
        message = release_failed(opened, campaign_id, exc, lease.runner)
        raise PeirceError(f"campaign '{ctx.name}' failed: {message}") from exc
    finally:
        unsubscribe()
    if reason.startswith(WAITING_FOR_PEOPLE):
        # Paused, not finished: the runner has gone and the campaign waits for people (see cycle/waiting.py).
        console.print(f"[bold]{escape(ctx.name)}[/] is {escape(reason)}")
        console.print(f"continue with: peirce resume {escape(ctx.name)}", highlight=False)
    else:
        console.print(f"[bold]{escape(ctx.name)}[/] finished: {escape(reason)}")
    _print_status(console, opened, ctx.name)


def _warn_unless_held(ctx: CampaignContext) -> None:
    """Say so when a campaign on a lab's shared instruments runs where no lab-wide hold can be taken (no Prefect
    server every campaign talks to): nothing then keeps the lab's other campaigns off its instruments."""
    from orchestrator.campaign.station import StationLab  # loaded already with the spec (start-up time, as above)

    lab = ctx.spec.lab
    if isinstance(lab, StationLab) and lab.shared is not None and ctx.holds is None:
        output.errors().print(
            f"warning: the instruments of lab '{lab.shared.lab}' are not held lab-wide: no Prefect server "
            "(PREFECT_API_URL); run no other campaign on them meanwhile",
            markup=False,
        )


def _run_engine(opened: Database, ctx: CampaignContext, campaign_id: int, engine: str) -> str:
    if engine == "prefect":
        quiet_prefect()
        # Imported here: Prefect takes seconds to load, and `--engine inline` never needs it.
        from prefect.exceptions import TerminationSignal

        # Imported here: the flow loads Prefect (as above), and the lease SQLAlchemy, which `--help` does not need.
        from orchestrator.campaign.runs import release_after_signal
        from orchestrator.cycle.flow import run_with_prefect

        url = str(opened.engine.url.render_as_string(hide_password=False))
        try:
            return run_with_prefect(url, campaign_id, ctx.name, ctx.lab.max_concurrency)
        except TerminationSignal as exc:
            # The flow puts our SIGTERM handler back while its loop runs; in the moments before and after that,
            # Prefect's own handler ends the flow run at once (ours has then asked for the stop, and said so). The
            # campaign is stopped; what was in flight is reconciled by the next resume.
            reason = f"stopped by signal {signal.Signals(exc.signal).name}"
            release_after_signal(opened, campaign_id, ctx.runner or "", reason)
            return reason
    # Imported here with the rest of the cycle (start-up time, as in `_drive`).
    from orchestrator.cycle.loop import InlineStages, run_loop

    return run_loop(ctx, InlineStages(ctx))


def _cycle_lines(report: CycleReport) -> list[str]:
    """One line for the cycle (spent, failures, best so far), then the planner's warnings and hypothesis news."""
    best = ", ".join(f"{name} = {b['value']:.4g} (#{b['seq']})" for name, b in report.best.items()) or "none yet"
    mark = " [green]↑[/]" if report.improved else ""
    failed = f", {report.failed_in_cycle} failed" if report.failed_in_cycle else ""
    lines = [f"cycle {report.cycle:>3}  {report.spent:>4}/{report.budget} experiments{failed}  best {best}{mark}"]
    lines += [f"  [yellow]planner warning:[/] {escape(warning)}" for warning in report.warnings]
    lines += [f"  [cyan]{escape(news)}[/]" for news in report.hypotheses]
    return lines


def _check_engine(engine: str) -> None:
    if engine not in ("prefect", "inline"):
        raise SpecError("--engine", f"'{engine}' is not one of: prefect, inline")


@commands.command()
def stop(campaign: CampaignArg, db: DbOption = None) -> None:
    """Ask a running campaign to stop after the experiments now running; nothing is lost."""
    # Imported here: the runner lease loads the store (SQLAlchemy), which `--help` does not need.
    from orchestrator.campaign.runs import request_stop

    output.console().print(request_stop(database.for_changing(db), campaign), markup=False)


@commands.command()
def status(
    campaign: Annotated[str | None, typer.Argument(help="Campaign (default: all).", show_default=False)] = None,
    db: DbOption = None,
) -> None:
    """Show a campaign's state: experiments by state, cycles, best so far, why it stopped. Writes nothing."""
    opened = database.for_reading(db)
    if campaign is None:
        _print_list(output.console(), opened)
    else:
        _print_status(output.console(), opened, campaign)


@commands.command(name="list")
def list_campaigns(db: DbOption = None) -> None:
    """List the campaigns in the database. Writes nothing."""
    _print_list(output.console(), database.for_reading(db))


@commands.command()
def export(
    campaign: CampaignArg,
    db: DbOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default: CAMPAIGN.FORMAT).")] = None,
) -> None:
    """Export one row per experiment: parameters, measured objectives, predictions, state and times."""
    # Imported here: the export loads pandas and pyarrow, which only this command needs.
    from orchestrator.review.export import experiments_frame, write_frame

    if fmt not in ("csv", "parquet"):
        raise SpecError("--format", f"'{fmt}' is not one of: csv, parquet")
    frame = experiments_frame(database.for_reading(db), campaign)
    path = out or Path(f"{campaign}.{fmt}")
    write_frame(frame, path, fmt)
    output.console().print(f"wrote {len(frame)} experiments to {path}", markup=False)


@commands.command()
def upgrade(db: DbOption = None) -> None:
    """Bring a database's schema to this version of peirce (commands that only read never change it)."""
    opened = database.for_changing(db)  # opening for a change brings the schema up to date
    output.console().print(f"{opened.url} is up to date", markup=False)


def _print_list(console: Console, opened: Database) -> None:
    # Imported here: the review's queries load pandas, which `--help` does not need.
    from orchestrator.review.export import campaign_summaries

    rows = campaign_summaries(opened)
    if not rows:
        console.print(f"no campaigns in {opened.url}", markup=False)
        return
    table = Table("id", "name", "status", "experiments", "best", "created", title=escape(opened.url))
    for row in rows:
        cells = (row["id"], row["name"], row["status"], row["experiments"], row["best"], row["created"])
        table.add_row(*(escape(str(cell)) for cell in cells))
    console.print(table)


def _print_status(console: Console, opened: Database, ref: str) -> None:
    # Imported here (start-up time, as in `_print_list`).
    from orchestrator.review.export import campaign_status, describe_unconfirmed

    info = campaign_status(opened, ref)
    gone = _runner_gone(opened, ref) if info["status"] in ("running", "stopping") else None
    shown_status = f"{info['status']}, runner gone" if gone else info["status"]
    console.print(f"[bold]{escape(info['name'])}[/] ({shown_status}) — {escape(info['goal'])}")
    lines = [gone] if gone else []
    lines += [
        f"  experiments: {info['spent']}/{info['budget']} spent; by state: {info['by_state']}",
        f"  cycles: {info['cycles']}; decisions: {info['decisions']}; events: {info['events']}",
    ]
    for name, best in info["best"].items():
        lines.append(f"  best {name}: {best['value']:.6g} (experiment #{best['seq']}: {best['parameters']})")
    for name, c in info["calibration"].items():
        lines.append(
            f"  calibration of {name}: {c['predictions']} predictions, {100 * c['within_1sd']:.0f} % within 1 sd, "
            f"{100 * c['within_2sd']:.0f} % within 2 sd of the measured value"
        )
    for instrument, counts in sorted(info["instrument_actions"].items()):
        failures = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if kind != "done")
        lines.append(f"  {instrument}: {counts.get('done', 0)} actions done; failed: {failures or 'none'}")
    unconfirmed = describe_unconfirmed(info["unconfirmed_actions"])
    if unconfirmed:  # dispenses sent and never confirmed: a person must check before a vial is reused
        lines.append(f"  {unconfirmed}")
    if info["hypotheses"]:
        counts = info["hypotheses"]
        shown = ", ".join(f"{counts[s]} {s}" for s in ("open", "supported", "refuted", "retired") if counts.get(s))
        rejected = f" ({counts['rejected']} proposals rejected)" if counts.get("rejected") else ""
        lines.append(f"  hypotheses: {shown or 'none accepted'}{rejected}; see peirce hypotheses {info['name']}")
    waiting = _waiting_line(opened, ref)
    if waiting is not None:
        lines.append(waiting)  # what waits now, rather than what waited when the campaign paused
    if info["stop_reason"] and info["status"] != "waiting":
        lines.append(f"  stop reason: {info['stop_reason']}")
    for line in lines:
        console.print(line, markup=False)


def _waiting_line(opened: Database, ref: str) -> str | None:
    """For a campaign waiting for people (paused, or its runner waiting in its process): what waits, read now."""
    # Imported here: the store loads SQLAlchemy, which `--help` does not need.
    from orchestrator.campaign.runs import continue_command
    from orchestrator.people.waiting import waiting
    from orchestrator.store.models import CampaignStatus
    from orchestrator.store.records import find_campaign

    with opened.session() as session:
        campaign = find_campaign(session, ref)
        what = waiting(session, campaign.id)
        name, status = campaign.name, campaign.status
        command = continue_command(session, campaign)
    if status == CampaignStatus.WAITING:
        if not what:
            return f"  waiting: nothing waits for people any more; continue with: {command}"
        return f"  waiting: {what.describe(name)}; then: {command}"
    if what and status in (CampaignStatus.RUNNING, CampaignStatus.STOPPING):
        return f"  waiting: {what.describe(name)}"
    return None


def _runner_gone(opened: Database, ref: str) -> str | None:
    """For a campaign marked running (or stopping): the line that says its runner is gone, or None if it lives."""
    # Imported here: the lease loads the store (SQLAlchemy), which `--help` does not need.
    from orchestrator.campaign.runs import continue_command, runner_state
    from orchestrator.store.records import find_campaign

    with opened.session() as session:
        campaign = find_campaign(session, ref)
        state = runner_state(session, campaign)
        command = continue_command(session, campaign)
    if state.alive:
        return None
    heartbeat = state.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S UTC") if state.heartbeat_at else "never"
    return f"  runner {state.runner or '(none)'} is not alive; last heartbeat {heartbeat}; `{command}` continues"
