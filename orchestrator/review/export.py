"""Reading campaigns back out: summaries for `list`/`status`, and one row per experiment for `export`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from orchestrator.records.events import ActionDetail, Entity, EventKind
from orchestrator.store.database import Database
from orchestrator.store.models import Campaign, Cycle, Decision, Event, Experiment, ExperimentState, Hypothesis
from orchestrator.store.queries import best_with_parameters, calibration, count_by_state, spent_count
from orchestrator.store.records import find_campaign


def campaign_summaries(db: Database) -> list[dict[str, str]]:
    with db.session() as session:
        rows = []
        for campaign in session.scalars(select(Campaign).order_by(Campaign.id)):
            states = count_by_state(session, campaign.id)
            best = ", ".join(f"{k}={v['value']:.4g}" for k, v in best_with_parameters(session, campaign.id).items())
            spent = spent_count(states)
            rows.append(
                {
                    "id": str(campaign.id),
                    "name": campaign.name,
                    "status": campaign.status,
                    "experiments": f"{spent}/{campaign.spec['budget']['experiments']}",
                    "best": best or "-",
                    "created": campaign.created_at.strftime("%Y-%m-%d %H:%M"),
                }
            )
        return rows


def campaign_status(db: Database, ref: str) -> dict[str, Any]:
    with db.session() as session:
        campaign = find_campaign(session, ref)
        states = count_by_state(session, campaign.id)
        best = {
            name: {**entry, "parameters": _short(entry["parameters"])}
            for name, entry in best_with_parameters(session, campaign.id).items()
        }
        return {
            "name": campaign.name,
            "goal": campaign.goal or "(no goal stated)",
            "status": campaign.status,
            "stop_reason": campaign.stop_reason,
            "budget": campaign.spec["budget"]["experiments"],
            "spent": spent_count(states),
            "by_state": ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "none",
            "cycles": session.scalar(select(func.count()).where(Cycle.campaign_id == campaign.id)),
            "decisions": session.scalar(select(func.count()).where(Decision.campaign_id == campaign.id)),
            "events": session.scalar(select(func.count()).where(Event.campaign_id == campaign.id)),
            "best": best,
            "calibration": {name: c.as_dict() for name, c in calibration(session, campaign.id).items()},
            "instrument_actions": instrument_actions(session, campaign.id),
            "unconfirmed_actions": unconfirmed_actions(session, campaign.id),
            "hypotheses": dict(
                session.execute(
                    select(Hypothesis.status, func.count())
                    .where(Hypothesis.campaign_id == campaign.id)
                    .group_by(Hypothesis.status)
                ).all()
            ),
        }


def instrument_actions(session: Any, campaign_id: int) -> dict[str, dict[str, int]]:
    """On a station: per instrument, the actions done and the failures by kind (timeout, protocol, device…)."""
    out: dict[str, dict[str, int]] = {}
    for kind, detail in session.execute(
        select(Event.kind, Event.detail).where(
            Event.campaign_id == campaign_id, Event.kind.in_((EventKind.ACTION_DONE, EventKind.ACTION_FAILED))
        )
    ):
        action = ActionDetail.model_validate(detail or {})
        counts = out.setdefault(str(action.instrument), {})
        label = "done" if kind == EventKind.ACTION_DONE else str(action.error)
        counts[label] = counts.get(label, 0) + 1
    return out


def unconfirmed_actions(session: Any, campaign_id: int) -> list[dict[str, Any]]:
    """On a station: the actions sent and never confirmed, one per experiment abandoned in doubt after an
    interruption (`seq`, `instrument`, `action`, `step`), by experiment. A person must check each (was the dispense
    made?) before the vial or the reagent is used again; the count of actions done does not show them."""
    found = []
    for seq, detail in session.execute(
        select(Experiment.seq, Event.detail)
        .join(Experiment, Experiment.id == Event.entity_id)
        .where(
            Event.campaign_id == campaign_id,
            Event.entity == Entity.EXPERIMENT,
            Event.kind == EventKind.STATE,
            Event.to_state == ExperimentState.ABANDONED,
        )
        .order_by(Experiment.seq)
    ):
        step = (detail or {}).get("unconfirmed_action")
        if step is not None:
            action = ActionDetail.model_validate(step)
            found.append({"seq": seq, "instrument": action.instrument, "action": action.action, "step": action.step})
    return found


def describe_unconfirmed(actions: list[dict[str, Any]]) -> str | None:
    """`status`'s line for the actions left unconfirmed (None when there are none)."""
    if not actions:
        return None
    listed = ", ".join(f"#{a['seq']} {a['instrument']}.{a['action']}" for a in actions)
    return (
        f"unconfirmed: {len(actions)} action{'s' if len(actions) > 1 else ''} sent and never confirmed ({listed}); "
        "check the instruments before reusing what they touched"
    )


def experiments_frame(db: Database, ref: str) -> pd.DataFrame:
    """One row per experiment: seq, cycle, state, attempts, parameters, measured and predicted objectives, times."""
    with db.session() as session:
        campaign = find_campaign(session, ref)
        objectives = [o["name"] for o in campaign.spec["objectives"]]
        parameters = [p["name"] for p in campaign.spec["space"]]
        rows = []
        for experiment in campaign.experiments:
            row: dict[str, Any] = {
                "seq": experiment.seq,
                "cycle": experiment.cycle.index,
                "state": experiment.state,
                "attempts": experiment.attempts,
                "idempotency_key": experiment.idempotency_key,
            }
            row.update({name: experiment.parameters.get(name) for name in parameters})
            measured = {m.name: m.value for m in experiment.measurements if m.attempt == experiment.attempts}
            for name in objectives:
                row[name] = measured.get(name)
                predicted = (experiment.predicted or {}).get(name)
                row[f"{name}_predicted_mean"] = predicted["mean"] if predicted else None
                row[f"{name}_predicted_std"] = predicted["std"] if predicted else None
            row["error"] = experiment.error
            row["created_at"] = experiment.created_at
            row["updated_at"] = experiment.updated_at
            rows.append(row)
        columns = ["seq", "cycle", "state", "attempts", "idempotency_key", *parameters]
        columns += [c for name in objectives for c in (name, f"{name}_predicted_mean", f"{name}_predicted_std")]
        columns += ["error", "created_at", "updated_at"]
        return pd.DataFrame(rows, columns=columns)


def write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _short(parameters: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in parameters.items())
