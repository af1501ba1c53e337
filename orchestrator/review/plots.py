"""The review's plots: each takes a frame from `orchestrator.review.tables` and returns a matplotlib Figure.

Figures are built without pyplot on the Agg canvas, so nothing here opens a window or needs a display, and no
global figure list keeps them alive. Each figure is a `ReviewFigure`: it carries a one-sentence `caption` saying
what it shows (the report prints it under the image, the notebook beside it) and shows itself as PNG in Jupyter.
Every plot has a title and axis labels, with units where the spec gives them; an empty frame gives a figure that
says there is nothing to show rather than an error.
"""

from __future__ import annotations

import io
import math
import textwrap
from typing import Any

import pandas as pd
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

FAILED_COLOUR = "#d62728"
POSITIVE, NEGATIVE, LEVELS = "#1f77b4", "#ff7f0e", "#2ca02c"


class ReviewFigure(Figure):
    """A Figure with a caption, drawn on its own Agg canvas; Jupyter displays it through `_repr_png_`."""

    def __init__(self, *args: Any, caption: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("layout", "constrained")
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)
        self.caption = caption

    def png(self, dpi: int = 110) -> bytes:
        """The figure as PNG bytes."""
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()


def _labelled(name: str, unit: str | None) -> str:
    return f"{name} [{unit}]" if unit else name


def _nothing(title: str, message: str, caption: str) -> ReviewFigure:
    figure = ReviewFigure(figsize=(6.4, 2.0), caption=caption)
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, wrap=True)
    axes.set_axis_off()
    return figure


# --- best so far ----------------------------------------------------------------------------------------------


def best_so_far_figure(frame: pd.DataFrame) -> ReviewFigure:
    """One panel per objective: every result (dots) and the best so far (steps), by the number of results."""
    caption = (
        "Each dot is one completed experiment's result and the step line the best value so far in the objective's "
        "direction, against the number of results, so flat stretches show where the campaign stopped improving."
    )
    if frame.empty:
        return _nothing("Best so far", "no completed experiment yet", caption)
    objectives = list(dict.fromkeys(frame["objective"]))
    figure = ReviewFigure(figsize=(6.4 * min(len(objectives), 2), 4.0), caption=caption)
    for index, name in enumerate(objectives):
        rows = frame[frame["objective"] == name]
        unit, direction = rows["unit"].iloc[0], rows["direction"].iloc[0]
        axes = figure.add_subplot(1, len(objectives), index + 1)
        axes.scatter(rows["n"], rows["value"], s=18, color="0.6", label="result", zorder=2)
        axes.step(rows["n"], rows["best"], where="post", color=POSITIVE, linewidth=2, label="best so far", zorder=3)
        improved = rows[rows["improved"].astype(bool)]
        axes.scatter(improved["n"], improved["best"], s=30, color=POSITIVE, zorder=4, label="new best")
        axes.set_title(f"Best so far: {name} ({direction})")
        axes.set_xlabel("results so far (completed experiments)")
        axes.set_ylabel(_labelled(name, unit))
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize="small")
    return figure


# --- parameter influence --------------------------------------------------------------------------------------


def influence_figure(frame: pd.DataFrame) -> ReviewFigure:
    """One panel per objective: a bar per parameter, |Spearman ρ| for numeric ones and η for levels (0..1)."""
    caption = (
        "Bars rank the parameters by how strongly the objective moved with them in the results (|Spearman ρ| "
        "for numeric parameters, coloured by sign, and the correlation ratio η for categorical or molecule ones); "
        "this is a marginal association among the points the planner chose, not a causal effect."
    )
    if frame.empty:
        return _nothing("Parameter influence", "no results to relate to the parameters", caption)
    objectives = list(dict.fromkeys(frame["objective"]))
    parameters = frame["parameter"].nunique()
    height = 1.4 + 0.35 * parameters
    figure = ReviewFigure(figsize=(6.4 * min(len(objectives), 2), height), caption=caption)
    for index, name in enumerate(objectives):
        rows = frame[frame["objective"] == name].copy()
        rows["order"] = rows["strength"].fillna(-1.0)
        rows = rows.sort_values("order")
        axes = figure.add_subplot(1, len(objectives), index + 1)
        colours, labels = [], []
        for _, row in rows.iterrows():
            strength = row["strength"]
            if row["method"] == "spearman":
                colours.append(POSITIVE if (row["effect"] or 0) >= 0 else NEGATIVE)
                labels.append("n/a" if _missing(strength) else f"ρ = {row['effect']:+.2f}")
            else:
                colours.append(LEVELS)
                best = f", best {row['best_level']}" if row["best_level"] else ""
                labels.append("n/a" if _missing(strength) else f"η = {strength:.2f}{best}")
        values = [0.0 if _missing(s) else float(s) for s in rows["strength"]]
        names = [_labelled(p, u) for p, u in zip(rows["parameter"], rows["unit"], strict=True)]
        bars = axes.barh(names, values, color=colours)
        for bar, label in zip(bars, labels, strict=True):
            axes.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=8)
        axes.set_xlim(0, 1.25)
        axes.set_title(f"Parameter influence on {name} (n = {int(rows['n'].max())})")
        axes.set_xlabel("strength: |Spearman ρ| or η (0 none, 1 perfect)")
        axes.set_ylabel("parameter")
        axes.grid(axis="x", alpha=0.3)
        axes.legend(
            handles=[
                Patch(color=POSITIVE, label="numeric, rises with it"),
                Patch(color=NEGATIVE, label="numeric, falls with it"),
                Patch(color=LEVELS, label="levels"),
            ],
            loc="lower right",
            fontsize="small",
        )
    return figure


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# --- calibration ----------------------------------------------------------------------------------------------


