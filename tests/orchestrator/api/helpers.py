"""What the Python API tests share: a small campaign on a known function, the "measurement" a scientist makes
between `ask` and `tell`, and a dump of every table to show that an act wrote nothing."""

from __future__ import annotations

from typing import Any

import pandas as pd
import yaml
from sqlalchemy import select

from orchestrator.store.database import Database
from orchestrator.store.models import Base
from tests.orchestrator.lab.python_labs import bowl


def bowl_spec(**overrides: Any) -> dict[str, Any]:
    """Two parameters in [0, 1], one objective to minimise; a person is the lab (a manual lab)."""
    spec: dict[str, Any] = {
        "name": "bowl",
        "goal": "find the bottom of the bowl",
        "space": [
            {"name": "x1", "type": "continuous", "bounds": [0, 1]},
            {"name": "x2", "type": "continuous", "bounds": [0, 1]},
        ],
        "objectives": [{"name": "y", "direction": "minimize", "unit": "mm"}],
        "budget": {"experiments": 9, "batch_size": 3},
        "planner": {"kind": "random", "seed": 3},
        "hypotheses": "none",
        "lab": {"manual": {"outcomes": {"y": "depth below the rim"}, "instructions": "Probe at ({x1}, {x2})"}},
    }
    spec.update(overrides)
    return spec


def bowl_yaml(**overrides: Any) -> str:
    return yaml.safe_dump(bowl_spec(**overrides), sort_keys=False)


def measured(batch: pd.DataFrame) -> pd.DataFrame:
    """The batch with its outcome measured: y from the known function at each row's point."""
    done = batch.copy()
    done["y"] = [bowl(x1, x2) for x1, x2 in zip(batch["x1"], batch["x2"], strict=True)]
    return done


def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order: two dumps are equal when nothing was written in between."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = connection.execute(select(table).order_by(*table.primary_key.columns)).all()
            tables[table.name] = [tuple(row) for row in rows]
    return tables
