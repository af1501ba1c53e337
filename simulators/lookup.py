"""A simulator that answers experiments from a table of published measurements.

Each factor (a parameter of the campaign) is matched against one column of the table; the outcome columns give
the measured values. A point that the table does not hold is an error naming the point: a lookup never
interpolates, so every answer is a real measurement.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from rdkit import Chem, RDLogger

from simulators.base import PointNotInTable, SimulationResult

RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]  # rdkit's stubs omit DisableLog

MatchKind = Literal["text", "number", "smiles"]


@dataclass(frozen=True)
class Factor:
    """How one parameter is found in the table.

    `match` says how values compare: as text, as numbers (to 9 significant digits), or as molecules (canonical
    SMILES). `aliases` translates a parameter's value before matching, e.g. a molecule's name to its SMILES.
    """

    parameter: str
    column: str
    match: MatchKind = "text"
    aliases: Mapping[str, str] = field(default_factory=dict)


class TableError(ValueError):
    """The table cannot serve the campaign (missing file or column, unparsable value). `field` names the spec field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class LookupSimulator:
    def __init__(
        self,
        table: Path,
        factors: Sequence[Factor],
        outcomes: Mapping[str, str],
        delay_s: float = 0.0,
    ) -> None:
        """`outcomes` maps each outcome name to its column. Replicate rows of one point are averaged."""
        self.table_path = Path(table)
        self.factors = list(factors)
        self.outcomes = dict(outcomes)
        self.delay_s = delay_s
        frame = _read_table(self.table_path)
        for factor in self.factors:
            if factor.column not in frame.columns:
                raise TableError(
                    f"lab.columns.{factor.parameter}",
                    f"column '{factor.column}' not in {self.table_path.name} (columns: {', '.join(frame.columns)})",
                )
        for outcome, column in self.outcomes.items():
            if column not in frame.columns:
                raise TableError(
                    f"lab.outcomes.{outcome}",
                    f"column '{column}' not in {self.table_path.name} (columns: {', '.join(frame.columns)})",
                )
            if not pd.api.types.is_numeric_dtype(frame[column]):
                raise TableError(
                    f"lab.outcomes.{outcome}", f"column '{column}' of {self.table_path.name} is not numeric"
                )
        self._rows: dict[tuple, dict[str, float]] = {}
        self._levels: dict[str, set[Hashable]] = {f.parameter: set() for f in self.factors}
        keyed = frame.assign(
            _key=[self._table_key(row) for row in frame[[f.column for f in self.factors]].itertuples(index=False)]
        )
        for key, group in keyed.groupby("_key", sort=False):
            self._rows[key] = {o: float(group[c].mean()) for o, c in self.outcomes.items()}
            for factor, value in zip(self.factors, key, strict=True):
                self._levels[factor.parameter].add(value)

    def __len__(self) -> int:
        return len(self._rows)

    def missing_values(self, parameter: str, values: Sequence[Any]) -> list[Any]:
        """The values of `parameter` (as the campaign names them) that no row of the table holds."""
        factor = next(f for f in self.factors if f.parameter == parameter)
        return [v for v in values if _normalise(factor, factor.aliases.get(v, v)) not in self._levels[parameter]]

    def points(self) -> list[dict[str, Any]]:
        """Every point the table can answer, in the campaign's own values (aliases translated back)."""
        reverse = {
            f.parameter: {_normalise(f, table_value): name for name, table_value in f.aliases.items()}
            for f in self.factors
        }
        points = []
        for key in self._rows:
            point = {}
            for factor, value in zip(self.factors, key, strict=True):
                point[factor.parameter] = reverse[factor.parameter].get(value, value)
            points.append(point)
        return points

    def run(self, parameters: Mapping[str, Any], key: str) -> SimulationResult:
        if self.delay_s:
            time.sleep(self.delay_s)
        row_key = tuple(
            _normalise(f, f.aliases.get(parameters[f.parameter], parameters[f.parameter])) for f in self.factors
        )
        values = self._rows.get(row_key)
        if values is None:
            described = ", ".join(f"{f.parameter}={parameters[f.parameter]!r}" for f in self.factors)
            raise PointNotInTable(f"no row of {self.table_path.name} matches {described}")
        missing = [name for name, v in values.items() if math.isnan(v)]
        if missing:
            described = ", ".join(f"{f.parameter}={parameters[f.parameter]!r}" for f in self.factors)
            raise PointNotInTable(f"{self.table_path.name} has no value of {', '.join(missing)} for {described}")
        return SimulationResult(values=dict(values))

    def _table_key(self, row: Sequence[Any]) -> tuple:
        key = []
        for factor, value in zip(self.factors, row, strict=True):
            normalised = _normalise(factor, value)
            if normalised is None:
                raise TableError(
                    f"lab.columns.{factor.parameter}",
                    f"column '{factor.column}' of {self.table_path.name} holds {value!r}, not a {factor.match} value",
                )
            key.append(normalised)
        return tuple(key)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TableError("lab.table", f"data file not found: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TableError("lab.table", f"cannot read {path.name} as CSV: {exc}") from exc


def _normalise(factor: Factor, value: Any) -> Hashable | None:
    if factor.match == "number":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return float(f"{number:.9g}") if math.isfinite(number) else None
    if factor.match == "smiles":
        return _canonical_smiles(value) if isinstance(value, str) and value else None
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


@lru_cache(maxsize=8192)
def _canonical_smiles(smiles: str) -> str | None:
    # Tables repeat each molecule thousands of times; parse each distinct string once.
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)
