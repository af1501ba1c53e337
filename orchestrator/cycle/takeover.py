"""Prefect's record of a flow run whose process died: set to Crashed by the run that took its campaign over.

A worker that loses power, or is killed outright, leaves its flow run `Running` in Prefect for ever: nothing is
left to report its end. peirce knows better: the next runner of the campaign takes the dead runner's lease over
(`campaign.runs.claim`, which checks that its process is gone), and each flow run records its id in the event of
its claim. So the run that takes a campaign over finds the dead runner's flow run by that record and sets it to
`Crashed`, with a message naming itself, and the UI stops showing two runs of one campaign at once.

Only a run that is not already final is touched, and only by its id from the campaign's own journal. The record is
a courtesy to the people watching: a server that cannot be reached leaves it as it was, with a warning in the run's
logs, and the campaign goes on.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.states import Crashed

from orchestrator.campaign.runs import last_claim
from orchestrator.records.events import EventKind
from orchestrator.store.database import Database
from orchestrator.store.records import add_event


def dead_flow_run(db: Database, campaign_id: int, runner: str) -> str | None:
    """The flow run id the runner `runner` recorded when it claimed the campaign (its last claim), if any."""
    with db.session() as session:
        claimed = last_claim(session, campaign_id, runner) or {}
    return str(claimed["flow_run_id"]) if claimed.get("flow_run_id") else None


def crash_dead_run(
    db: Database,
    campaign_id: int,
    dead_runner: str,
    flow_run_id: str | None,
    log: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Set the dead runner's flow run to Crashed (unless final already), journalled as an event of the campaign."""
    dead = dead_flow_run(db, campaign_id, dead_runner)
    if dead is None or dead == flow_run_id:
        return
    message = f"its runner {dead_runner} is gone; flow run {flow_run_id} took the campaign over"
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(dead))
            if run.state is not None and run.state.is_final():
                return
            client.set_flow_run_state(UUID(dead), Crashed(message=message), force=True)
    except Exception as exc:  # the record is a courtesy: a server that cannot answer leaves it, the campaign goes on
        log.warning("could not set flow run %s to Crashed: %s", dead, exc)
        return
    with db.session() as session:
        add_event(
            session,
            campaign_id,
            "campaign",
            campaign_id,
            EventKind.FLOW_RUN_CRASHED,
            detail={"flow_run_id": dead, "runner": dead_runner, "by_flow_run": flow_run_id},
        )
    log.info("flow run %s of a runner that is gone set to Crashed", dead)
