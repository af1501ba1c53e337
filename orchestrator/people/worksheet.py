"""The work handed to people, and the results sheet they fill in and give back.

`handout` reads what waits for a person's hands: experiments handed out whose results are to be entered (a manual
lab), and manual steps of a station protocol waiting for their number. Read-only.

The results sheet is a CSV that a spreadsheet opens and saves back unchanged (`peirce next --format csv` writes it,
`peirce record` reads it):

    seq,alcohol,temperature [degC],yield [%],not_run,instructions
    4,ethanol,87.2346,,,"Charge 5.0 mmol benzoic acid, …"

- `seq`: the experiment's number (required);
- one column per parameter (optional; `name [unit]`): what was planned, to read. When present, a row's values must
  be the planned ones (to six significant digits, as written): a row moved to another seq, or a condition changed
  by hand, is refused rather than recorded against the wrong experiment;
- one column per outcome (required), `name` or `name [unit]`: the unit, when given, must be the objective's;
- `not_run` (optional): why the experiment could not be run (it ends abandoned; not a result);
- `instructions` (optional): to read; ignored.
A row with no outcome and no `not_run` is not done yet, and is skipped. Rows are numbered as a spreadsheet shows
them (the header is row 1). A file saved with `;` or tabs (spreadsheets in locales with a decimal comma) is read
too, and `71,5` is then 71.5. Any other column, a column given twice or a missing one is refused, naming it.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from orchestrator.campaign.spec import CampaignSpec, ManualLab
from orchestrator.errors import SpecError
from orchestrator.people.results import EntryReport, ResultEntry, enter_results
from orchestrator.people.waiting import Waiting, waiting
from orchestrator.store.database import Database
from orchestrator.store.models import Experiment, PersonRequest, RequestKind
from orchestrator.store.records import find_campaign

SEQ, NOT_RUN, INSTRUCTIONS = "seq", "not_run", "instructions"
_HEADER = re.compile(r"^\s*(?P<name>[^\[\]]*?)\s*(?:\[(?P<unit>[^\[\]]*)\])?\s*$")
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+\s*$")


@dataclass(frozen=True)
class Work:
    """An experiment handed to a person, waiting for its results."""

    seq: int
    parameters: dict[str, Any]
    instructions: str
    since: datetime


@dataclass(frozen=True)
class StepWork:
    """A manual step of a station protocol, waiting for the number a person enters."""

    seq: int
    step: int
    instructions: str
    outcome: str
    unit: str
    since: datetime


@dataclass(frozen=True)
class Handout:
    """What a campaign waits for people's hands to do, with what they need to do it."""

    campaign: str
    status: str
    spec: CampaignSpec
    work: list[Work]
    steps: list[StepWork]
    waiting: Waiting  # everything the campaign waits for people to do (approvals too), as `peirce status` says it

    @property
    def outcomes(self) -> dict[str, str]:
        """Objective -> how a person measures it (a manual lab's words; empty where it says nothing)."""
        described = self.spec.lab.manual.outcomes if isinstance(self.spec.lab, ManualLab) else {}
        return {o.name: described.get(o.name, "") for o in self.spec.objectives}

    @property
    def units(self) -> dict[str, str]:
        return {o.name: o.unit for o in self.spec.objectives}


def handout(db: Database, campaign_ref: str | int) -> Handout:
    """The work of the campaign waiting for people's hands (results to enter, manual steps), oldest first."""
    with db.session() as session:
        campaign = find_campaign(session, campaign_ref)
        rows = session.execute(
            select(PersonRequest, Experiment)
            .join(Experiment, Experiment.id == PersonRequest.experiment_id)
            .where(
                PersonRequest.campaign_id == campaign.id,
                PersonRequest.resolved_at.is_(None),
                PersonRequest.kind.in_((RequestKind.RESULT, RequestKind.STEP)),
            )
            .order_by(Experiment.seq, PersonRequest.id)
        ).all()
        work, steps = [], []
        for request, experiment in rows:
            detail = request.detail or {}
            if request.kind == RequestKind.RESULT:
                work.append(
                    Work(
                        experiment.seq,
                        dict(experiment.parameters),
                        str(detail.get("instructions", "")),
                        request.created_at,
                    )
                )
            else:
                steps.append(
                    StepWork(
                        experiment.seq,
                        int(detail.get("step", -1)),
                        str(detail.get("instructions", "")),
                        str(detail.get("outcome", "")),
                        str(detail.get("unit", "")),
                        request.created_at,
                    )
                )
        return Handout(
            campaign.name,
            campaign.status,
            CampaignSpec.model_validate(campaign.spec),
            work,
            steps,
            waiting(session, campaign.id),
        )


