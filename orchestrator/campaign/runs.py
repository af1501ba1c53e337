"""Starting, resuming and stopping campaigns: the campaign row's life, and the lease that keeps one runner.

Only one process runs a campaign at a time. It writes its identity (`host:pid`) and a heartbeat on the campaign;
another `peirce run` or `resume` is refused while that process lives (same host) or its heartbeat is fresh
(another host). A runner killed outright leaves a lease nobody holds, which the next `resume` takes over.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.campaign.spec import CampaignSpec
from orchestrator.errors import CampaignConflict
from orchestrator.store.database import Database
from orchestrator.store.models import Campaign, CampaignStatus, utcnow
from orchestrator.store.records import add_event, find_campaign, set_campaign_status

HEARTBEAT_STALE_AFTER = timedelta(minutes=10)
FINISHED = (CampaignStatus.COMPLETED, CampaignStatus.STOPPED, CampaignStatus.FAILED)


def runner_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


SeedLedger = Callable[[Session, int, CampaignSpec], None]


def create_or_reopen(
    db: Database, spec: CampaignSpec, spec_text: str, seed_ledger: SeedLedger | None = None
) -> tuple[int, Literal["created", "reopened"]]:
    """The campaign of this spec: a new row, or the existing one when its stored spec is the same.

    `seed_ledger` writes what a new campaign starts knowing (knowledge files) in the same transaction; the ledger
    room supplies it (`orchestrator.cycle.context.open_campaign`), since the campaign room sits below the ledger.
    """
    with db.session() as session:
        existing = session.scalar(select(Campaign).where(Campaign.name == spec.name))
        if existing is not None:
            if existing.spec_hash != spec.content_hash():
                raise CampaignConflict(
                    f"name: campaign '{spec.name}' already exists with a different spec; "
                    f"rename the new one, or `peirce resume {spec.name}` to continue the stored one"
                )
            return existing.id, "reopened"
        campaign = Campaign(
            name=spec.name,
            goal=spec.goal,
            status=CampaignStatus.CREATED,
            spec=spec.model_dump(mode="json"),
            spec_text=spec_text,
            spec_hash=spec.content_hash(),
        )
        session.add(campaign)
        session.flush()
        add_event(
            session,
            campaign.id,
            "campaign",
            campaign.id,
            "created",
            to_state=CampaignStatus.CREATED,
            detail={"spec_hash": campaign.spec_hash},
        )
        # Knowledge from earlier campaigns enters the ledger with the campaign, in the same transaction.
        if seed_ledger is not None:
            seed_ledger(session, campaign.id, spec)
        return campaign.id, "created"


def claim(db: Database, campaign_id: int) -> None:
    """Take the runner lease and mark the campaign running; refuse if another live process holds it."""
    me = runner_identity()
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id, with_for_update=True)
        # A stopped or failed campaign may go on (after a person's stop, or once the cause of a failure is fixed).
        if campaign.status == CampaignStatus.COMPLETED:
            raise CampaignConflict(
                f"CAMPAIGN: '{campaign.name}' is already completed ({campaign.stop_reason}); nothing to resume"
            )
        if campaign.runner and campaign.runner != me and _lease_alive(campaign):
            raise CampaignConflict(f"CAMPAIGN: '{campaign.name}' is being run by {campaign.runner}")
        taken_over = campaign.runner if campaign.runner and campaign.runner != me else None
        campaign.runner, campaign.heartbeat_at = me, utcnow()
        if campaign.status != CampaignStatus.RUNNING:
            campaign.stop_reason = None
            set_campaign_status(
                session,
                campaign,
                CampaignStatus.RUNNING,
                detail={"runner": me, **({"took_over_from": taken_over} if taken_over else {})},
            )
        elif taken_over:
            add_event(
                session,
                campaign.id,
                "campaign",
                campaign.id,
                "runner-replaced",
                detail={"runner": me, "took_over_from": taken_over},
            )


def release_after_error(db: Database, campaign_id: int, message: str) -> None:
    """The loop raised: record why, mark the campaign failed, and free the lease."""
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        set_campaign_status(session, campaign, CampaignStatus.FAILED, reason=message)
        campaign.runner = None


def request_stop(db: Database, ref: str) -> str:
    """Ask a campaign to stop at its next safe point (experiments already running finish)."""
    with db.session() as session:
        campaign = find_campaign(session, ref)
        if campaign.status in FINISHED:
            return f"'{campaign.name}' is already {campaign.status}"
        if campaign.status == CampaignStatus.CREATED or not (campaign.runner and _lease_alive(campaign)):
            set_campaign_status(session, campaign, CampaignStatus.STOPPED, reason="stopped by request")
            campaign.runner = None
            return f"'{campaign.name}' stopped (no runner was active)"
        set_campaign_status(session, campaign, CampaignStatus.STOPPING, reason="stopped by request")
        return f"'{campaign.name}' will stop after the experiments now running (runner {campaign.runner})"


def _lease_alive(campaign: Campaign) -> bool:
    host, _, pid = (campaign.runner or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    heartbeat = campaign.heartbeat_at
    if heartbeat is None:
        return False
    if heartbeat.tzinfo is None:  # SQLite returns naive datetimes; we always write UTC
        from datetime import UTC

        heartbeat = heartbeat.replace(tzinfo=UTC)
    return utcnow() - heartbeat < HEARTBEAT_STALE_AFTER
