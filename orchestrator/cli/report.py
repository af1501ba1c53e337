"""`peirce report CAMPAIGN`: the command only; the report (pandas, matplotlib) is imported when it runs, so
the rest of the CLI starts without them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False)


def report_command(
    campaign: Annotated[str, typer.Argument(help="Campaign name (or numeric id).", show_default=False)],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default: CAMPAIGN-report.html).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: $PEIRCE_DB_URL, else sqlite:///peirce.db).", show_default=False
        ),
    ] = None,
    skip_replay: Annotated[
        bool, typer.Option("--skip-replay", help="Leave replay out (it re-derives every decision: slow on long runs).")
    ] = False,
) -> None:
    """Write a self-contained HTML review of a campaign: status, spec, plots, hypotheses, instruments, replay."""
    from orchestrator.review.report import write_report
    from orchestrator.store.database import open_database

    path = write_report(open_database(db), campaign, out or Path(f"{campaign}-report.html"), replay=not skip_replay)
    console.print(f"wrote {path}")
