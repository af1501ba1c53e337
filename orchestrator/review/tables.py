"""What a reviewer reads about a campaign, as plain data: the spec and status, best so far, parameter influence,
predicted against observed values, the hypothesis ledger over time, the instrument timeline and the replay table.

Every function takes a Database and a campaign reference (name or numeric id) and returns a pandas DataFrame or a
dict; nothing here plots or writes (`orchestrator.review.plots` draws these frames, `orchestrator.review.report` writes
them to one HTML file, `notebooks/review.ipynb` shows them). Everything is read from the database alone, so a
review needs no access to the lab, the planner's process or the files the campaign ran from; only the replay
table re-derives anything, and it says so in the table when it cannot.

An unknown campaign raises `CampaignNotFound` (one line naming the campaigns there are).
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy import func, select

from orchestrator.records.events import ACTION_KINDS, ActionDetail, Entity, EventKind
from orchestrator.review import replay
from orchestrator.store.database import Database
from orchestrator.store.models import (
    Cycle,
    Decision,
    Event,
    Experiment,
    Hypothesis,
    HypothesisCredence,
    HypothesisStatus,
    Measurement,
)
from orchestrator.store.queries import (
    best_steps,
    best_with_parameters,
    calibration_of,
    count_by_state,
    results,
    spent_count,
)
from orchestrator.store.records import find_campaign
from planners.space import Objective

NUMERIC_TYPES = frozenset({"continuous", "integer", "discrete"})

BEST_COLUMNS = ["objective", "direction", "unit", "n", "seq", "value", "best", "best_seq", "improved"]
INFLUENCE_COLUMNS = [
    "objective",
    "parameter",
    "type",
    "unit",
    "method",
    "effect",
    "strength",
    "p_value",
    "n",
    "levels",
    "best_level",
    "level_means",
    "note",
]
PREDICTION_COLUMNS = [
    "objective",
    "unit",
    "seq",
    "attempt",
    "observed",
    "predicted_mean",
    "predicted_std",
    "z",
    "within_1sd",
    "within_2sd",
]
CALIBRATION_COLUMNS = ["objective", "predictions", "within_1sd", "within_2sd", "mean_z", "rmse"]
LEDGER_COLUMNS = [
    "hypothesis_id",
    "kind",
    "source",
    "statement",
    "cycle",
    "record",
    "credence",
    "evidence",
    "observations",
    "status",
    "final_credence",
    "reason",
]
HYPOTHESIS_COLUMNS = [
    "hypothesis_id",
    "kind",
    "source",
    "statement",
    "proposed_in_cycle",
    "status",
    "credence",
    "evidence",
    "reason",
]
TIMELINE_COLUMNS = [
    "instrument",
    "action",
    "seq",
    "attempt",
    "step",
    "start",
    "end",
    "start_s",
    "end_s",
    "seconds",
    "failed",
    "error",
    "message",
]
REPLAY_COLUMNS = [
    "cycle",
    "decision_id",
    "stage",
    "planner",
    "proposals",
    "status",
    "max_difference",
    "note",
    "recorded",
    "rederived",
    "recorded_value",
    "alternative_value",
]


# --- the spec and the status ------------------------------------------------------------------------------------


def overview(db: Database, ref: str | int) -> dict[str, Any]:
    """The campaign as a reviewer first meets it: name, goal, status and why it stopped, budget spent, experiments
    by state, cycles and decisions, best so far per objective (with the experiment's parameters), and the spec
    (as stored: JSON, the original text and its hash) with tables of its parameters and objectives."""
    with db.session() as session:
        campaign = find_campaign(session, ref)
        states = count_by_state(session, campaign.id)
        best = best_with_parameters(session, campaign.id)
        spec = campaign.spec
        return {
            "id": campaign.id,
            "name": campaign.name,
            "goal": campaign.goal or "",
            "status": campaign.status,
            "stop_reason": campaign.stop_reason,
            "created_at": _utc(campaign.created_at),
            "updated_at": _utc(campaign.updated_at),
            "active_seconds": campaign.active_seconds,
            "budget": spec["budget"]["experiments"],
            "spent": spent_count(states),
            "by_state": dict(sorted(states.items())),
            "cycles": session.scalar(select(func.count()).where(Cycle.campaign_id == campaign.id)) or 0,
            "decisions": session.scalar(select(func.count()).where(Decision.campaign_id == campaign.id)) or 0,
            "best": best,
            "planner": spec.get("planner", {}),
            "hypotheses_source": _hypothesis_source(spec),
            "lab": _lab_summary(spec),
            "station": _is_station(spec),
            "spec": spec,
            "spec_text": campaign.spec_text,
            "spec_hash": campaign.spec_hash,
            "parameters": parameters_table(spec),
            "objectives": objectives_table(spec),
        }


def parameters_table(spec: dict[str, Any]) -> pd.DataFrame:
    """One row per parameter of a stored spec: name, type, the values it may take, unit."""
    rows = []
    for p in spec["space"]:
        if p["type"] in ("continuous", "integer"):
            domain = f"[{p['bounds'][0]:g}, {p['bounds'][1]:g}]"
        elif p["type"] == "discrete":
            domain = ", ".join(f"{v:g}" for v in p["values"])
        elif p["type"] == "categorical":
            domain = ", ".join(map(str, p["levels"]))
        else:  # molecule: the names (their SMILES are in the spec)
            domain = ", ".join(p["smiles"])
        rows.append({"parameter": p["name"], "type": p["type"], "values": domain, "unit": p.get("unit", "")})
    return pd.DataFrame(rows, columns=["parameter", "type", "values", "unit"])


def objectives_table(spec: dict[str, Any]) -> pd.DataFrame:
    """One row per objective of a stored spec: name, direction, unit, target."""
    rows = [
        {"objective": o["name"], "direction": o["direction"], "unit": o.get("unit", ""), "target": o.get("target")}
        for o in spec["objectives"]
    ]
    return pd.DataFrame(rows, columns=["objective", "direction", "unit", "target"])


def _hypothesis_source(spec: dict[str, Any]) -> str:
    settings = spec.get("hypotheses")
    if isinstance(settings, dict):
        return str(settings.get("source", "none"))
    return str(settings or "none")


def _is_station(spec: dict[str, Any]) -> bool:
    return "station" in (spec.get("lab") or {})


def _lab_summary(spec: dict[str, Any]) -> str:
    lab = spec.get("lab") or {}
    if "station" in lab:
        mode = "on device twins" if lab.get("twins") else "on instruments"
        return f"station {lab['station']} ({', '.join(lab.get('instruments', {}))}; {mode})"
    if "python" in lab:
        return f"python function {lab['python']}"
    return f"simulator {lab.get('simulator', '?')}"


# --- results ----------------------------------------------------------------------------------------------------


def best_so_far(db: Database, ref: str | int) -> pd.DataFrame:
    """Best so far per objective, by the number of results: one row per objective and completed experiment.

    `n` counts the results so far (completed experiments in seq order, each objective's non-finite values left
    out), `value` is that experiment's result, `best` the best value among the first `n` in the objective's own
    direction (lowest for minimize, highest for maximize) and `best_seq` the experiment that holds it; `improved`
    marks the results that moved it. Each objective is taken on its own, as the loop's `best` records it: with
    several objectives this is not the Pareto front, and outcome constraints are not applied.
    """
    with db.session() as session:
        campaign = find_campaign(session, ref)
        objectives = [Objective.model_validate(o) for o in campaign.spec["objectives"]]
        found = results(session, campaign.id)
    rows = [
        {"objective": objective.name, "direction": objective.direction, "unit": objective.unit, **asdict(step)}
        for objective in objectives
        for step in best_steps(found, objective)
    ]
    return pd.DataFrame(rows, columns=BEST_COLUMNS)


def parameter_influence(db: Database, ref: str | int) -> pd.DataFrame:
    """How strongly each parameter goes with each objective in the campaign's results; one row per pair.

    Meant for a finished campaign, as a first look; it fits no model:
    - numeric parameters (continuous, integer, discrete): Spearman's rank correlation ρ between the parameter and
      the objective (`effect` = ρ, `strength` = |ρ|, `p_value` its two-sided p-value). ρ near ±1: the objective
      rises (+) or falls (−) steadily with the parameter; near 0: no monotone relation (there may still be one
      that goes up then down).
    - categorical and molecule parameters: the mean objective per level seen (`level_means`), `effect` = the
      spread between the best and the worst level mean in the objective's unit, `best_level` the best by the
      objective's direction, `strength` = η (the correlation ratio: the share of the objective's spread that the
      level explains, as a square root, 0..1 like |ρ|), `p_value` from the Kruskal–Wallis test.

    Limits: the association is marginal (the other parameters are not held fixed) and the planner chose the points
    (a Bayesian planner crowds them where it expects the best), so a parameter can look influential because it
    moved together with another, or look inert because the planner fixed it early; interactions are not seen; with
    few results the numbers are noisy (read `n` and `p_value`). Use the hypothesis ledger, not this table, for
    claims tested on purpose.
    """
    with db.session() as session:
        campaign = find_campaign(session, ref)
        spec = campaign.spec
        found = results(session, campaign.id)
    rows = []
    for objective in spec["objectives"]:
        name = objective["name"]
        for parameter in spec["space"]:
            pairs = [
                (r.parameters[parameter["name"]], r.values[name])
                for r in found
                if name in r.values
                and math.isfinite(r.values[name])
                and r.parameters.get(parameter["name"]) is not None
            ]
            row: dict[str, Any] = {
                "objective": name,
                "parameter": parameter["name"],
                "type": parameter["type"],
                "unit": parameter.get("unit", ""),
                "n": len(pairs),
            }
            if parameter["type"] in NUMERIC_TYPES:
                row.update(_rank_correlation([float(x) for x, _ in pairs], [y for _, y in pairs]))
            else:
                row.update(_level_spread([str(x) for x, _ in pairs], [y for _, y in pairs], objective["direction"]))
            rows.append(row)
    return pd.DataFrame(rows, columns=INFLUENCE_COLUMNS)


def _rank_correlation(x: list[float], y: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"method": "spearman", "effect": math.nan, "strength": math.nan, "p_value": math.nan}
    out.update({"levels": math.nan, "best_level": None, "level_means": None, "note": ""})
    if len(x) < 3:
        out["note"] = f"{len(x)} results: too few for a rank correlation (3 at least)"
    elif len(set(x)) < 2:
        out["note"] = "the parameter never varied"
    elif len(set(y)) < 2:
        out["note"] = "the objective never varied"
    else:
        rho, p = stats.spearmanr(x, y)
        out.update({"effect": float(rho), "strength": abs(float(rho)), "p_value": float(p)})
    return out


def _level_spread(levels: list[str], y: list[float], direction: str) -> dict[str, Any]:
    groups: dict[str, list[float]] = {}
    for level, value in zip(levels, y, strict=True):
        groups.setdefault(level, []).append(value)
    means = {level: float(np.mean(values)) for level, values in groups.items()}
    out: dict[str, Any] = {"method": "level spread", "effect": math.nan, "strength": math.nan, "p_value": math.nan}
    out.update({"levels": len(groups), "best_level": None, "level_means": means or None, "note": ""})
    if len(groups) < 2:
        out["note"] = f"{len(groups)} level(s) seen: nothing to compare"
        return out
    pick = max if direction == "maximize" else min
    out["best_level"] = pick(means, key=lambda level: means[level])
    out["effect"] = max(means.values()) - min(means.values())
    grand = float(np.mean(y))
    total = float(sum((v - grand) ** 2 for v in y))
    between = float(sum(len(values) * (means[level] - grand) ** 2 for level, values in groups.items()))
    out["strength"] = math.sqrt(between / total) if total > 0 else math.nan
    if total > 0:
        with contextlib.suppress(ValueError):  # scipy refuses groups it cannot rank apart; the p-value stays NaN
            out["p_value"] = float(stats.kruskal(*groups.values()).pvalue)
    singles = sorted(level for level, values in groups.items() if len(values) == 1)
    if singles:
        out["note"] = f"one result only for: {', '.join(singles)}"
    return out


# --- predictions ------------------------------------------------------------------------------------------------


def predictions(db: Database, ref: str | int) -> pd.DataFrame:
    """Predicted against observed: one row per measured value that carried the planner's prediction (every
    attempt's measurement, as `peirce status` counts them). `z` = (observed − predicted mean) / predicted sd;
    `within_1sd` / `within_2sd` whether |z| ≤ 1 / ≤ 2 (None where the sd is missing or zero)."""
    with db.session() as session:
        campaign = find_campaign(session, ref)
        units = {o["name"]: o.get("unit", "") for o in campaign.spec["objectives"]}
        rows = session.execute(
            select(
                Measurement.name,
                Experiment.seq,
                Measurement.attempt,
                Measurement.value,
                Measurement.predicted_mean,
                Measurement.predicted_std,
            )
            .join(Experiment, Measurement.experiment_id == Experiment.id)
            .where(Experiment.campaign_id == campaign.id, Measurement.predicted_mean.is_not(None))
            .order_by(Measurement.name, Experiment.seq, Measurement.attempt)
        ).all()
    out = []
    for name, seq, attempt, value, mean, std in rows:
        z = (value - mean) / std if mean is not None and std is not None and std > 0 else None
        out.append(
            {
                "objective": name,
                "unit": units.get(name, ""),
                "seq": seq,
                "attempt": attempt,
                "observed": value,
                "predicted_mean": mean,
                "predicted_std": std,
                "z": z,
                "within_1sd": None if z is None else abs(z) <= 1,
                "within_2sd": None if z is None else abs(z) <= 2,
            }
        )
    return pd.DataFrame(out, columns=PREDICTION_COLUMNS)


def calibration(points: pd.DataFrame) -> pd.DataFrame:
    """Per objective, from `predictions(...)`: how many values had a usable prediction (sd > 0), the share within
    1 and 2 sd (about 0.68 and 0.95 for a calibrated Gaussian model; far less: over-confident; near 1 with small
    |z|: under-confident), the mean z (bias: > 0, the model predicts too low) and the root-mean-square error."""
    rows = []
    for name, group in points.groupby("objective", sort=True):
        usable = group[group["z"].notna()]
        summary = calibration_of(
            zip(
                usable["observed"].astype(float),
                usable["predicted_mean"].astype(float),
                usable["predicted_std"],
                strict=True,
            )
        )
        if summary is not None:
            rows.append({"objective": name, **summary.as_dict()})
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


# --- hypotheses -------------------------------------------------------------------------------------------------


def hypotheses(db: Database, ref: str | int) -> pd.DataFrame:
    """The ledger as it stands: one row per hypothesis (rejected proposals left out: they never were hypotheses),
    in the order proposed, with its final status, credence, evidence and the reason it was settled or retired."""
    with db.session() as session:
        campaign = find_campaign(session, ref)
        cycles = _cycle_indices(session, campaign.id)
        rows = session.scalars(
            select(Hypothesis)
            .where(Hypothesis.campaign_id == campaign.id, Hypothesis.status != HypothesisStatus.REJECTED)
            .order_by(Hypothesis.id)
        ).all()
        out = [
            {
                "hypothesis_id": h.id,
                "kind": h.kind,
                "source": h.source,
                "statement": h.statement,
                "proposed_in_cycle": cycles.get(h.cycle_id) if h.cycle_id is not None else None,
                "status": h.status,
                "credence": h.credence,
                "evidence": h.evidence,
                "reason": h.reason,
            }
            for h in rows
        ]
    return pd.DataFrame(out, columns=HYPOTHESIS_COLUMNS)


def hypothesis_ledger(db: Database, ref: str | int) -> pd.DataFrame:
    """The ledger over time: one row per recorded credence (table `hypothesis_credences`), in the order written.

    `cycle` is the cycle it was written in and `record` its rank among that hypothesis's records in that cycle: a
    claim proposed by an abductor gets one at proposal (from the results before the cycle, `evidence` 0) and one
    after the cycle's results, so it has two in its first cycle. `evidence` counts the results that bore on it,
    `observations` the results the model was fitted on. `status`, `final_credence` and `reason` are the
    hypothesis's as it stands now. Empty (with these columns) when the campaign has no hypotheses.
    """
    with db.session() as session:
        campaign = find_campaign(session, ref)
        cycles = _cycle_indices(session, campaign.id)
        rows = session.execute(
            select(HypothesisCredence, Hypothesis)
            .join(Hypothesis, HypothesisCredence.hypothesis_id == Hypothesis.id)
            .where(Hypothesis.campaign_id == campaign.id)
            .order_by(HypothesisCredence.id)
        ).all()
        out = []
        seen: dict[tuple[int, int], int] = {}
        for record, h in rows:
            cycle = cycles.get(record.cycle_id)
            rank = seen[(h.id, record.cycle_id)] = seen.get((h.id, record.cycle_id), 0) + 1
            out.append(
                {
                    "hypothesis_id": h.id,
                    "kind": h.kind,
                    "source": h.source,
                    "statement": h.statement,
                    "cycle": cycle,
                    "record": rank,
                    "credence": record.credence,
                    "evidence": record.evidence,
                    "observations": record.observations,
                    "status": h.status,
                    "final_credence": h.credence,
                    "reason": h.reason,
                }
            )
    return pd.DataFrame(out, columns=LEDGER_COLUMNS)


def hypothesis_thresholds(db: Database, ref: str | int) -> tuple[float, float]:
    """The campaign's (refute, support) credence thresholds: 0.05 and 0.95 unless its spec says otherwise."""
    with db.session() as session:
        settings = find_campaign(session, ref).spec.get("hypotheses")
    settings = settings if isinstance(settings, dict) else {}
    return float(settings.get("refute_threshold", 0.05)), float(settings.get("support_threshold", 0.95))


