"""Commands on a campaign's hypothesis ledger: read it (`hypotheses`), add to it (`hypothesize`), withdraw from it
(`retire`), and carry what it settled to another campaign (`knowledge export`, `knowledge import`).

`hypothesize` checks a claim and writes one row: it must stay quick, so nothing here loads torch (a test says so).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from orchestrator.cli import database, output
from orchestrator.cli.options import CampaignArg, DbOption, JsonOption
from orchestrator.errors import SpecError

commands = typer.Typer()
knowledge = typer.Typer(
    help="Carry hypotheses between campaigns: export what one campaign settled, import it into another.",
    no_args_is_help=True,
)
commands.add_typer(knowledge, name="knowledge")


@commands.command()
def hypotheses(
    campaign: CampaignArg,
    db: DbOption = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also list rejected proposals, with the reason.")] = False,
    history: Annotated[
        int | None,
        typer.Option("--history", metavar="ID", help="One hypothesis: credence per cycle, the experiments testing it."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the hypothesis ledger: each claim, who proposed it, its credence, status and evidence. Writes nothing."""
    # Imported here: the ledger view loads SQLAlchemy and the schema, which `--help` does not need.
    from orchestrator.review.ledger import history_data, ledger_data, print_history, print_ledger

    opened = database.for_reading(db)
    data = history_data(opened, campaign, history) if history is not None else ledger_data(opened, campaign, show_all)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif history is not None:
        print_history(output.console(), data)
    else:
        print_ledger(output.console(), data, show_all)


def _option(name: str, help_text: str, metavar: str | None = None) -> Any:
    return typer.Option(name, help=help_text, show_default=False, metavar=metavar)


@commands.command()
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
    # Imported here: the ledger's edits load the schema and the claim guards (no torch), which `--help` does not
    # need.
    from orchestrator.ledger.edits import ClaimOptions, add_hypothesis, read_claim_file

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
    added = add_hypothesis(database.for_changing(db), campaign, claim, rationale)
    console = output.console()
    console.print(f"hypothesis {added.id} added: {escape(added.statement)}")
    for note in added.notes:
        console.print(f"  [yellow]note:[/] {escape(note)}")


@commands.command()
def retire(
    campaign: CampaignArg,
    hypothesis_id: Annotated[int, typer.Argument(metavar="ID", help="The open hypothesis to withdraw.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is withdrawn (kept with it).")],
    db: DbOption = None,
) -> None:
    """Withdraw an open hypothesis: it stays in the ledger as retired, with your reason, and is no longer tested."""
    # Imported here (start-up time, as in `hypothesize`).
    from orchestrator.ledger.edits import retire_hypothesis

    output.console().print(retire_hypothesis(database.for_changing(db), campaign, hypothesis_id, reason), markup=False)


@knowledge.command("export")
def knowledge_export(
    campaign: CampaignArg,
    db: DbOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default: CAMPAIGN.knowledge.json).")] = None,
    include_all: Annotated[bool, typer.Option("--all", help="Also open and retired hypotheses.")] = False,
) -> None:
    """Write the campaign's supported and refuted hypotheses as a knowledge file (list it under
    `hypotheses: knowledge:` in a new campaign to start from them). Writes nothing to the database."""
    # Imported here: the knowledge file format loads the schema, which `--help` does not need.
    from orchestrator.ledger.knowledge import export_knowledge

    data = export_knowledge(database.for_reading(db), campaign, include_all)
    path = out or Path(f"{data['campaign']}.knowledge.json")
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    output.console().print(f"wrote {len(data['hypotheses'])} hypotheses to {path}", markup=False)


@knowledge.command("import")
def knowledge_import(
    campaign: CampaignArg,
    path: Annotated[Path, typer.Argument(metavar="FILE", help="A knowledge file (peirce knowledge export).")],
    db: DbOption = None,
) -> None:
    """Import a knowledge file into an existing campaign: each claim that fits its space becomes an open
    hypothesis; the others are kept as rejected, with the reason."""
    # Imported here (start-up time, as in `knowledge export`).
    from orchestrator.ledger.knowledge import import_into

    name, opened, rejected = import_into(database.for_changing(db), campaign, path)
    output.console().print(
        f"imported into '{name}': {opened} open, {rejected} rejected (peirce hypotheses {name} --all)", markup=False
    )
