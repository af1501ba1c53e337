"""Analysis steps: named, registered, pure functions that turn arrays (spectra, patterns) into numbers.

A station protocol names one in a step such as

    - {analyse: absorbance_at_peak, input: {sample: film, dark: dark},
       args: {reference_counts: 30000, low_nm: 450, high_nm: 600}, save: {absorbance: a_peak}}

The function gets the saved arrays it names (`input`: its array argument -> the name the protocol saved an array
under) and numeric `args`, and returns numbers by name; `save` keeps the ones the outcome formulas use. Analyses
are pure (same arrays and args, same numbers), so a reviewer can reload the stored arrays and recompute every
analysis of a finished campaign (`peirce replay`). Packages add their own under the `peirce.analyses` entry-point
group, the way drivers are added.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import numpy as np

from instruments.arrays import ArrayData
from instruments.errors import InvalidAction

GROUP = "peirce.analyses"


class AnalysisError(ValueError):
    """The arrays cannot be analysed as asked (a band outside the spectrum, no light in the reference)."""


@dataclass(frozen=True)
class Analysis:
    """A registered analysis: its array `inputs`, numeric `arguments` (name -> default, None: required), the numbers
    it `returns`, and the pure function computing them."""

    name: str
    description: str
    inputs: tuple[str, ...]
    arguments: Mapping[str, float | None]
    returns: tuple[str, ...]
    function: Callable[..., Mapping[str, float]] = field(repr=False)

    def bind(self, given: Mapping[str, Any]) -> dict[str, float]:
        unknown = set(given) - set(self.arguments)
        if unknown:
            takes = ", ".join(self.arguments) or "nothing"
            raise InvalidAction(f"{self.name}: unknown argument(s) {', '.join(sorted(unknown))} (takes: {takes})")
        bound: dict[str, float] = {}
        for name, default in self.arguments.items():
            value = given.get(name, default)
            if value is None:
                raise InvalidAction(f"{self.name}: missing argument {name}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidAction(f"{self.name}.{name}: expected a finite number, got {value!r}")
            bound[name] = float(value)
        return bound

    def run(self, arrays: Mapping[str, ArrayData], arguments: Mapping[str, Any]) -> dict[str, float]:
        """The numbers, each finite; AnalysisError when the arrays do not allow them."""
        missing = set(self.inputs) - set(arrays)
        if missing:
            raise InvalidAction(f"{self.name}: missing input(s) {', '.join(sorted(missing))}")
        result = {
            k: float(v) for k, v in self.function(**{n: arrays[n] for n in self.inputs}, **self.bind(arguments)).items()
        }
        bad = [k for k, v in result.items() if not math.isfinite(v)]
        if bad:
            raise AnalysisError(f"{self.name}: {', '.join(bad)} is not a finite number")
        return result


ANALYSES: dict[str, Analysis] = {}


def analysis(
    name: str, *, inputs: tuple[str, ...], returns: tuple[str, ...], arguments: Mapping[str, float | None] | None = None
) -> Callable[[Callable[..., Mapping[str, float]]], Callable[..., Mapping[str, float]]]:
    """Register a function as the analysis `name` (its docstring's first line is its description)."""

    def register(function: Callable[..., Mapping[str, float]]) -> Callable[..., Mapping[str, float]]:
        doc = (function.__doc__ or "").strip().splitlines()
        ANALYSES[name] = Analysis(name, doc[0] if doc else "", inputs, dict(arguments or {}), returns, function)
        return function

    return register


def load_analysis(name: str) -> Analysis:
    """The analysis registered under `name` (built in, or from a package's entry point); InvalidAction naming the
    known ones when there is none."""
    if name in ANALYSES:
        return ANALYSES[name]
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            found = ep.load()
            if not isinstance(found, Analysis):
                raise InvalidAction(f"entry point '{name}' ({ep.value}) is not an instruments.analysis.Analysis")
            return found
    known = sorted(set(ANALYSES) | {ep.name for ep in entry_points(group=GROUP)})
    raise InvalidAction(f"no analysis '{name}' (known: {', '.join(known)})")


# --- built-in analyses ------------------------------------------------------------------------------------------


def _band(spectrum: ArrayData, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(spectrum.x), np.asarray(spectrum.y)
    inside = (x >= low) & (x <= high)
    if low >= high or not inside.any():
        raise AnalysisError(
            f"band {low:g}-{high:g} {spectrum.x_axis.unit} holds no point of the spectrum "
            f"({spectrum.x[0]:g}-{spectrum.x[-1]:g} {spectrum.x_axis.unit})"
        )
    return x[inside], y[inside]


def absorbance_spectrum(sample: ArrayData, dark: ArrayData, reference_counts: float) -> np.ndarray:
    """A = -log10((sample - dark) / reference) per point (shape (n,)), the transmitted light floored at one count so
    an opaque film reads a large finite absorbance instead of infinity."""
    if sample.x != dark.x:
        raise AnalysisError("sample and dark spectra are not on the same wavelengths")
    if reference_counts <= 0:
        raise AnalysisError("reference_counts must be positive")
    transmitted = np.maximum(np.asarray(sample.y) - np.asarray(dark.y), 1.0)
    return np.asarray(-np.log10(transmitted / reference_counts))


@analysis(
    "absorbance_at_peak",
    inputs=("sample", "dark"),
    arguments={"reference_counts": None, "low_nm": None, "high_nm": None},
    returns=("absorbance", "peak_nm"),
)
def absorbance_at_peak(
    sample: ArrayData, dark: ArrayData, reference_counts: float, low_nm: float, high_nm: float
) -> dict[str, float]:
    """Largest absorbance in a band and where it is: -log10((sample - dark) / reference), dark-corrected."""
    absorbance = absorbance_spectrum(sample, dark, reference_counts)
    x = np.asarray(sample.x)
    inside = (x >= low_nm) & (x <= high_nm)
    _band(sample, low_nm, high_nm)  # names the band when it misses the spectrum
    index = int(np.argmax(np.where(inside, absorbance, -np.inf)))
    return {"absorbance": float(absorbance[index]), "peak_nm": float(x[index])}


@analysis(
    "mean_absorbance",
    inputs=("sample", "dark"),
    arguments={"reference_counts": None, "low_nm": None, "high_nm": None},
    returns=("absorbance",),
)
def mean_absorbance(
    sample: ArrayData, dark: ArrayData, reference_counts: float, low_nm: float, high_nm: float
) -> dict[str, float]:
    """Mean absorbance over a band, dark-corrected (less noisy than one point)."""
    absorbance = absorbance_spectrum(sample, dark, reference_counts)
    x = np.asarray(sample.x)
    _band(sample, low_nm, high_nm)
    return {"absorbance": float(absorbance[(x >= low_nm) & (x <= high_nm)].mean())}


@analysis("peak", inputs=("spectrum",), arguments={"low": None, "high": None}, returns=("height", "position"))
def peak(spectrum: ArrayData, low: float, high: float) -> dict[str, float]:
    """Highest value in a band of any array and where it is."""
    x, y = _band(spectrum, low, high)
    index = int(np.argmax(y))
    return {"height": float(y[index]), "position": float(x[index])}


@analysis("band_area", inputs=("spectrum",), arguments={"low": None, "high": None}, returns=("area",))
def band_area(spectrum: ArrayData, low: float, high: float) -> dict[str, float]:
    """Area under an array over a band (trapezoids)."""
    x, y = _band(spectrum, low, high)
    return {"area": float(np.trapezoid(y, x)) if len(x) > 1 else 0.0}