def shown(value: Any) -> str:
    """A parameter's value as the sheet and the instructions show it (a number to six significant digits)."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def header(name: str, unit: str) -> str:
    return f"{name} [{unit}]" if unit else name


def write_sheet(handed: Handout) -> str:
    """The results sheet of the experiments waiting for results: a CSV to fill in and give to `peirce record`."""
    parameters = [(p.name, getattr(p, "unit", "") or "") for p in handed.spec.space]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [SEQ]
        + [header(name, unit) for name, unit in parameters]
        + [header(name, unit) for name, unit in handed.units.items()]
        + [NOT_RUN, INSTRUCTIONS]
    )
    for work in handed.work:
        writer.writerow(
            [work.seq]
            + [shown(work.parameters.get(name, "")) for name, _ in parameters]
            + ["" for _ in handed.units]
            + ["", work.instructions]
        )
    return out.getvalue()


@dataclass(frozen=True)
class Sheet:
    """A results sheet as read: the entries to record, and the rows not filled in yet (by seq)."""

    entries: list[ResultEntry]
    not_done: list[int]


def read_sheet(text: str, spec: CampaignSpec, planned: Mapping[int, Mapping[str, Any]], source: str) -> Sheet:
    """The entries of a filled-in results sheet; SpecError naming the file, row and column at fault.

    `planned`: each experiment's planned parameters by seq, to check the parameter columns against."""
    text = text.removeprefix("\ufeff")  # a spreadsheet's byte-order mark
    if not text.strip():
        raise SpecError(source, "the file is empty (expected a header: seq, one column per outcome)")
    delimiter = _delimiter(text.splitlines()[0])
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    columns = _columns(rows[0], spec, source)
    entries: list[ResultEntry] = []
    not_done: list[int] = []
    for number, row in enumerate(rows[1:], start=2):
        where = f"{source} row {number}"
        cells = {name: (row[i].strip() if i < len(row) else "") for name, (i, _) in columns.items()}
        if len(row) > len(rows[0]) and any(cell.strip() for cell in row[len(rows[0]) :]):
            raise SpecError(where, f"{len(row)} cells, but the header names {len(rows[0])} columns")
        if not any(cell.strip() for cell in row):
            continue  # an empty line
        raw_seq = cells[SEQ]
        if not re.fullmatch(r"\d+", raw_seq):
            raise SpecError(f"{where}, column {SEQ}", f"{raw_seq[:40]!r} is not an experiment number")
        seq = int(raw_seq)
        outcomes = {o.name: cells[o.name] for o in spec.objectives}
        reason = cells.get(NOT_RUN, "")
        if not reason and not any(outcomes.values()):
            not_done.append(seq)
            continue
        if reason and any(outcomes.values()):
            filled = ", ".join(name for name, value in outcomes.items() if value)
            raise SpecError(
                f"{where}, column {NOT_RUN}", f"says it was not run, but {filled} is given: one or the other"
            )
        if seq in planned:
            _check_planned(spec, columns, cells, planned[seq], seq, where, delimiter)
        if reason:
            entries.append(ResultEntry(seq, not_run=reason, where=where))
            continue
        values = {name: _number(value, delimiter) for name, value in outcomes.items()}
        units = {o.name: columns[o.name][1] for o in spec.objectives if columns[o.name][1]}
        entries.append(ResultEntry(seq, values, units, where=where))
    return Sheet(entries, not_done)


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _columns(row: Sequence[str], spec: CampaignSpec, source: str) -> dict[str, tuple[int, str]]:
    """Column name -> (index, unit written in its header); refuses unknown, repeated and missing columns."""
    parameters = {p.name: getattr(p, "unit", "") or "" for p in spec.space}
    objectives = {o.name: o.unit for o in spec.objectives}
    known = {SEQ: "", NOT_RUN: "", INSTRUCTIONS: "", **parameters, **objectives}
    columns: dict[str, tuple[int, str]] = {}
    for i, cell in enumerate(row):
        match = _HEADER.match(cell.removeprefix("\ufeff"))
        name, unit = (match.group("name"), (match.group("unit") or "").strip()) if match else (cell.strip(), "")
        where = f"{source} column {i + 1} ({cell.strip()!r})" if cell.strip() else f"{source} column {i + 1}"
        if not name:
            raise SpecError(where, "a column without a name in the header")
        if name not in known:
            raise SpecError(
                where,
                f"unknown column '{name}' (columns: seq, the parameters {', '.join(parameters)}, the outcomes "
                f"{', '.join(objectives)}, not_run, instructions)",
            )
        if name in columns:
            raise SpecError(where, f"column '{name}' is also column {columns[name][0] + 1}")
        if unit and unit != known[name]:
            wanted = f"'{known[name]}'" if known[name] else "no unit"
            raise SpecError(where, f"unit '{unit}', but {name} is recorded in {wanted}")
        columns[name] = (i, unit)
    for name in [SEQ, *objectives]:
        if name not in columns:
            raise SpecError(
                source, f"no column '{header(name, known[name])}' in the header (columns: {', '.join(row)})"
            )
    return columns


