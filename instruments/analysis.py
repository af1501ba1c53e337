"""Analysis steps: named, registered, pure functions that turn arrays (spectra, patterns) into numbers.

A station protocol names one in a step such as

    - {analyse: absorbance_at_peak, input: {sample: film, reference: blank, dark: dark},
       args: {low_nm: 450, high_nm: 600}, save: {absorbance: a_peak}}

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
from instruments.powder import CARDS, card_patterns, weight_fractions

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


def absorbance_spectrum(sample: ArrayData, reference: ArrayData, dark: ArrayData) -> np.ndarray:
    """A = -log10((S - D) / (R - D)) at every wavelength (shape (n,)): S the light through the sample, R through the
    blank (the bare substrate, the solvent, the empty holder), D with the lamp off, all three taken with the same
    integration time and scans. The transmitted light is floored at one count, so an opaque film reads a large
    finite absorbance instead of infinity; a reference with no light above the dark (a lamp that was off, a
    saturated detector's clipped dark) is an AnalysisError, since no absorbance follows from it."""
    if not sample.x == reference.x == dark.x:
        raise AnalysisError("sample, reference and dark spectra are not on the same wavelengths")
    light = np.asarray(reference.y) - np.asarray(dark.y)
    if (light <= 0).any():
        where = np.asarray(reference.x)[light <= 0]
        raise AnalysisError(
            f"the reference has no light above the dark at {where.size} point(s), from {where[0]:g} "
            f"{reference.x_axis.unit}: was its lamp on?"
        )
    transmitted = np.maximum(np.asarray(sample.y) - np.asarray(dark.y), 1.0)
    return np.asarray(-np.log10(transmitted / light))


@analysis(
    "absorbance_at_peak",
    inputs=("sample", "reference", "dark"),
    arguments={"low_nm": None, "high_nm": None},
    returns=("absorbance", "peak_nm"),
)
def absorbance_at_peak(
    sample: ArrayData, reference: ArrayData, dark: ArrayData, low_nm: float, high_nm: float
) -> dict[str, float]:
    """Largest absorbance in a band and where it is: -log10((sample - dark) / (reference - dark)) per wavelength."""
    x = np.asarray(sample.x)
    _band(sample, low_nm, high_nm)  # names the band when it misses the spectrum
    inside = (x >= low_nm) & (x <= high_nm)
    absorbance = _absorbance_in(sample, reference, dark, inside)
    index = int(np.argmax(np.where(inside, absorbance, -np.inf)))
    return {"absorbance": float(absorbance[index]), "peak_nm": float(x[index])}


@analysis(
    "mean_absorbance",
    inputs=("sample", "reference", "dark"),
    arguments={"low_nm": None, "high_nm": None},
    returns=("absorbance",),
)
def mean_absorbance(
    sample: ArrayData, reference: ArrayData, dark: ArrayData, low_nm: float, high_nm: float
) -> dict[str, float]:
    """Mean absorbance over a band, -log10((sample - dark) / (reference - dark)) per wavelength (less noisy than one
    point)."""
    x = np.asarray(sample.x)
    _band(sample, low_nm, high_nm)
    inside = (x >= low_nm) & (x <= high_nm)
    return {"absorbance": float(_absorbance_in(sample, reference, dark, inside)[inside].mean())}


def _absorbance_in(sample: ArrayData, reference: ArrayData, dark: ArrayData, inside: np.ndarray) -> np.ndarray:
    """The absorbance spectrum, where only the band asked for must have light in its reference (shape (n,); NaN
    outside the band)."""
    if not sample.x == reference.x == dark.x:
        raise AnalysisError("sample, reference and dark spectra are not on the same wavelengths")
    clip = np.flatnonzero(inside)
    part = slice(int(clip[0]), int(clip[-1]) + 1)

    def cut(array: ArrayData) -> ArrayData:
        return ArrayData(array.x_axis, array.y_axis, array.x[part], array.y[part])

    full = np.full(sample.points, np.nan)
    full[part] = absorbance_spectrum(cut(sample), cut(reference), cut(dark))
    return full


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


# --- powder diffraction -----------------------------------------------------------------------------------------

# The number each phase's weight fraction is returned as: its card's name, made an identifier ('.' -> '_').
PHASE_RETURNS = {name: name.replace(".", "_") for name in CARDS}


@analysis(
    "xrd_phase_fractions",
    inputs=("pattern",),
    arguments={"low_deg": 10.0, "high_deg": 80.0},
    returns=(*PHASE_RETURNS.values(), "r_wp"),
)
def xrd_phase_fractions(pattern: ArrayData, low_deg: float, high_deg: float) -> dict[str, float]:
    """Weight fraction of each reference phase in a powder pattern: non-negative least squares of the cards, RIR."""
    # The pattern between low_deg and high_deg (2-theta) is fitted as a non-negative sum of every card of
    # `instruments.powder` (unit-scaled pseudo-Voigt peaks) and a background (a constant, a fall-off from low angles
    # as (10 / 2-theta)^2, a linear rise), weighted by the counts' Poisson variance. A phase's coefficient is
    # k w RIR, so the weight fractions are the coefficients over each card's RIR, normalised (the RIR method; no
    # amorphous content is assumed). `r_wp` is the weighted-profile R factor of the fit: a pattern the cards do not
    # explain (a phase without a card, shifted peaks) shows as a large r_wp rather than as wrong fractions alone.
    from scipy.optimize import nnls  # imported here: only this analysis needs it

    x, y = _band(pattern, low_deg, high_deg)
    names = list(CARDS)
    background = np.column_stack([np.ones_like(x), (10.0 / x) ** 2, x / 80.0])
    design = np.column_stack([card_patterns(names, x), background])
    weight = 1.0 / np.sqrt(np.maximum(y, 1.0))
    coefficients, _ = nnls(design * weight[:, None], y * weight, maxiter=50 * design.shape[1])
    fitted = design @ coefficients
    r_wp = float(np.sqrt(np.sum(weight**2 * (y - fitted) ** 2) / np.sum(weight**2 * y**2)))
    fractions = weight_fractions(dict(zip(names, coefficients[: len(names)], strict=True)))
    return {**{PHASE_RETURNS[name]: fractions[name] for name in names}, "r_wp": r_wp}
