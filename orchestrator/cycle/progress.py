"""Progress reports from a running campaign to whoever shows them (the CLI's progress bar, tests).

Reports go through listeners registered in this process, not through flow parameters, so the Prefect flow's
parameters stay plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CycleReport:
    campaign: str
    cycle: int
    spent: int  # experiments that used the lab (completed, failed, infeasible)
    budget: int
    completed_in_cycle: int
    failed_in_cycle: int
    best: dict[str, dict[str, Any]] = field(default_factory=dict)  # objective -> {value, seq}
    improved: bool = False
    stop_reason: str | None = None
    warnings: list[str] = field(default_factory=list)  # the planner's warnings on this cycle's decision
    hypotheses: list[str] = field(default_factory=list)  # hypotheses proposed, supported or refuted this cycle


Listener = Callable[[CycleReport], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Register a listener; returns the function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def publish(report: CycleReport) -> None:
    for listener in list(_listeners):
        listener(report)


def report_lines(report: CycleReport) -> list[str]:
    """The cycle as plain lines, as the terminal shows them (the CLI adds colour): spent, failures and best so
    far, then the planner's warnings and the hypothesis news, each on a line of its own."""
    best = ", ".join(f"{name} = {b['value']:.4g} (#{b['seq']})" for name, b in report.best.items()) or "none yet"
    mark = " (improved)" if report.improved else ""
    failed = f", {report.failed_in_cycle} failed" if report.failed_in_cycle else ""
    lines = [f"cycle {report.cycle}  {report.spent}/{report.budget} experiments{failed}  best {best}{mark}"]
    lines += [f"  planner warning: {warning}" for warning in report.warnings]
    lines += [f"  {news}" for news in report.hypotheses]
    return lines
