"""What the stages of one campaign share in this process: its row, its spec, and its collaborators.

`load_context` builds the context from the database alone. The collaborators (the lab, the planner, the clock)
are arguments with defaults, as BoTorch models take theirs: a run gets the lab and planner its spec names, a test
hands in its own lab or clock instead of overwriting the context's after the fact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from orchestrator.campaign.runs import create_or_reopen, hold, runner_identity
from orchestrator.campaign.spec import CampaignSpec
from orchestrator.campaign.station import StationLab
from orchestrator.lab.build import build_lab
from orchestrator.lab.contract import InstrumentHolds, Lab
from orchestrator.ledger.hypotheses import CampaignLedger, model_settings
from orchestrator.ledger.knowledge import import_at_creation
from orchestrator.store.database import Database
from orchestrator.store.models import Campaign, Cycle, utcnow
from orchestrator.store.records import add_event
from planners.base import Planner, PlanningProblem
from planners.registry import build_planner

Clock = Callable[[], datetime]
"""Now, as an aware UTC datetime: heartbeats and the campaign's active time are read from it."""


def open_campaign(db: Database, spec: CampaignSpec, spec_text: str) -> tuple[int, Literal["created", "reopened"]]:
    """The campaign of this spec, created with the knowledge files it names imported in the same transaction."""
    return create_or_reopen(db, spec, spec_text, seed_ledger=import_at_creation)


@dataclass
class CampaignContext:
    """Everything the stages share for one campaign in this process."""

    db: Database
    campaign_id: int
    name: str
    spec: CampaignSpec
    lab: Lab
    planner: Planner
    problem: PlanningProblem
    ledger: CampaignLedger
    clock: Clock = utcnow
    # The lease this process holds ("host:pid"), or None where no lease is kept (stages called by a test or a
    # notebook): with it, every act is fenced (`fence`), so a runner that lost its lease cannot act.
    runner: str | None = None
    # Lab-wide holds on instruments shared with other campaigns (a station from a lab file, with a Prefect server
    # to hold them on); None where the campaign's instruments are its own.
    holds: InstrumentHolds | None = None


def load_context(
    db: Database,
    campaign_id: int,
    *,
    lab: Lab | None = None,
    planner: Planner | None = None,
    clock: Clock | None = None,
    runner: str | None = None,
) -> CampaignContext:
    """The context of campaign `campaign_id`; the lab and planner its spec names unless others are given.

    `runner` is the lease the stages fence on; by default this process's, when it holds the campaign's lease (so
    a flow started after `runs.claim` in the same process is fenced without being told)."""
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        spec = CampaignSpec.model_validate(campaign.spec)
        name = campaign.name
        if runner is None and campaign.runner == runner_identity():
            runner = campaign.runner
    lab = build_lab(spec) if lab is None else lab
    problem = spec.problem(candidates=lab.candidates)
    return CampaignContext(
        db=db,
        campaign_id=campaign_id,
        name=name,
        spec=spec,
        lab=lab,
        planner=build_planner(spec.planner) if planner is None else planner,
        problem=problem,
        ledger=CampaignLedger(
            campaign_id=campaign_id,
            settings=spec.hypotheses,
            problem=problem,
            model=model_settings(spec.planner),
            base_seed=spec.planner.seed,
            safety=spec.safety,
            goal=spec.goal,
        ),
        clock=utcnow if clock is None else clock,
        runner=runner,
        holds=_shared_holds(db, spec),
    )


def _shared_holds(db: Database, spec: CampaignSpec) -> InstrumentHolds | None:
    """The holds of a station whose instruments come from a lab file, when a Prefect server is there to keep them."""
    if not isinstance(spec.lab, StationLab) or spec.lab.shared is None:
        return None
    # Imported here: Prefect's client takes seconds to load, and only a campaign on a shared lab needs it.
    from orchestrator.cycle.holds import shared_holds

    return shared_holds(db, spec.lab.shared)


@dataclass(frozen=True)
class ExperimentOutcome:
    """How one attempt at an experiment ended; `will_retry` when it failed and may be tried again."""

    experiment_id: int
    seq: int
    state: str
    values: dict[str, float]
    error: str | None = None
    will_retry: bool = False


def fence(session: Any, ctx: CampaignContext) -> None:
    """In the caller's transaction, prove that this process still holds the campaign's lease (raises
    `runs.LeaseLost` otherwise); nothing to prove where no lease is kept."""
    if ctx.runner is not None:
        hold(session, ctx.campaign_id, ctx.runner, ctx.clock())


def enter_stage(session: Any, ctx: CampaignContext, cycle_id: int, stage: str) -> Cycle:
    """The cycle, moved to `stage` (and the move logged) unless it is there already, as after a resume. Fenced:
    the stage's writes (a decision, the experiments it plans, what induction learns) commit only under the lease."""
    fence(session, ctx)
    cycle = session.get_one(Cycle, cycle_id)
    if cycle.stage != stage:
        add_event(session, ctx.campaign_id, "cycle", cycle.id, "state", from_state=cycle.stage, to_state=stage)
        cycle.stage = stage
    return cycle