def _check_planned(
    spec: CampaignSpec,
    columns: Mapping[str, tuple[int, str]],
    cells: Mapping[str, str],
    planned: Mapping[str, Any],
    seq: int,
    where: str,
    delimiter: str,
) -> None:
    for parameter in spec.space:
        if parameter.name not in columns or parameter.name not in planned:
            continue
        given, wanted = cells[parameter.name], planned[parameter.name]
        if _same(given, wanted, delimiter):
            continue
        raise SpecError(
            f"{where}, column {parameter.name}",
            f"{given!r}, but #{seq} was planned at {shown(wanted)}: results are recorded for what was planned "
            "(check the row's seq; leave planned values as `peirce next` wrote them)",
        )


def _same(given: str, wanted: Any, delimiter: str) -> bool:
    if isinstance(wanted, bool) or not isinstance(wanted, int | float):
        return given == str(wanted)
    try:
        number = float(_number(given, delimiter))
    except ValueError:
        return False
    return number == wanted or float(shown(float(wanted))) == float(shown(number)) or math.isclose(number, wanted)


def _number(cell: str, delimiter: str) -> str:
    """A cell as text for a number: with a decimal comma (a file saved with `;` or tabs), the comma made a point."""
    if delimiter != "," and _DECIMAL_COMMA.match(cell):
        return cell.replace(",", ".")
    return cell


def enter_sheet(db: Database, campaign_ref: str | int, text: str, *, by: str, source: str) -> tuple[Sheet, EntryReport]:
    """Read a filled-in results sheet (`source` names it in messages) and enter its results, by person `by`: every
    row checked before one transaction writes them all (`people.results.enter_results`)."""
    with db.session() as session:
        campaign = find_campaign(session, campaign_ref)
        spec = CampaignSpec.model_validate(campaign.spec)
        rows = session.execute(
            select(Experiment.seq, Experiment.parameters).where(Experiment.campaign_id == campaign.id)
        ).all()
        planned = {seq: dict(parameters) for seq, parameters in rows}
        name = campaign.name
    sheet = read_sheet(text, spec, planned, source)
    return sheet, enter_results(db, name, sheet.entries, by=by, source=f"peirce record {source}")
