"""The orchestrator: runs campaigns round the cycle abduce → deduce → experiment → induce, and keeps every act.

Rooms, from the bottom up (each may import the rooms below it, never one above; `scripts/test` checks this):

    errors      the typed errors every room raises (one line each at the CLI)
    store       the database: models, sessions, migrations, artifacts, record helpers, read-only queries
    records     provenance (hashes, versions, seeds) and the typed shape of what a decision records
    campaign    the campaign file: schema, station section, loading and checks, the runner lease
    lab         the lab contract (Lab, LabResult, LabFailure) and its adapters: simulators and stations
    ledger      the hypothesis ledger: rows, a person's edits, knowledge carried between campaigns
    cycle       the stages as plain functions, the loop that runs them, and the Prefect flow that composes them
    review      read-only views of a campaign: tables, plots, report, replay, export, archive
    cli         the `peirce` command, one module per command group

Outside packages: the orchestrator may import `planners`, `instruments` and `simulators`; none of them imports it.
"""

__version__ = "0.1.0"
