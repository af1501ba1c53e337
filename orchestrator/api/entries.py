"""A table of results as `tell` takes it, read into the entries `people.results.enter_results` checks and writes.

The table is a pandas DataFrame or a list of mappings, one row per experiment: `seq`, a column per outcome (the
campaign's objectives, in their units), and optionally `not_run` (why the experiment could not be run). The frame
`ask` returned may be passed back with the outcome columns filled in: its other columns (the parameters, the
predictions, the rationale) are read too, and a parameter that differs from the experiment's is refused, since a
changed point would be another experiment. Any other column is an unknown outcome.

Everything here only reads; a bad row raises SpecError naming the row and the field (`row 3: yield: …`) before
anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from orchestrator.campaign.spec import CampaignSpec
from orchestrator.errors import SpecError
from orchestrator.people.results import ResultEntry

SEQ = "seq"
NOT_RUN = "not_run"
ASKED = ("cycle", "rationale", "tests_hypothesis", "instructions")  # columns of `ask`'s frame that tell ignores


def result_entries(table: Any, spec: CampaignSpec, planned: Mapping[int, Mapping[str, Any]]) -> list[ResultEntry]:
    """The entries of `table`; `planned` maps each experiment's seq to its parameters (to check those given)."""
    parameters = [p.name for p in spec.space]
    ignored = {*ASKED, *(f"{o.name}_predicted_{m}" for o in spec.objectives for m in ("mean", "std"))}
    entries = []
    for where, row in _rows(table):
        if SEQ not in row:
            raise SpecError(f"{where}: {SEQ}", "no experiment number (`seq`) given")
        seq = _seq(row[SEQ], where)
        given = {name: row[name] for name in parameters if name in row}
        if seq in planned:
            _check_parameters(given, planned[seq], seq, where)
        values = {k: v for k, v in row.items() if k not in (SEQ, NOT_RUN, *parameters, *ignored)}
        entries.append(ResultEntry(seq=seq, values=values, not_run=_reason(row.get(NOT_RUN)), where=where))
    return entries


def _rows(table: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for each row: `row LABEL` by the DataFrame's index, `record I` in a list of mappings."""
    if isinstance(table, pd.DataFrame):
        repeated = sorted({str(c) for c in table.columns[table.columns.duplicated()]})
        if repeated:
            raise SpecError(f"column {repeated[0]}", "given twice; one column per outcome")
        if SEQ not in table.columns:
            shown = ", ".join(str(c) for c in table.columns) or "none"
            raise SpecError(SEQ, f"the table has no `seq` column (columns: {shown}); `seq` names each experiment")
        for label, row in zip(table.index, table.to_dict(orient="records"), strict=True):
            yield f"row {label}", {str(k): v for k, v in row.items()}
        return
    if isinstance(table, Mapping | str | bytes) or not isinstance(table, Sequence):
        raise SpecError(
            "results", f"give a DataFrame or a list of {{seq: …, outcome: …}} mappings, not {type(table).__name__}"
        )
    for i, row in enumerate(table):
        if not isinstance(row, Mapping):
            raise SpecError(f"record {i}", f"a mapping of column -> value, not {type(row).__name__}")
        yield f"record {i}", {str(k): v for k, v in row.items()}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT


def _seq(value: Any, where: str) -> int:
    if _missing(value):
        raise SpecError(f"{where}: {SEQ}", "no experiment number (`seq`) given")
    if isinstance(value, bool):
        raise SpecError(f"{where}: {SEQ}", f"{value!r} is not an experiment number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: {SEQ}", f"{str(value)[:40]!r} is not an experiment number") from None
    if not number.is_integer():
        raise SpecError(f"{where}: {SEQ}", f"{value!r} is not an experiment number")
    return int(number)


def _reason(value: Any) -> str | None:
    """`not_run` as the entry takes it: None when empty (the experiment ran), else the reason as text."""
    if _missing(value):
        return None
    text = str(value).strip()
    return text or None


def _check_parameters(given: Mapping[str, Any], planned: Mapping[str, Any], seq: int, where: str) -> None:
    for name, value in given.items():
        recorded = planned.get(name)
        if not _same(value, recorded):
            raise SpecError(
                f"{where}: {name}",
                f"{value!r}, but experiment #{seq} was handed out with {name} = {recorded!r}; tell the results of the "
                "experiment as planned (a changed point is another experiment)",
            )


def _same(given: Any, recorded: Any) -> bool:
    if _missing(given):
        return False
    if isinstance(recorded, int | float) and not isinstance(recorded, bool):
        try:
            return math.isclose(float(given), float(recorded), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return str(given) == str(recorded)
