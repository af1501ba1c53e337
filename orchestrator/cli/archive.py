"""`peirce archive export` and `peirce archive import`: carry a campaign to another database in one verified file
(the format and its checks: `orchestrator.review.archive`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli import database, output
from orchestrator.cli.options import CampaignArg, DbOption

commands = typer.Typer(
    help="Carry a campaign to another database: one verified file out, in again.", no_args_is_help=True
)

# What the summary line counts, in this order.
COUNTED = ("cycles", "decisions", "experiments", "measurements", "hypotheses", "events", "artifacts")


@commands.command("export")
def archive_export(
    campaign: CampaignArg,
    out: Annotated[
        Path | None, typer.Option("--out", help="Archive file to write (default: CAMPAIGN.archive.zip).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write one campaign (all its rows, its spec and its decisions' artifacts) to a zip file, to review or replay
    it in another database (`peirce archive import`). Writes nothing to the database."""
    # Imported here: the archive loads SQLAlchemy and the typed records, which `--help` does not need.
    from orchestrator.review.archive import write_archive

    result = write_archive(database.for_reading(db), campaign, out)
    output.console().print(
        f"wrote {result.path}: campaign '{result.name}', {_counts(result.counts)} ({result.size:,} bytes)",
        markup=False,
    )


@commands.command("import")
def archive_import(
    path: Annotated[Path, typer.Argument(metavar="ARCHIVE", help="A file written by `peirce archive export`.")],
    db: DbOption = None,
) -> None:
    """Verify an archive (every member's hash) and import its campaign under new ids; a campaign of the same
    name already there is refused."""
    # Imported here (start-up time, as in `archive export`).
    from orchestrator.review.archive import insert_archive, read_archive

    archive = read_archive(path)  # verified before the database is opened: a bad file creates no database either
    target = database.for_creating(db)
    result = insert_archive(target, archive, path)
    output.console().print(
        f"imported campaign '{result.name}' from {path} into {target.url} as id {result.campaign_id}: "
        f"{_counts(result.counts)}",
        markup=False,
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(name, 0)} {name}" for name in COUNTED)
