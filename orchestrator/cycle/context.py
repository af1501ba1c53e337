"""Opening a campaign for a run: its row (with the knowledge it starts from) and, later, its context."""

from __future__ import annotations

from typing import Literal

from orchestrator.campaign.runs import create_or_reopen
from orchestrator.campaign.spec import CampaignSpec
from orchestrator.ledger.knowledge import import_at_creation
from orchestrator.store.database import Database


def open_campaign(db: Database, spec: CampaignSpec, spec_text: str) -> tuple[int, Literal["created", "reopened"]]:
    """The campaign of this spec, created with the knowledge files it names imported in the same transaction."""
    return create_or_reopen(db, spec, spec_text, seed_ledger=import_at_creation)
