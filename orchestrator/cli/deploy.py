"""Campaigns on a Prefect server: `peirce deploy` registers the campaign flow in a work pool, `peirce submit` hands a
campaign to that pool's workers (`prefect worker start --pool NAME` on the computer beside the instruments).

`peirce run` keeps running a campaign in its own process; these two are for a lab with a Prefect server
(PREFECT_API_URL) and a database every worker reaches. Prefect is imported inside each command: `--help` stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from orchestrator.cli import database, output
from orchestrator.cli.campaigns import quiet_prefect
from orchestrator.cli.options import DbOption

if TYPE_CHECKING:
    from sqlalchemy import URL

commands = typer.Typer()

PoolOption = Annotated[
    str,
    typer.Option("--pool", help="Prefect work pool (a process pool; its workers run the campaigns).", metavar="NAME"),
]


DEPLOY_HELP = (
    "Register the campaign flow as the deployment peirce-campaign/NAME in the process work pool NAME (created if "
    "missing), on the Prefect server of PREFECT_API_URL. Idempotent.\n\n"
    "The database URL is never given to Prefect: each worker reads it from its own environment (PEIRCE_DB_URL), so "
    "a password stays out of Prefect's records. --db names the database to check (its schema brought up to date).\n\n"
    "Then start a worker beside the instruments: PEIRCE_DB_URL=URL prefect worker start --pool NAME"
)
SUBMIT_HELP = (
    "Create (or continue) the campaign in the database, with the checks of `peirce run`, and start a flow run of it "
    "on the deployment peirce-campaign/NAME for a worker of pool NAME to run; prints the run's id and its address "
    "in Prefect's UI. SPEC is a campaign file, or the name of a campaign in the database (continued with its stored "
    "spec, as `peirce resume NAME` would be, but on a worker).\n\nNeeds a Prefect server (PREFECT_API_URL) and "
    "`peirce deploy --pool NAME` first."
)
SubmitArg = Annotated[
    Path,
    typer.Argument(metavar="SPEC", help="Campaign file (YAML), or a campaign's name.", show_default=False),
]


@commands.command(help=DEPLOY_HELP, short_help="Register the campaign flow in a Prefect work pool.")
def deploy(pool: PoolOption, db: DbOption = None) -> None:
    quiet_prefect()
    # Imported here: Prefect takes seconds to load, which `--help` does not need.
    from orchestrator.cycle.deployment import check_pool_name, server_url
    from orchestrator.cycle.deployment import deploy as register

    server_url()  # no server, or a bad pool name: one line, before anything is written
    check_pool_name(pool)
    opened = database.for_creating(db)
    deployed = register(pool)
    console = output.console()
    pool_line = f"work pool '{pool}' created" if deployed.pool_created else f"work pool '{pool}' exists"
    console.print(f"deployed {deployed.name} ({pool_line}; deployment {deployed.deployment_id})", markup=False)
    console.print(
        f"start a worker beside the instruments: PEIRCE_DB_URL='{worker_url(opened.engine.url)}' "
        f"prefect worker start --pool {pool}",
        markup=False,
        soft_wrap=True,
    )
    if opened.engine.url.get_backend_name() == "sqlite":
        console.print("(a SQLite file serves workers on this computer only; a lab of several uses PostgreSQL)")
    console.print(f"submit a campaign: peirce submit CAMPAIGN.yaml --pool {pool}", markup=False)
    if deployed.leases_forgotten_on_restart:
        output.errors().print(
            "warning: the Prefect server keeps its leases in memory: a restart forgets the holds on instruments taken "
            "before it, and their slots stay taken; start it with PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="
            "prefect.server.concurrency.lease_storage.filesystem (docs/deploy.md)",
            markup=False,
            soft_wrap=True,
        )


@commands.command(help=SUBMIT_HELP, short_help="Hand a campaign to a work pool's workers (a Prefect flow run).")
def submit(spec_path: SubmitArg, pool: PoolOption, db: DbOption = None) -> None:
    quiet_prefect()
    # Imported here: the spec, the lab and Prefect load models, simulators and Prefect, which `--help` does not need.
    from orchestrator.campaign.runs import refuse_unless_free
    from orchestrator.campaign.spec import load_spec
    from orchestrator.cycle.context import load_context, open_campaign
    from orchestrator.cycle.deployment import check_deployed, server_url
    from orchestrator.cycle.deployment import submit as start_run
    from orchestrator.lab.build import build_lab
    from orchestrator.store.records import find_campaign

    if spec_path.is_file() or spec_path.suffix.lower() in (".yaml", ".yml"):
        spec, text = load_spec(spec_path)
        build_lab(spec)  # every check that can fail on input runs before the database is touched
        server_url()
        deployment_id = check_deployed(pool)
        opened = database.for_creating(db)
        campaign_id, how = open_campaign(opened, spec, text)
        name = spec.name
    else:
        # A campaign of the database by name, continued with its stored spec (as `peirce resume NAME` would be).
        server_url()
        deployment_id = check_deployed(pool)
        opened = database.for_changing(db)
        with opened.session() as session:
            found = find_campaign(session, str(spec_path))
            campaign_id, name = found.id, found.name
        load_context(opened, campaign_id)  # its lab and planner build here, or the one-line error says why not
        how = "reopened"
    refuse_unless_free(opened, campaign_id)  # completed, or run by a live process: one line, no flow run
    submitted = start_run(deployment_id, campaign_id, name)
    console = output.console()
    verb = "continuing" if how == "reopened" else "created"
    console.print(f"{verb} campaign '{escape(name)}'; flow run {submitted.flow_run_id} submitted to pool {pool}")
    if submitted.ui_url:
        console.print(f"watch it at {submitted.ui_url}", markup=False, soft_wrap=True)
    console.print(f"follow it with: peirce status {escape(name)}")


def worker_url(url: URL) -> str:
    """The database URL as a worker is to be given it: the password hidden (the worker's owner types it), and a
    SQLite file by its absolute path, since a worker does not start in this folder."""
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(Path(url.database).resolve()))
    return url.render_as_string(hide_password=True)
