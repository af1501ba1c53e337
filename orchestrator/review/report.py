"""`peirce report`: one self-contained HTML file a reviewer can read anywhere, offline, or attach to a record.

The file holds everything inline: CSS in a <style> element, plots as base64 PNG `data:` URIs, no script, no
font, no link to anything outside it. Its sections follow `orchestrator.review.tables`: the campaign and its status, the
spec, best so far, parameter influence, calibration, hypotheses, the instrument timeline, the replay table and the
experiments. A section that does not apply (no hypotheses, no station, no predictions) says so in a sentence
instead of showing an empty table.
"""

from __future__ import annotations

import base64
import html
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.errors import SpecError
from orchestrator.records.provenance import library_versions
from orchestrator.review import arrays as stored
from orchestrator.review import tables as review
from orchestrator.review.export import experiments_frame
from orchestrator.review.plots import (
    ReviewFigure,
    arrays_figure,
    best_so_far_figure,
    calibration_figure,
    credence_figure,
    influence_figure,
    timeline_figure,
)
from orchestrator.store.artifacts import ArtifactError, load_array
from orchestrator.store.database import Database

PLOTTED_EXPERIMENTS = 12  # the arrays of the last ones are plotted (all are listed)

SECTIONS = (
    ("status", "Status"),
    ("spec", "Spec"),
    ("best-so-far", "Best so far"),
    ("influence", "Parameter influence"),
    ("calibration", "Predicted and observed"),
    ("hypotheses", "Hypotheses"),
    ("timeline", "Instrument timeline"),
    ("arrays", "Stored arrays"),
    ("replay", "Replay"),
    ("experiments", "Experiments"),
)

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
nav a { margin-right: 1em; } .meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
.scroll { overflow-x: auto; max-width: 100%; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9em; margin-top: 0.3em; max-width: 900px; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.none { color: #555; font-style: italic; }
.match { color: #1a7f37; } .mismatch, .error { color: #c62828; font-weight: bold; }
"""


def write_report(db: Database, ref: str | int, out: Path, *, replay: bool = True) -> Path:
    """Write the campaign's review as one self-contained HTML file at `out` (its folder must exist); returns it.

    An unknown campaign raises CampaignNotFound before anything is written. Replay runs inside (it re-derives
    every planning decision, so a long campaign takes a while; `replay=False` leaves it out and says so); if it
    fails, its section says why.
    """
    info = review.overview(db, ref)  # an unknown campaign: CampaignNotFound, before anything else
    out = Path(out)
    if not out.parent.is_dir():
        raise SpecError("--out", f"folder {out.parent} does not exist")
    parts = [
        _status_section(info),
        _spec_section(info),
        _best_section(db, ref),
        _influence_section(db, ref),
        _calibration_section(db, ref),
        _hypotheses_section(db, ref, info),
        _timeline_section(db, ref, info),
        _arrays_section(db, ref, info),
        _replay_section(db, ref) if replay else _section("replay", _none("Replay was not run for this report.")),
        _experiments_section(db, ref),
    ]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = " ".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title in SECTIONS)
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>peirce review: {_e(info['name'])}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>Review of campaign {_e(info['name'])}</h1>\n"
        f"<p>{_e(info['goal'] or '(no goal stated)')}</p>\n"
        f'<p class="meta">Generated {generated} by peirce {_e(library_versions().get("peirce", "?"))} from '
        f"{_e(db.url)}; everything below is read from that database.</p>\n"
        f"<nav>{nav}</nav>\n" + "\n".join(parts) + "\n</body>\n</html>\n"
    )
    out.write_text(page, encoding="utf-8")
    return out


# --- sections -------------------------------------------------------------------------------------------------


def _section(key: str, *body: str) -> str:
    title = dict(SECTIONS)[key]
    return f'<section id="{key}">\n<h2>{html.escape(title)}</h2>\n' + "\n".join(body) + "\n</section>"


def _status_section(info: dict[str, Any]) -> str:
    facts = {
        "status": info["status"],
        "stop reason": info["stop_reason"] or "(none recorded)",
        "experiments spent": f"{info['spent']} of {info['budget']}",
        "experiments by state": ", ".join(f"{k} {v}" for k, v in info["by_state"].items()) or "none",
        "cycles": info["cycles"],
        "decisions": info["decisions"],
        "planner": _planner_text(info["planner"]),
        "hypotheses": info["hypotheses_source"],
        "lab": info["lab"],
        "active time": f"{info['active_seconds']:.1f} s",
        "created": _when(info["created_at"]),
        "last change": _when(info["updated_at"]),
    }
    parts = [_facts(facts)]
    if info["best"]:
        rows = [
            {
                "objective": name,
                "best": best["value"],
                "experiment": best["seq"],
                "parameters": ", ".join(f"{k} = {_number(v)}" for k, v in best["parameters"].items()),
            }
            for name, best in info["best"].items()
        ]
        parts.append(_table(pd.DataFrame(rows)))
    else:
        parts.append(_none("No experiment has completed yet, so there is no best value."))
    return _section("status", *parts)


def _spec_section(info: dict[str, Any]) -> str:
    return _section(
        "spec",
        "<h3>Parameters</h3>",
        _table(info["parameters"]),
        "<h3>Objectives</h3>",
        _table(info["objectives"]),
        f'<h3>The campaign file as stored</h3>\n<p class="meta">spec hash {_e(info["spec_hash"])}</p>',
        f"<pre>{_e(info['spec_text'])}</pre>",
    )


def _best_section(db: Database, ref: str | int) -> str:
    frame = review.best_so_far(db, ref)
    if frame.empty:
        return _section("best-so-far", _none("No experiment has completed yet: there is nothing to plot."))
    last = frame.groupby("objective", sort=False).tail(1)[["objective", "direction", "n", "best", "best_seq"]]
    last = last.rename(columns={"n": "results", "best_seq": "experiment"})
    return _section("best-so-far", _figure(best_so_far_figure(frame)), _table(last))


def _influence_section(db: Database, ref: str | int) -> str:
    frame = review.parameter_influence(db, ref)
    if frame.empty or frame["n"].max() == 0:
        return _section("influence", _none("No completed experiment yet: there is nothing to relate."))
    limits = (
        "How to read it: numeric parameters show Spearman's rank correlation ρ with the objective; categorical and "
        "molecule parameters show the mean objective per level, the spread between the best and worst level (in "
        "the objective's unit) and η, the share of the objective's variation the level explains. It is a marginal "
        "association among the points the planner chose, with no other parameter held fixed: correlated choices, "
        "interactions and small samples can mislead (see n and the p-values); the hypothesis ledger holds the "
        "claims that were tested on purpose."
    )
    shown = frame.drop(columns=["unit"]).copy()
    shown["level_means"] = shown["level_means"].map(
        lambda m: ", ".join(f"{k}: {v:.4g}" for k, v in m.items()) if isinstance(m, dict) else ""
    )
    return _section("influence", _figure(influence_figure(frame)), f"<p>{_e(limits)}</p>", _table(shown))


def _calibration_section(db: Database, ref: str | int) -> str:
    points = review.predictions(db, ref)
    if points.empty:
        return _section(
            "calibration",
            _none(
                "No measured value of this campaign carried a prediction (the planner made none: a random or Sobol "
                "planner, or no Bayesian batch has completed yet), so there is no calibration to show."
            ),
        )
    summary = review.calibration(points)
    shown = points.drop(columns=["unit"])
    return _section(
        "calibration",
        _figure(calibration_figure(points)),
        "<h3>Per objective</h3>",
        _table(summary) if not summary.empty else _none("No prediction carried a standard deviation."),
        "<h3>Every prediction</h3>",
        _table(shown),
    )


def _hypotheses_section(db: Database, ref: str | int, info: dict[str, Any]) -> str:
    table = review.hypotheses(db, ref)
    if table.empty:
        if info["hypotheses_source"] == "none":
            reason = "This campaign has no hypotheses: its spec says `hypotheses: none`, so none was proposed."
        else:
            reason = (
                f"This campaign has no hypotheses: hypotheses came from `{info['hypotheses_source']}`, but no "
                "proposal was accepted into the ledger (see `peirce hypotheses CAMPAIGN --all` for rejected ones)."
            )
        return _section("hypotheses", _none(reason))
    ledger = review.hypothesis_ledger(db, ref)
    parts = []
    if ledger.empty:
        parts.append(_none("No credence has been recorded yet for any hypothesis."))
    else:
        parts.append(_figure(credence_figure(ledger, review.hypothesis_thresholds(db, ref))))
    parts += ["<h3>The ledger</h3>", _table(table)]
    if not ledger.empty:
        history = ledger[["hypothesis_id", "cycle", "record", "credence", "evidence", "observations"]]
        parts += ["<h3>Credence by cycle</h3>", _table(history)]
    return _section("hypotheses", *parts)


def _timeline_section(db: Database, ref: str | int, info: dict[str, Any]) -> str:
    timeline = review.instrument_timeline(db, ref)
    if timeline.empty:
        if info["station"]:
            reason = "A station runs this campaign, but no instrument action has been recorded yet."
        else:
            reason = f"No station ran this campaign: its lab is a {info['lab']}, so there are no instrument actions."
        return _section("timeline", _none(reason))
    counts = (
        timeline.groupby("instrument", sort=False)
        .agg(actions=("action", "size"), failed=("failed", "sum"), busy_s=("seconds", "sum"))
        .reset_index()
    )
    failures = timeline[timeline["failed"].astype(bool) | timeline["end"].isna()]
    shown = timeline.drop(columns=["start", "end"])
    parts = [_figure(timeline_figure(timeline)), "<h3>Per instrument</h3>", _table(counts)]
    if failures.empty:
        parts.append(_none("No action failed."))
    else:
        parts += ["<h3>Failed actions</h3>", _table(failures.drop(columns=["start", "end"]))]
    parts += ["<h3>Every action</h3>", _table(shown)]
    return _section("timeline", *parts)


def _arrays_section(db: Database, ref: str | int, info: dict[str, Any]) -> str:
    """Each experiment's stored arrays (name, points, axes, the artifact's SHA-256 prefix and a line summing it up),
    a plot of them by name, and the analyses done on them computed again from the stored arrays."""
    frame = stored.stored_arrays(db, ref)
    if frame.empty:
        reason = (
            "No action of this campaign's station returned an array."
            if info["station"]
            else f"No station ran this campaign (its lab is a {info['lab']}), so no array was measured."
        )
        return _section("arrays", _none(reason))
    curves: dict[str, list[tuple[Any, Any]]] = {}
    summaries, shown_seqs = [], sorted({s for s in frame["seq"] if s is not None})[-PLOTTED_EXPERIMENTS:]
    for row in frame.itertuples(index=False):
        try:
            array = load_array(db.artifacts, {"kind": "array", "artifact": row.sha256, "points": row.points})
        except ArtifactError as exc:
            summaries.append(f"not readable: {exc}")
            continue
        summaries.append(stored.summary(array))
        if row.seq in shown_seqs:
            curves.setdefault(str(row.name), []).append((row.seq, array))
    table = frame.assign(sha256=frame["sha256"].str[:12] + "…", summary=summaries)
    parts = [
        f"<p>{_e(len(frame))} array(s) stored as content-hashed artifacts of {_e(frame['seq'].nunique())} "
        f"experiment(s); the plot shows the last {_e(len(shown_seqs))}. "
        "<code>orchestrator.review.arrays.experiment_arrays(db, campaign, seq)</code> loads an experiment's arrays "
        "by the names its protocol saved them under.</p>",
        _figure(arrays_figure(curves)),
        _table(table),
    ]
    analyses = stored.reanalyse(db, ref)
    if not analyses.empty:
        matched = int((analyses["status"] == "match").sum())
        parts += [
            "<h3>Analyses, computed again from the stored arrays</h3>",
            f"<p>{_e(matched)} of {_e(len(analyses))} analysis step(s) give again the numbers the campaign used.</p>",
            _table(analyses.drop(columns=["input"]), status_column="status"),
        ]
    return _section("arrays", *parts)


def _replay_section(db: Database, ref: str | int) -> str:
    frame = review.replay_table(db, ref)
    attrs = frame.attrs
    if attrs.get("error"):
        intro = f"Replay could not run: {attrs['error']}"
    else:
        derived = frame[frame["status"].isin(["match", "mismatch"])]
        matched = int((derived["status"] == "match").sum())
        intro = (
            f"Replay re-derived {len(derived)} planning decision(s) from the record; {matched} match. "
            f"Campaign {'finished' if attrs.get('finished') else 'not finished'} when replayed."
        )
    parts = [f"<p>{_e(intro)}</p>"]
    differences = attrs.get("version_differences") or {}
    if differences:
        rows = [{"name": k, "recorded": _number(v[0]), "now": _number(v[1])} for k, v in differences.items()]
        parts += [
            "<p>Versions and settings that differ between the record and this replay (a mismatch can come from "
            "these):</p>",
            _table(pd.DataFrame(rows)),
        ]
    shown = frame.copy()
    for column in ("recorded", "rederived"):
        shown[column] = shown[column].map(review.compact)
    parts.append(_table(shown, status_column="status"))
    return _section("replay", *parts)


def _experiments_section(db: Database, ref: str | int) -> str:
    frame = experiments_frame(db, str(ref)).drop(columns=["idempotency_key", "created_at"])
    if frame.empty:
        return _section("experiments", _none("No experiment has been planned yet."))
    return _section("experiments", _table(frame))


# --- HTML pieces ------------------------------------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text))


def _none(text: str) -> str:
    return f'<p class="none">{_e(text)}</p>'


def _figure(figure: ReviewFigure) -> str:
    data = base64.b64encode(figure.png()).decode("ascii")
    title = figure.axes[0].get_title() if figure.axes else ""
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(title)}">'
        f"<figcaption>{_e(figure.caption)}</figcaption></figure>"
    )


def _facts(facts: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts.items())
    return f"<table>{rows}</table>"


def _table(frame: pd.DataFrame, status_column: str | None = None) -> str:
    """An HTML table of `frame` with every cell escaped; numbers to 4 significant digits."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            css = f' class="{_e(value)}"' if column == status_column and isinstance(value, str) else ""
            cells.append(f"<td{css}>{_e(_cell(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _cell(value: Any) -> str:
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, datetime):  # pd.Timestamp too
        return _when(value)
    if isinstance(value, dict | list | tuple):
        return review.compact(value)
    return _number(value)


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _when(at: datetime | None) -> str:
    if at is None or at is pd.NaT:
        return ""
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _planner_text(planner: dict[str, Any]) -> str:
    rest = ", ".join(f"{k} {v}" for k, v in planner.items() if k != "kind")
    return f"{planner.get('kind', '?')} ({rest})" if rest else str(planner.get("kind", "?"))
