"""The arrays a station measured (spectra, patterns, traces), read back from the record, and the analyses done on
them computed again.

An action that returns an array has its `action-done` event keep a reference (`{kind: array, artifact: <sha256>,
points, x_axis, y_axis}`) and the array itself stored once, by content hash, as an artifact (see
`orchestrator.store.artifacts.store_arrays`). `stored_arrays` lists every such array of a campaign by experiment,
`experiment_arrays` loads one experiment's arrays by the names its protocol saved them under, and `reanalyse`
runs every recorded analysis step again on the stored arrays (analyses are pure) and says whether it gives the
numbers the campaign used.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import select

from instruments.analysis import load_analysis
from instruments.arrays import ArrayData
from instruments.errors import InstrumentError
from orchestrator.records.events import Entity, EventKind
from orchestrator.store.artifacts import ArtifactError, is_array_reference, load_array
from orchestrator.store.database import Database
from orchestrator.store.models import Event, Experiment
from orchestrator.store.records import find_campaign

ARRAY_COLUMNS = [
    "seq",
    "attempt",
    "step",
    "instrument",
    "action",
    "name",
    "points",
    "x_axis",
    "y_axis",
    "sha256",
]
REANALYSIS_COLUMNS = ["seq", "attempt", "step", "analyse", "input", "status", "recorded", "recomputed", "note"]


def _experiment_events(db: Database, ref: str | int, kind: EventKind) -> list[tuple[int | None, dict[str, Any]]]:
    """(experiment seq, event detail) of the campaign's experiment events of `kind`, in the order written."""
    with db.session() as session:
        campaign = find_campaign(session, ref)
        seqs = dict(
            session.execute(select(Experiment.id, Experiment.seq).where(Experiment.campaign_id == campaign.id)).all()
        )
        events = session.execute(
            select(Event.entity_id, Event.detail)
            .where(Event.campaign_id == campaign.id, Event.entity == Entity.EXPERIMENT, Event.kind == kind)
            .order_by(Event.id)
        ).all()
    return [(seqs.get(experiment_id), detail or {}) for experiment_id, detail in events]


def _array_events(db: Database, ref: str | int) -> list[tuple[int | None, dict[str, Any], dict[str, Any]]]:
    """(experiment seq, event detail, {name saved under: reference}) of every action-done event holding arrays."""
    found = []
    for seq, detail in _experiment_events(db, ref, EventKind.ACTION_DONE):
        result = detail.get("result")
        if not isinstance(result, dict):
            continue
        saved = detail.get("saved") or {}
        arrays = {str(saved.get(k, k)): v for k, v in result.items() if is_array_reference(v)}
        if arrays:
            found.append((seq, detail, arrays))
    return found


def stored_arrays(db: Database, ref: str | int) -> pd.DataFrame:
    """Every array the campaign's station measured, one row each in the order taken: the experiment (`seq`,
    `attempt`), the protocol step, instrument and action, the `name` the protocol saved it under, its points and
    axes ("wavelength [nm]"), and the SHA-256 of its artifact. Empty (with these columns) when there is none."""
    rows = []
    for seq, detail, arrays in _array_events(db, ref):
        for name, reference in arrays.items():
            rows.append(
                {
                    "seq": seq,
                    "attempt": detail.get("attempt"),
                    "step": detail.get("step"),
                    "instrument": detail.get("instrument"),
                    "action": detail.get("action"),
                    "name": name,
                    "points": reference.get("points"),
                    "x_axis": _axis(reference.get("x_axis")),
                    "y_axis": _axis(reference.get("y_axis")),
                    "sha256": reference["artifact"],
                }
            )
    return pd.DataFrame(rows, columns=ARRAY_COLUMNS)


def experiment_arrays(db: Database, ref: str | int, seq: int, attempt: int | None = None) -> dict[str, ArrayData]:
    """The arrays experiment `seq` measured, by the name its protocol saved each under, loaded from their artifacts
    (of its last attempt unless `attempt` is given). ArtifactError when one is missing or changed."""
    found = [(detail, arrays) for s, detail, arrays in _array_events(db, ref) if s == seq]
    attempts = [detail.get("attempt") for detail, _ in found]
    if attempt is None and attempts:
        attempt = max((a for a in attempts if a is not None), default=None)
    out: dict[str, ArrayData] = {}
    for detail, arrays in found:
        if attempt is None or detail.get("attempt") == attempt:
            out.update({name: load_array(db.artifacts, reference) for name, reference in arrays.items()})
    return out


def reanalyse(db: Database, ref: str | int) -> pd.DataFrame:
    """Every analysis step the campaign's station ran, computed again from the stored arrays: one row per
    `analysis-done` event with its recorded and recomputed numbers and a status, `match` (the same numbers: the
    analysis is pure and the arrays are the ones it read), `mismatch`, or `error` (an array missing or changed, an
    analysis no longer installed)."""
    loaded: dict[tuple[Any, Any], dict[str, ArrayData] | str] = {}
    rows = []
    for seq, detail in _experiment_events(db, ref, EventKind.ANALYSIS_DONE):
        attempt = detail.get("attempt")
        row: dict[str, Any] = {
            "seq": seq,
            "attempt": attempt,
            "step": detail.get("step"),
            "analyse": detail.get("analyse"),
            "input": detail.get("input"),
            "recorded": detail.get("result"),
            "recomputed": None,
            "note": "",
        }
        if (seq, attempt) not in loaded:
            try:
                loaded[(seq, attempt)] = experiment_arrays(db, ref, seq, attempt) if seq is not None else {}
            except ArtifactError as exc:
                loaded[(seq, attempt)] = str(exc)
        arrays = loaded[(seq, attempt)]
        try:
            if isinstance(arrays, str):
                raise ArtifactError(arrays)
            inputs = {argument: arrays[name] for argument, name in (detail.get("input") or {}).items()}
            row["recomputed"] = load_analysis(str(detail.get("analyse"))).run(inputs, detail.get("args") or {})
        except KeyError as exc:
            row.update(status="error", note=f"no stored array {exc}")
        except (ArtifactError, InstrumentError, ValueError) as exc:
            row.update(status="error", note=str(exc))
        else:
            row["status"] = "match" if _same(row["recorded"], row["recomputed"]) else "mismatch"
        rows.append(row)
    return pd.DataFrame(rows, columns=REANALYSIS_COLUMNS)


def summary(array: ArrayData) -> str:
    """One line: the range of x and of y, and where y is largest ("350-800 nm; counts 95-182,400, largest at
    700 nm")."""
    top = max(range(array.points), key=lambda i: array.y[i])
    x_unit = f" {array.x_axis.unit}" if array.x_axis.unit else ""
    return (
        f"{array.x[0]:.4g}-{array.x[-1]:.4g}{x_unit}; {array.y_axis.name} {min(array.y):,.4g} to {max(array.y):,.4g}"
        f"{' ' + array.y_axis.unit if array.y_axis.unit else ''}, largest at {array.x[top]:.4g}{x_unit}"
    )


def _axis(axis: Any) -> str:
    if not isinstance(axis, dict):
        return ""
    return f"{axis.get('name', '')} [{axis['unit']}]" if axis.get("unit") else str(axis.get("name", ""))


def _same(recorded: Any, recomputed: Any) -> bool:
    if not isinstance(recorded, dict) or not isinstance(recomputed, dict) or set(recorded) != set(recomputed):
        return False
    return all(math.isclose(float(recorded[k]), float(recomputed[k]), rel_tol=1e-12, abs_tol=0.0) for k in recorded)


__all__ = ["experiment_arrays", "reanalyse", "stored_arrays", "summary"]