def _cycle_indices(session: Any, campaign_id: int) -> dict[int, int]:
    return dict(session.execute(select(Cycle.id, Cycle.index).where(Cycle.campaign_id == campaign_id)).all())


# --- the station --------------------------------------------------------------------------------------------------


def instrument_timeline(db: Database, ref: str | int) -> pd.DataFrame:
    """Every instrument action a station ran for the campaign: one row per action, in the order started.

    Read from the experiment events `action-started` (written before a byte was sent) and `action-done` /
    `action-failed` (with the result or the error), matched by experiment, attempt and protocol step. `start` and
    `end` are the events' UTC times, `start_s` / `end_s` seconds since the campaign's first action (wall clock:
    on twins a simulated hour may pass in a second), `seconds` the driver's own timing of the action. `failed`
    marks a failed action and `error` its kind (timeout, protocol, device, disconnected, limit…); an action with
    no outcome recorded (the process died while it ran) has `end` empty and `error` "no outcome recorded".
    Empty (with these columns) when no station ran the campaign.
    """
    with db.session() as session:
        campaign = find_campaign(session, ref)
        seqs = dict(
            session.execute(select(Experiment.id, Experiment.seq).where(Experiment.campaign_id == campaign.id)).all()
        )
        events = session.execute(
            select(Event.entity_id, Event.kind, Event.at, Event.detail)
            .where(Event.campaign_id == campaign.id, Event.entity == Entity.EXPERIMENT, Event.kind.in_(ACTION_KINDS))
            .order_by(Event.id)
        ).all()
    rows: list[dict[str, Any]] = []
    started: dict[tuple[Any, ...], dict[str, Any]] = {}
    for experiment_id, kind, at, stored in events:
        detail = ActionDetail.model_validate(stored or {})
        key = (experiment_id, detail.attempt, detail.step, detail.instrument)
        opened: dict[str, Any] = {
            "instrument": detail.instrument,
            "action": detail.action,
            "seq": seqs.get(experiment_id),
            "attempt": detail.attempt,
            "step": detail.step,
            "start": _utc(at),
        }
        if kind == EventKind.ACTION_STARTED:
            row = {**opened, "end": None, "seconds": None, "failed": False}
            row.update(error="no outcome recorded", message=None)
            started[key] = row
            rows.append(row)
            continue
        if key in started:
            row = started.pop(key)
        else:  # an outcome without its start (never written so by the station): shown, not dropped
            row = opened
            rows.append(row)
        row.update(
            {
                "end": _utc(at),
                "seconds": detail.seconds,
                "failed": kind == EventKind.ACTION_FAILED,
                "error": detail.error if kind == EventKind.ACTION_FAILED else None,
                "message": detail.message if kind == EventKind.ACTION_FAILED else None,
            }
        )
    frame = pd.DataFrame(rows, columns=[c for c in TIMELINE_COLUMNS if c not in ("start_s", "end_s")])
    if frame.empty:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    frame["end"] = pd.to_datetime(frame["end"], utc=True)
    origin = frame["start"].min()
    frame["start_s"] = (frame["start"] - origin).dt.total_seconds()
    frame["end_s"] = (frame["end"] - origin).dt.total_seconds()
    return frame[TIMELINE_COLUMNS]


