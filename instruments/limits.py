"""Safety limits a lab sets per instrument in the campaign file, checked before any byte is sent.

Limits are keyed by argument name, so one limit covers every action that takes that quantity:

    limits:
      temperature_c: {max: 120}                  # set_temperature never above 120 °C
      volume_ml: {max: 5, per_experiment: 8}    # one dispense at most 5 mL, at most 8 mL in one experiment

A value past a limit is refused with a message naming the limit; it is never clipped to the limit, because a
silently changed experiment is a wrong result recorded as a right one.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from instruments.errors import LimitViolation


@dataclass(frozen=True)
class Limit:
    min: float | None = None
    max: float | None = None
    per_experiment: float | None = None  # the sum over one experiment's actions


@dataclass
class SafetyLimits:
    limits: Mapping[str, Limit] = field(default_factory=dict)
    # Which experiment the instrument serves now (set by the station when it reserves the instrument).
    experiment: str | None = None
    _spent: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Mapping[str, float]] | None) -> SafetyLimits:
        return cls({name: Limit(**dict(values)) for name, values in (raw or {}).items()})

    def check(self, instrument: str, action: str, arguments: Mapping[str, Any]) -> None:
        """Raise LimitViolation naming `<instrument>.limits.<argument>.<bound>` if any argument passes a limit."""
        for name, value in arguments.items():
            limit = self.limits.get(name)
            if limit is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            where = f"{instrument}.limits.{name}"
            if limit.max is not None and value > limit.max:
                raise LimitViolation(
                    f"{action} asks {name} = {value:g}, above the limit {where}.max = {limit.max:g}",
                    limit=f"{where}.max",
                    instrument=instrument,
                )
            if limit.min is not None and value < limit.min:
                raise LimitViolation(
                    f"{action} asks {name} = {value:g}, below the limit {where}.min = {limit.min:g}",
                    limit=f"{where}.min",
                    instrument=instrument,
                )
            if limit.per_experiment is not None:
                with self._lock:
                    spent = self._spent[self.experiment or ""][name]
                if spent + value > limit.per_experiment:
                    raise LimitViolation(
                        f"{action} asks {name} = {value:g} after {spent:g} in this experiment, above the limit "
                        f"{where}.per_experiment = {limit.per_experiment:g}",
                        limit=f"{where}.per_experiment",
                        instrument=instrument,
                    )

    def commit(self, action: str, arguments: Mapping[str, Any]) -> None:
        """Count a performed action's quantities towards the experiment's per-experiment limits."""
        with self._lock:
            for name, value in arguments.items():
                limit = self.limits.get(name)
                if limit is not None and limit.per_experiment is not None and isinstance(value, int | float):
                    self._spent[self.experiment or ""][name] += float(value)

    def forget(self, experiment: str) -> None:
        """Drop an experiment's running sums once it is over (a retry starts again from zero)."""
        with self._lock:
            self._spent.pop(experiment, None)