def calibration_figure(points: pd.DataFrame) -> ReviewFigure:
    """One panel per objective: predicted mean ± 1 and 2 sd against the observed value, with the line y = x."""
    caption = (
        "Each point is a measured value against what the planner predicted for it before it was run (bars: ±1 sd "
        "dark, ±2 sd light); a calibrated model has about 68 % of the bars crossing the dashed line y = x within "
        "1 sd and 95 % within 2 sd."
    )
    if points.empty:
        return _nothing(
            "Calibration",
            "no measured value carried a prediction (a random or Sobol planner predicts nothing)",
            caption,
        )
    objectives = list(dict.fromkeys(points["objective"]))
    figure = ReviewFigure(figsize=(5.2 * min(len(objectives), 2), 4.8), caption=caption)
    for index, name in enumerate(objectives):
        rows = points[points["objective"] == name]
        unit = rows["unit"].iloc[0]
        std = rows["predicted_std"].fillna(0.0).astype(float)
        axes = figure.add_subplot(1, len(objectives), index + 1)
        axes.errorbar(rows["observed"], rows["predicted_mean"], yerr=2 * std, fmt="none", ecolor="0.75", zorder=2)
        axes.errorbar(
            rows["observed"], rows["predicted_mean"], yerr=std, fmt="o", color=POSITIVE, markersize=4, zorder=3
        )
        low = float(min(rows["observed"].min(), (rows["predicted_mean"] - 2 * std).min()))
        high = float(max(rows["observed"].max(), (rows["predicted_mean"] + 2 * std).max()))
        pad = 0.05 * (high - low or 1.0)
        axes.plot([low - pad, high + pad], [low - pad, high + pad], linestyle="--", color="0.3", label="y = x")
        usable = rows[rows["z"].notna()]
        if usable.empty:
            share = "no sd recorded"
        else:
            z = usable["z"].astype(float).abs()
            share = f"{(z <= 1).mean():.0%} within 1 sd, {(z <= 2).mean():.0%} within 2 sd"
        axes.set_title(f"Calibration of {name}: {share} (n = {len(rows)})", fontsize="medium")
        axes.set_xlabel(f"observed {_labelled(name, unit)}")
        axes.set_ylabel(f"predicted mean ± sd {_labelled(name, unit)}")
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", fontsize="small")
    return figure


# --- hypotheses ---------------------------------------------------------------------------------------------------


def credence_figure(ledger: pd.DataFrame, thresholds: tuple[float, float] = (0.05, 0.95)) -> ReviewFigure:
    """Credence over cycles, one line per hypothesis, with the refute and support thresholds."""
    refute, support = thresholds
    caption = (
        f"Each line is one hypothesis's credence (the model's probability that the claim is true) after each "
        f"cycle, a point a little left of a cycle being its credence when proposed; above {support:g} (or below "
        f"{refute:g}) with enough evidence it is settled as supported (or refuted)."
    )
    if ledger.empty:
        return _nothing("Hypothesis credences", "this campaign has no hypothesis credences", caption)
    hypotheses = list(dict.fromkeys(ledger["hypothesis_id"]))
    figure = ReviewFigure(figsize=(8.0, 4.2 + 0.28 * len(hypotheses)), caption=caption)
    axes = figure.add_subplot()
    counts = ledger.groupby(["hypothesis_id", "cycle"])["record"].transform("max")
    x = ledger["cycle"].astype(float) - 0.3 * (counts - ledger["record"])
    for hypothesis_id in hypotheses:
        mask = ledger["hypothesis_id"] == hypothesis_id
        rows = ledger[mask]
        statement = textwrap.shorten(str(rows["statement"].iloc[0]), width=70, placeholder="…")
        axes.plot(
            x[mask],
            rows["credence"],
            marker="o",
            markersize=4,
            label=f"H{hypothesis_id} ({rows['status'].iloc[0]}): {statement}",
        )
    axes.axhline(support, linestyle="--", color="green", linewidth=1)
    axes.axhline(refute, linestyle="--", color=FAILED_COLOUR, linewidth=1)
    axes.text(1.0, support, f" support {support:g}", transform=axes.get_yaxis_transform(), va="center", fontsize=8)
    axes.text(1.0, refute, f" refute {refute:g}", transform=axes.get_yaxis_transform(), va="center", fontsize=8)
    cycles = sorted(int(c) for c in ledger["cycle"].dropna().unique())
    axes.set_xticks(cycles)
    axes.set_xlim(min(cycles) - 0.6, max(cycles) + 0.3)
    axes.set_ylim(-0.03, 1.03)
    axes.set_title("Hypothesis credences over cycles")
    axes.set_xlabel("cycle")
    axes.set_ylabel("credence (probability the claim is true)")
    axes.grid(alpha=0.3)
    figure.legend(loc="outside lower center", fontsize="small", ncols=1)
    return figure