def _utc(at: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; the store writes UTC.
    if at is None:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# --- replay -------------------------------------------------------------------------------------------------------


def replay_table(db: Database, ref: str | int, planner: dict[str, Any] | None = None) -> pd.DataFrame:
    """Replay's verdict on each decision: `replay.replay_campaign(db, ref)` re-derives every recorded
    decision and says whether it matches (`status`: match, mismatch, not re-derived, counterfactual); with
    `planner` (other planner settings, as in a campaign file) it asks that planner instead (counterfactual).

    One row per replay row, with the columns of `ReplayRow`. `attrs` carries the report's campaign-wide answers:
    `status`, `finished` and `version_differences` (name -> [recorded, now]). If replay itself fails (a missing
    artifact, a planner that cannot be rebuilt, a record that is not of its type), the table is one row with status
    "error" and the error in `note`, and `attrs["error"]` holds it, so a review never fails for want of a replay.
    """
    with db.session() as session:
        find_campaign(session, ref)  # an unknown campaign is the caller's error, not replay's
    try:
        report = replay.replay_campaign(db, str(ref), planner=planner)
        rows = [_replay_row(row) for row in report.rows]
        frame = pd.DataFrame(rows, columns=REPLAY_COLUMNS)
        frame.attrs["status"] = report.status
        frame.attrs["finished"] = report.finished
        frame.attrs["version_differences"] = {name: list(pair) for name, pair in report.version_differences.items()}
        frame.attrs["error"] = None
        return frame
    except Exception as exc:  # any failure of replay becomes the table's one row
        message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        row = dict.fromkeys(REPLAY_COLUMNS)
        row.update({"status": "error", "note": f"replay failed: {message}"})
        frame = pd.DataFrame([row], columns=REPLAY_COLUMNS)
        frame.attrs.update({"status": "error", "finished": False, "version_differences": {}, "error": message})
        return frame


def _replay_row(row: Any) -> dict[str, Any]:
    if is_dataclass(row) and not isinstance(row, type):
        data = asdict(row)
    elif isinstance(row, dict):
        data = dict(row)
    else:
        data = {name: getattr(row, name, None) for name in REPLAY_COLUMNS}
    return {name: data.get(name) for name in REPLAY_COLUMNS}


def compact(value: Any, limit: int = 160) -> str:
    """A cell's value as short text for tables: JSON for lists and dicts, cut at `limit` characters."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "best_so_far",
    "calibration",
    "compact",
    "hypotheses",
    "hypothesis_ledger",
    "hypothesis_thresholds",
    "instrument_timeline",
    "objectives_table",
    "overview",
    "parameter_influence",
    "parameters_table",
    "predictions",
    "replay_table",
]
