"""The arguments and options several commands share, declared once so they read and behave the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        # Named here rather than imported from the store, which would load SQLAlchemy for `peirce --help`.
        help="Database URL (default: $PEIRCE_DB_URL, else sqlite:///peirce.db in this folder).",
        show_default=False,
        metavar="URL",
    ),
]
CampaignArg = Annotated[
    str, typer.Argument(metavar="CAMPAIGN", help="Campaign name (or numeric id).", show_default=False)
]
EngineOption = Annotated[
    str, typer.Option("--engine", help="prefect: the Prefect flow (default); inline: plain functions.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON instead of a table.")]