# --- the station ----------------------------------------------------------------------------------------------


def timeline_figure(timeline: pd.DataFrame) -> ReviewFigure:
    """A Gantt chart of a station's actions: a row per instrument, a bar per action coloured by experiment."""
    caption = (
        "Each bar is one instrument action from its start to its outcome, on its instrument's row and coloured by "
        "the experiment it served, with failed actions (and any whose outcome was never recorded) outlined in red "
        "and marked ×, so waits, overlaps between experiments and where faults struck can be read off."
    )
    if timeline.empty:
        return _nothing("Instrument timeline", "no station ran this campaign", caption)
    instruments = list(dict.fromkeys(timeline["instrument"]))
    figure = ReviewFigure(figsize=(10.0, 1.6 + 0.6 * len(instruments)), caption=caption)
    axes = figure.add_subplot()
    span = float(timeline[["start_s", "end_s"]].max().max() or 1.0)
    minimum = span / 400  # a 10 ms query would otherwise vanish beside a 30 s wait
    colours = _experiment_colours(timeline["seq"])
    for row_index, instrument in enumerate(instruments):
        rows = timeline[timeline["instrument"] == instrument]
        for _, action in rows.iterrows():
            start = float(action["start_s"])
            end = span if _missing(action["end_s"]) else float(action["end_s"])
            failed = bool(action["failed"]) or _missing(action["end_s"])
            axes.broken_barh(
                [(start, max(end - start, minimum))],
                (row_index - 0.35, 0.7),
                facecolors=colours.get(action["seq"], "0.5"),
                edgecolors=FAILED_COLOUR if failed else "none",
                linewidth=1.5 if failed else 0,
            )
            if failed:
                axes.plot([end], [row_index], marker="x", color=FAILED_COLOUR, markersize=9, mew=2)
    axes.set_yticks(range(len(instruments)), instruments)
    axes.set_ylim(len(instruments) - 0.5, -0.5)
    axes.set_title("Instrument timeline")
    axes.set_xlabel("wall-clock time since the first action [s]")
    axes.set_ylabel("instrument")
    axes.grid(axis="x", alpha=0.3)
    handles: list[Artist] = [Patch(color=colour, label=f"#{seq}") for seq, colour in list(colours.items())[:20]]
    handles.append(Line2D([], [], marker="x", color=FAILED_COLOUR, linestyle="none", mew=2, label="failed"))
    figure.legend(handles=handles, loc="outside right upper", fontsize="small", title="experiment")
    return figure


def arrays_figure(curves: dict[str, list[tuple[Any, Any]]]) -> ReviewFigure:
    """The stored arrays (an `instruments.arrays.ArrayData` each), one panel per name the protocol saved them under
    (`curves`: name -> [(experiment seq, array)]), each experiment's curve in its colour."""
    caption = (
        "Each panel holds the arrays the station's protocol saved under one name (a dark, a reference, a sample's "
        "spectrum...), one curve per experiment in its colour, read back from their stored artifacts."
    )
    if not curves:
        return _nothing("Stored arrays", "no array was measured", caption)
    names = list(curves)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = ReviewFigure(figsize=(3.6 * columns + 1.2, 2.8 * rows + 0.6), caption=caption)
    colours = _experiment_colours(pd.Series([seq for name in names for seq, _ in curves[name]]))
    for i, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, i + 1)
        for seq, array in curves[name]:
            axes.plot(array.x, array.y, color=colours.get(seq, "0.5"), linewidth=0.8)
        first = curves[name][0][1]
        axes.set_title(name, fontsize="medium")
        axes.set_xlabel(_labelled(first.x_axis.name, first.x_axis.unit), fontsize="small")
        axes.set_ylabel(_labelled(first.y_axis.name, first.y_axis.unit), fontsize="small")
        axes.tick_params(labelsize="small")
    figure.suptitle("Stored arrays")
    handles: list[Artist] = [Patch(color=colour, label=f"#{seq}") for seq, colour in list(colours.items())[:20]]
    figure.legend(handles=handles, loc="outside right upper", fontsize="small", title="experiment")
    return figure


def _experiment_colours(seqs: pd.Series) -> dict[Any, Any]:
    from matplotlib import colormaps

    ordered = sorted(s for s in seqs.dropna().unique())
    # tab10's colours are the easiest to tell apart; tab20 (pairs of light and dark) once there are more.
    palette = colormaps["tab10" if len(ordered) <= 10 else "tab20"]
    return {seq: palette(i % palette.N) for i, seq in enumerate(ordered)}


__all__ = [
    "ReviewFigure",
    "arrays_figure",
    "best_so_far_figure",
    "calibration_figure",
    "credence_figure",
    "influence_figure",
    "timeline_figure",
]
