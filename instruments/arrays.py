"""Array-valued measurements: a spectrum (wavelengths and intensities), a diffraction pattern, a trace.

An action may return an `ArrayData` where it would return a number. The station keeps it under the name the
protocol saves it as, hands it to analysis steps (which turn it into numbers for the outcome formulas), and writes
it to the journal as plain data (`as_dict`), where the orchestrator stores it once, by content hash, as a data
product of the experiment. Arrays never reach a formula: only numbers do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# What marks an array in a journal's plain data (and in what the orchestrator stores).
ARRAY_KIND = "array"


@dataclass(frozen=True)
class Axis:
    name: str  # e.g. wavelength
    unit: str = ""  # e.g. nm

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "unit": self.unit}


@dataclass(frozen=True)
class ArrayData:
    """Values `y` (shape (n,)) sampled at `x` (shape (n,), strictly increasing), each axis named with its unit."""

    x_axis: Axis
    y_axis: Axis
    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"array: {len(self.x)} {self.x_axis.name} values but {len(self.y)} {self.y_axis.name}")
        if not self.x:
            raise ValueError("array: no points")
        if not all(math.isfinite(v) for v in (*self.x, *self.y)):
            raise ValueError("array: values must be finite")
        if any(b <= a for a, b in zip(self.x, self.x[1:], strict=False)):
            raise ValueError(f"array: {self.x_axis.name} must increase strictly")

    @classmethod
    def of(cls, x: Sequence[float], y: Sequence[float], x_axis: Axis, y_axis: Axis) -> ArrayData:
        return cls(x_axis, y_axis, tuple(float(v) for v in x), tuple(float(v) for v in y))

    @property
    def points(self) -> int:
        return len(self.x)

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready data; `from_dict` reads it back exactly (floats survive a JSON round trip)."""
        return {
            "kind": ARRAY_KIND,
            "x_axis": self.x_axis.as_dict(),
            "y_axis": self.y_axis.as_dict(),
            "x": list(self.x),
            "y": list(self.y),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArrayData:
        if data.get("kind") != ARRAY_KIND:
            raise ValueError("not an array")
        return cls.of(
            data["x"],
            data["y"],
            Axis(**data["x_axis"]),
            Axis(**data["y_axis"]),
        )


def is_array(value: Any) -> bool:
    """An `ArrayData`, or its plain form in a journal."""
    return isinstance(value, ArrayData) or (isinstance(value, Mapping) and value.get("kind") == ARRAY_KIND)
