"""Abduction: propose hypotheses from what is known (the campaign's ledger does the work and the recording)."""

from __future__ import annotations

from orchestrator.cycle.context import CampaignContext, enter_stage
from orchestrator.store.queries import observations


def abduce(ctx: CampaignContext, cycle_id: int) -> list[int]:
    """Propose hypotheses from what is known; returns the new open hypotheses' ids.

    With `hypotheses: none` there are none; the stage is still logged. Accepted and rejected proposals are written
    with their abduction Decision in one transaction.
    """
    with ctx.db.session() as session:
        cycle = enter_stage(session, ctx, cycle_id, "abducing")
        if not ctx.ledger.enabled:
            return []
        observed = observations(session, ctx.campaign_id, [o.name for o in ctx.spec.objectives])
        return ctx.ledger.abduce(session, cycle_id=cycle_id, cycle_index=cycle.index, observed=observed)
