"""How a runner gives a campaign's lease back when its loop raised, shared by `peirce run`/`resume` (the CLI's
`_drive`) and a flow run a Prefect worker started (`cycle.flow`), so both leave the same record.

The loop's own ends (finished, paused for people) free the lease where they are written (`recovery`, `waiting`);
a stop by a signal is `campaign.runs.release_after_signal`.
"""

from __future__ import annotations

from orchestrator.campaign.runs import release_after_error
from orchestrator.people.notify import notify_failed
from orchestrator.store.database import Database


def failure_line(exc: BaseException) -> str:
    """The exception as the one line the campaign's stop reason, the webhook and the person read."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def release_failed(db: Database, campaign_id: int, exc: BaseException, runner: str | None) -> str:
    """The loop raised `exc`: mark the campaign failed and free the lease (while `runner` still holds it), tell the
    campaign's webhooks (which never raises); returns the line that says why."""
    message = failure_line(exc)
    release_after_error(db, campaign_id, message, runner=runner)
    notify_failed(db, campaign_id, message)
    return message
