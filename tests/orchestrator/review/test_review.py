"""The review: each table checked against the database it is read from, the plots' labels and captions, the HTML
report (self-contained, every section, sections that do not apply said so), the review notebook executed on a
copy (the stored one has no outputs), and, on a station run on twins, the instrument timeline."""

from __future__ import annotations

import base64
import csv
import html
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sqlalchemy import select
from typer.testing import CliRunner

from orchestrator.campaign import runs
from orchestrator.cli.review import report as report_command
from orchestrator.cycle.context import load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.errors import CampaignNotFound
from orchestrator.review import tables as review
from orchestrator.review.plots import (
    ReviewFigure,
    best_so_far_figure,
    calibration_figure,
    credence_figure,
    influence_figure,
    timeline_figure,
)
from orchestrator.review.report import SECTIONS, write_report
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import (
    Campaign,
    Cycle,
    Decision,
    Event,
    Experiment,
    ExperimentState,
    Hypothesis,
    HypothesisCredence,
    Measurement,
)
from orchestrator.store.queries import calibration as status_calibration
from orchestrator.store.records import add_event
from tests.campaigns import hartmann_spec, to_spec
from tests.conftest import REPO

NOTEBOOK = REPO / "notebooks" / "review.ipynb"
LIGHT = {"kind": "bayesian", "seed": 0, "num_restarts": 2, "raw_samples": 64, "mc_samples": 64}
HYPOTHESES = {"source": "model", "min_observations": 5, "max_new_per_cycle": 2, "posterior_samples": 256}
SCREEN_MEANS = {"A": 30.0, "B": 10.0, "C": 50.0}


@dataclass(frozen=True)
class Campaigns:
    """One SQLite database holding two finished campaigns: Hartmann-6 (minimize, no hypotheses, Bayesian) and a
    catalyst screen (maximize, a categorical parameter, model hypotheses)."""

    url: str
    db: Database
    folder: Path


def _run(db: Database, data: dict[str, Any], base_dir: Path) -> int:
    spec, text = to_spec(data, base_dir)
    campaign_id, _ = open_campaign(db, spec, text)
    runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id)
    run_loop(ctx, InlineStages(ctx))
    return campaign_id


def _screen_table(folder: Path) -> Path:
    """Catalyst C best and B worst, yield rising with temperature, a little with loading."""
    table = folder / "screen.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["catalyst", "temperature", "loading", "yield"])
        for catalyst, base in SCREEN_MEANS.items():
            for temperature in (20, 40, 60, 80):
                for loading in (1, 2, 5):
                    writer.writerow([catalyst, temperature, loading, base + 0.4 * temperature + 2 * math.log(loading)])
    return table


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaigns]:
    folder = tmp_path_factory.mktemp("review")
    url = f"sqlite:///{folder / 'review.db'}"
    db = open_database(url)
    _run(db, hartmann_spec(budget={"experiments": 8, "batch_size": 4}, planner=LIGHT), folder)
    screen = {
        "name": "screen",
        "goal": "Find the catalyst and temperature that give the best yield.",
        "space": [
            {"name": "catalyst", "type": "categorical", "levels": ["A", "B", "C"]},
            {"name": "temperature", "type": "discrete", "values": [20, 40, 60, 80], "unit": "degC"},
            {"name": "loading", "type": "discrete", "values": [1, 2, 5], "unit": "mol%"},
        ],
        "objectives": [{"name": "yield", "direction": "maximize", "unit": "%"}],
        "budget": {"experiments": 15, "batch_size": 5},
        "stop": {"target_reached": False},
        "planner": LIGHT,
        "hypotheses": HYPOTHESES,
        "lab": {"simulator": "lookup", "table": str(_screen_table(folder))},
    }
    _run(db, screen, folder)
    yield Campaigns(url, db, folder)
    db.dispose()


def _campaign_id(db: Database, name: str) -> int:
    with db.session() as session:
        return session.scalar(select(Campaign.id).where(Campaign.name == name))


def _final_results(db: Database, name: str) -> list[tuple[int, dict[str, Any], dict[str, float]]]:
    """(seq, parameters, values) of each completed experiment from its last attempt, straight from the tables."""
    with db.session() as session:
        experiments = session.scalars(
            select(Experiment)
            .where(Experiment.campaign_id == _campaign_id(db, name), Experiment.state == ExperimentState.COMPLETED)
            .order_by(Experiment.seq)
        ).all()
        return [
            (e.seq, dict(e.parameters), {m.name: m.value for m in e.measurements if m.attempt == e.attempts})
            for e in experiments
        ]


# --- tables -----------------------------------------------------------------------------------------------------


def test_overview_is_the_campaign_as_stored(campaigns: Campaigns) -> None:
    info = review.overview(campaigns.db, "screen")
    with campaigns.db.session() as session:
        campaign = session.get_one(Campaign, _campaign_id(campaigns.db, "screen"))
        last = session.scalars(select(Cycle).where(Cycle.campaign_id == campaign.id).order_by(Cycle.index)).all()[-1]
        assert info["spec"] == campaign.spec and info["spec_text"] == campaign.spec_text
        assert info["spec_hash"] == campaign.spec_hash
        assert (info["status"], info["stop_reason"]) == (campaign.status, campaign.stop_reason)
        assert info["by_state"] == {"completed": 15} and info["spent"] == info["budget"] == 15
        assert info["cycles"] == last.index == 3
        assert info["decisions"] == len(
            session.scalars(select(Decision).where(Decision.campaign_id == campaign.id)).all()
        )
        best = last.best["yield"]
        assert info["best"]["yield"]["value"] == best["value"]
        seq_parameters = {seq: p for seq, p, _ in _final_results(campaigns.db, "screen")}
        assert info["best"]["yield"]["parameters"] == seq_parameters[best["seq"]]
    assert info["hypotheses_source"] == "model" and info["lab"] == "simulator lookup" and not info["station"]
    assert list(info["parameters"]["parameter"]) == ["catalyst", "temperature", "loading"]
    assert list(info["parameters"]["values"]) == ["A, B, C", "20, 40, 60, 80", "1, 2, 5"]
    assert list(info["parameters"]["unit"]) == ["", "degC", "mol%"]
    assert info["objectives"].to_dict("records") == [
        {"objective": "yield", "direction": "maximize", "unit": "%", "target": None}
    ]
    with pytest.raises(CampaignNotFound, match=r"no campaign 'nope'.*h6, screen"):
        review.overview(campaigns.db, "nope")


@pytest.mark.parametrize(("name", "objective", "pick"), [("h6", "y", min), ("screen", "yield", max)])
def test_best_so_far_follows_the_objective_direction(campaigns: Campaigns, name: str, objective: str, pick) -> None:
    frame = review.best_so_far(campaigns.db, name)
    results = _final_results(campaigns.db, name)
    assert list(frame["seq"]) == [seq for seq, _, _ in results]
    assert list(frame["n"]) == list(range(1, len(results) + 1))
    values = [v[objective] for _, _, v in results]
    assert list(frame["value"]) == values
    expected = [pick(values[: i + 1]) for i in range(len(values))]
    assert list(frame["best"]) == expected
    for row in frame.itertuples():
        assert values[[s for s, _, _ in results].index(row.best_seq)] == row.best
    assert list(frame["improved"]) == [i == 0 or expected[i] != expected[i - 1] for i in range(len(values))]
    with campaigns.db.session() as session:
        recorded = session.scalars(
            select(Cycle.best).where(Cycle.campaign_id == _campaign_id(campaigns.db, name)).order_by(Cycle.index)
        ).all()[-1]
    assert (frame["best"].iloc[-1], frame["best_seq"].iloc[-1]) == (
        recorded[objective]["value"],
        recorded[objective]["seq"],
    )


def test_parameter_influence_is_rank_correlation_and_level_spread(campaigns: Campaigns) -> None:
    frame = review.parameter_influence(campaigns.db, "screen").set_index("parameter")
    results = _final_results(campaigns.db, "screen")
    y = [v["yield"] for _, _, v in results]
    assert set(frame["n"]) == {15}

    catalyst = frame.loc["catalyst"]
    levels: dict[str, list[float]] = {}
    for (_, p, _), value in zip(results, y, strict=True):
        levels.setdefault(p["catalyst"], []).append(value)
    means = {k: float(np.mean(v)) for k, v in levels.items()}
    assert catalyst["method"] == "level spread"
    assert catalyst["level_means"] == pytest.approx(means)
    assert catalyst["effect"] == pytest.approx(max(means.values()) - min(means.values()))
    assert catalyst["best_level"] == max(means, key=means.get) == "C"  # yield is maximised: the highest mean
    between = sum(len(v) * (means[k] - np.mean(y)) ** 2 for k, v in levels.items())
    assert catalyst["strength"] == pytest.approx(math.sqrt(between / np.sum((np.array(y) - np.mean(y)) ** 2)))
    assert 0 < catalyst["p_value"] < 1

    for name in ("temperature", "loading"):
        row = frame.loc[name]
        rho, p = stats.spearmanr([params[name] for _, params, _ in results], y)
        assert row["method"] == "spearman"
        assert (row["effect"], row["strength"], row["p_value"]) == pytest.approx((rho, abs(rho), p))
    assert frame.loc["temperature", "effect"] > 0.5  # yield rises with temperature in the table
    assert frame.loc["temperature", "unit"] == "degC"

    h6 = review.parameter_influence(campaigns.db, "h6")
    assert list(h6["parameter"]) == [f"x{i}" for i in range(1, 7)]
    assert set(h6["method"]) == {"spearman"} and set(h6["n"]) == {8}
    assert ((h6["strength"] >= 0) & (h6["strength"] <= 1)).all()


def test_parameter_influence_says_when_it_cannot_say() -> None:
    assert "too few" in review._rank_correlation([1.0, 2.0], [3.0, 4.0])["note"]
    constant = review._rank_correlation([1.0, 1.0, 1.0], [3.0, 4.0, 5.0])
    assert math.isnan(constant["effect"]) and constant["note"] == "the parameter never varied"
    single = review._level_spread(["A", "A"], [1.0, 2.0], "maximize")
    assert math.isnan(single["effect"]) and "nothing to compare" in single["note"]
    lowest = review._level_spread(["A", "A", "B"], [1.0, 2.0, 9.0], "minimize")
    assert lowest["best_level"] == "A" and lowest["effect"] == 7.5 and lowest["note"] == "one result only for: B"


def test_predictions_and_calibration_match_the_measurements(campaigns: Campaigns) -> None:
    points = review.predictions(campaigns.db, "screen")
    campaign_id = _campaign_id(campaigns.db, "screen")
    with campaigns.db.session() as session:
        rows = session.execute(
            select(Experiment.seq, Measurement.value, Measurement.predicted_mean, Measurement.predicted_std)
            .join(Experiment, Measurement.experiment_id == Experiment.id)
            .where(Experiment.campaign_id == campaign_id, Measurement.predicted_mean.is_not(None))
            .order_by(Experiment.seq)
        ).all()
        expected_summary = {name: c.as_dict() for name, c in status_calibration(session, campaign_id).items()}
    assert len(points) == len(rows) == 10  # the first batch (cycle 1) was planned without a model
    assert list(
        zip(points["seq"], points["observed"], points["predicted_mean"], points["predicted_std"], strict=True)
    ) == [tuple(r) for r in rows]
    z = [(value - mean) / std for _, value, mean, std in rows]
    assert list(points["z"]) == pytest.approx(z)
    assert list(points["within_2sd"]) == [abs(v) <= 2 for v in z]
    summary = review.calibration(points).set_index("objective")
    assert summary.loc["yield", "predictions"] == expected_summary["yield"]["predictions"]
    assert summary.loc["yield", "within_1sd"] == pytest.approx(expected_summary["yield"]["within_1sd"])
    assert summary.loc["yield", "within_2sd"] == pytest.approx(expected_summary["yield"]["within_2sd"])
    assert summary.loc["yield", "mean_z"] == pytest.approx(np.mean(z))


def test_hypothesis_ledger_is_the_credence_history(campaigns: Campaigns) -> None:
    ledger = review.hypothesis_ledger(campaigns.db, "screen")
    table = review.hypotheses(campaigns.db, "screen")
    campaign_id = _campaign_id(campaigns.db, "screen")
    with campaigns.db.session() as session:
        cycles = dict(session.execute(select(Cycle.id, Cycle.index).where(Cycle.campaign_id == campaign_id)).all())
        records = session.execute(
            select(HypothesisCredence, Hypothesis)
            .join(Hypothesis, HypothesisCredence.hypothesis_id == Hypothesis.id)
            .where(Hypothesis.campaign_id == campaign_id)
            .order_by(HypothesisCredence.id)
        ).all()
        accepted = session.scalars(
            select(Hypothesis)
            .where(Hypothesis.campaign_id == campaign_id, Hypothesis.status != "rejected")
            .order_by(Hypothesis.id)
        ).all()
        assert records and accepted
        assert list(ledger["hypothesis_id"]) == [h.id for _, h in records]
        assert list(ledger["credence"]) == [c.credence for c, _ in records]
        assert list(ledger["cycle"]) == [cycles[c.cycle_id] for c, _ in records]
        assert list(ledger["evidence"]) == [c.evidence for c, _ in records]
        assert list(ledger["statement"]) == [h.statement for _, h in records]
        assert list(ledger["status"]) == [h.status for _, h in records]  # the final status, on every row
        assert list(table["hypothesis_id"]) == [h.id for h in accepted]
        assert list(table["status"]) == [h.status for h in accepted]
        assert list(table["proposed_in_cycle"]) == [cycles[h.cycle_id] for h in accepted]
    # A claim gets a credence when proposed and another after its first cycle's results: records 1 and 2 there.
    for hypothesis in table.itertuples():
        mine = ledger[ledger["hypothesis_id"] == hypothesis.hypothesis_id]
        assert list(mine[mine["cycle"] == hypothesis.proposed_in_cycle]["record"]) == [1, 2]
        assert mine["evidence"].iloc[0] == 0
    assert review.hypothesis_thresholds(campaigns.db, "screen") == (0.05, 0.95)

    assert review.hypothesis_ledger(campaigns.db, "h6").empty
    assert list(review.hypothesis_ledger(campaigns.db, "h6").columns) == review.LEDGER_COLUMNS
    assert review.hypotheses(campaigns.db, "h6").empty


def test_replay_table_is_replays_rows_or_one_row_saying_why_not(campaigns: Campaigns, monkeypatch) -> None:
    table = review.replay_table(campaigns.db, "h6")
    with campaigns.db.session() as session:
        decisions = session.scalars(
            select(Decision).where(Decision.campaign_id == _campaign_id(campaigns.db, "h6")).order_by(Decision.id)
        ).all()
    assert list(table.columns) == review.REPLAY_COLUMNS
    assert list(table["decision_id"]) == [d.id for d in decisions]
    assert list(table["proposals"]) == [len(d.proposals) for d in decisions]
    assert set(table["status"]) <= {"match", "mismatch"}
    assert table.attrs["finished"] is True and table.attrs["error"] is None
    for row, decision in zip(table.itertuples(), decisions, strict=True):
        assert row.recorded == [p["parameters"] for p in decision.proposals]

    import orchestrator.review.replay

    def broken(db: Any, ref: str, planner: Any = None) -> Any:
        raise orchestrator.review.replay.ArtifactError("artifact 1234abcd of decision 2 is missing")

    monkeypatch.setattr(orchestrator.review.replay, "replay_campaign", broken)
    failed = review.replay_table(campaigns.db, "h6")
    assert len(failed) == 1 and failed["status"].iloc[0] == "error"
    assert failed["note"].iloc[0] == "replay failed: ArtifactError: artifact 1234abcd of decision 2 is missing"
    assert failed.attrs["error"] == "ArtifactError: artifact 1234abcd of decision 2 is missing"
    with pytest.raises(CampaignNotFound):
        review.replay_table(campaigns.db, "nope")  # the caller's mistake is not hidden as a replay failure


def test_instrument_timeline_pairs_each_action_with_its_outcome(tmp_path: Path) -> None:
    # The journal's events as a station writes them, including a failure and an action whose outcome never came.
    db = open_database(f"sqlite:///{tmp_path / 'journal.db'}")
    campaign_id = _run(db, hartmann_spec(name="journal", budget={"experiments": 2, "batch_size": 2}), tmp_path)
    with db.session() as session:
        first, second = session.scalars(
            select(Experiment).where(Experiment.campaign_id == campaign_id).order_by(Experiment.seq)
        ).all()
        journal = [
            (first, "action-started", {"attempt": 1, "step": 0, "instrument": "pump", "action": "dispense"}),
            (second, "action-started", {"attempt": 1, "step": 0, "instrument": "hotplate", "action": "set_speed"}),
            (
                first,
                "action-done",
                {"attempt": 1, "step": 0, "instrument": "pump", "action": "dispense", "seconds": 0.5},
            ),
            (
                second,
                "action-failed",
                {
                    "attempt": 1,
                    "step": 0,
                    "instrument": "hotplate",
                    "action": "set_speed",
                    "error": "timeout",
                    "message": "hotplate: no answer in 1 s",
                    "seconds": 1.0,
                },
            ),
            (second, "action-started", {"attempt": 2, "step": 0, "instrument": "hotplate", "action": "set_speed"}),
        ]
        for experiment, kind, detail in journal:
            add_event(session, campaign_id, "experiment", experiment.id, kind, detail=detail)
            session.flush()
    timeline = review.instrument_timeline(db, "journal")
    assert list(timeline.columns) == review.TIMELINE_COLUMNS
    assert list(timeline["instrument"]) == ["pump", "hotplate", "hotplate"]
    assert list(timeline["seq"]) == [1, 2, 2] and list(timeline["attempt"]) == [1, 1, 2]
    assert list(timeline["failed"]) == [False, True, False]
    assert timeline["error"].iloc[1] == "timeout" and timeline["message"].iloc[1] == "hotplate: no answer in 1 s"
    assert pd.isna(timeline["error"].iloc[0])
    assert pd.isna(timeline["end"].iloc[2]) and timeline["error"].iloc[2] == "no outcome recorded"
    assert timeline["start_s"].iloc[0] == 0 and (timeline["end_s"].iloc[:2] >= timeline["start_s"].iloc[:2]).all()
    assert list(timeline["seconds"].iloc[:2]) == [0.5, 1.0]
    figure = timeline_figure(timeline)
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["pump", "hotplate"]
    marks = [line for line in figure.axes[0].get_lines() if line.get_marker() == "x"]
    assert len(marks) == 2  # the failed action and the one with no outcome
    assert review.instrument_timeline(db, "journal").equals(timeline)
    db.dispose()


# --- plots --------------------------------------------------------------------------------------------------------


def _check_figure(figure: ReviewFigure, title: str, xlabel: str, ylabel: str) -> None:
    assert isinstance(figure, ReviewFigure)
    axes = figure.axes[0]
    assert title in axes.get_title()
    assert xlabel in axes.get_xlabel() and ylabel in axes.get_ylabel()
    caption = figure.caption
    assert caption.endswith(".") and ". " not in caption[:-1] and len(caption) > 40  # one sentence
    assert figure.png().startswith(b"\x89PNG")


def test_plots_have_titles_labels_with_units_and_a_caption(campaigns: Campaigns) -> None:
    db = campaigns.db
    _check_figure(best_so_far_figure(review.best_so_far(db, "screen")), "Best so far: yield", "results", "yield [%]")
    _check_figure(
        influence_figure(review.parameter_influence(db, "screen")), "influence on yield", "strength", "parameter"
    )
    influence_labels = [
        t.get_text() for t in influence_figure(review.parameter_influence(db, "screen")).axes[0].get_yticklabels()
    ]
    assert "temperature [degC]" in influence_labels
    _check_figure(
        calibration_figure(review.predictions(db, "screen")), "Calibration of yield", "observed yield [%]", "[%]"
    )
    ledger = review.hypothesis_ledger(db, "screen")
    credence = credence_figure(ledger, (0.05, 0.95))
    _check_figure(credence, "credences", "cycle", "credence")
    levels = {line.get_ydata()[0] for line in credence.axes[0].get_lines() if len(set(line.get_ydata())) == 1}
    assert {0.05, 0.95} <= levels  # the refute and support thresholds
    assert len(credence.legends[0].get_texts()) == ledger["hypothesis_id"].nunique()
    # Nothing to show is a figure that says so, not an error.
    for figure in (
        best_so_far_figure(pd.DataFrame(columns=review.BEST_COLUMNS)),
        calibration_figure(review.predictions(db, "h6").iloc[0:0]),
        credence_figure(review.hypothesis_ledger(db, "h6")),
        timeline_figure(review.instrument_timeline(db, "h6")),
    ):
        assert figure.axes[0].get_title() and figure.axes[0].texts and figure.caption


# --- the report ---------------------------------------------------------------------------------------------------


def _check_self_contained(page: str) -> list[bytes]:
    assert 'src="http' not in page and "src='http" not in page
    assert "<link" not in page and "<script" not in page and "@import" not in page and "url(" not in page
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    images = [base64.b64decode(s.split(",", 1)[1], validate=True) for s in sources]
    assert all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    for key, _ in SECTIONS:
        assert f'<section id="{key}">' in page, key
    return images


def test_report_is_one_self_contained_file_with_every_section(campaigns: Campaigns, tmp_path: Path) -> None:
    path = write_report(campaigns.db, "h6", tmp_path / "h6.html")
    page = path.read_text(encoding="utf-8")
    images = _check_self_contained(page)
    assert len(images) == 3  # best so far, influence, calibration: no hypotheses, no station
    assert "This campaign has no hypotheses: its spec says `hypotheses: none`" in page
    assert "No station ran this campaign: its lab is a simulator hartmann6" in page
    assert "Replay re-derived 2 planning decision(s) from the record" in page
    assert page.count('<td class="match">match</td>') + page.count('<td class="mismatch">mismatch</td>') == 2
    info = review.overview(campaigns.db, "h6")
    assert f"spec hash {info['spec_hash']}" in page and info["stop_reason"] in page
    assert "<figcaption>Each dot is one completed experiment" in page

    page = write_report(campaigns.db, "screen", tmp_path / "screen.html").read_text(encoding="utf-8")
    assert len(_check_self_contained(page)) == 4  # and the credences
    assert "no hypotheses" not in page
    for statement in review.hypotheses(campaigns.db, "screen")["statement"]:
        assert html.escape(statement) in page  # every cell is escaped
    assert "<pre>name: screen" in page


def test_report_refuses_an_unknown_campaign_or_a_missing_folder(campaigns: Campaigns, tmp_path: Path) -> None:
    with pytest.raises(CampaignNotFound, match="no campaign 'nope'"):
        write_report(campaigns.db, "nope", tmp_path / "nope.html")
    assert not (tmp_path / "nope.html").exists()
    import typer

    app = typer.Typer()
    app.command()(report_command)
    runner = CliRunner()
    out = tmp_path / "cli.html"
    result = runner.invoke(app, ["nope", "--out", str(out), "--db", campaigns.url])
    assert isinstance(result.exception, CampaignNotFound) and not out.exists()
    assert "\n" not in str(result.exception)
    result = runner.invoke(app, ["h6", "--out", str(tmp_path / "missing" / "r.html"), "--db", campaigns.url])
    assert "--out: folder" in str(result.exception)
    result = runner.invoke(app, ["h6", "--out", str(out), "--db", campaigns.url, "--skip-replay"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output.replace("\n", "")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Replay was not run for this report." in page
    _check_self_contained(page)


# --- the notebook -------------------------------------------------------------------------------------------------


def test_the_stored_notebook_has_no_outputs_and_takes_its_parameters_from_the_environment() -> None:
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    parameters = code[0]
    assert "parameters" in parameters.metadata.get("tags", [])
    assert 'DB_URL = os.environ.get("PEIRCE_DB_URL"' in parameters.source
    assert 'CAMPAIGN = os.environ.get("PEIRCE_CAMPAIGN"' in parameters.source
    source = "\n".join(c.source for c in code)
    for function in (
        "best_so_far",
        "parameter_influence",
        "predictions",
        "hypothesis_ledger",
        "instrument_timeline",
        "replay_table",
    ):
        assert f"review.{function}(" in source


def _python3_kernel() -> None:
    """Make sure a `python3` kernel spec exists for this interpreter (installed into the venv if missing)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], check=True, capture_output=True)


@pytest.mark.slow
def test_the_notebook_runs_on_a_campaign_and_shows_its_plots(
    campaigns: Campaigns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    _python3_kernel()
    stored = NOTEBOOK.read_bytes()
    copy = tmp_path / "review.ipynb"
    shutil.copyfile(NOTEBOOK, copy)
    monkeypatch.setenv("PEIRCE_DB_URL", campaigns.url)
    monkeypatch.setenv("PEIRCE_CAMPAIGN", "screen")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch: one thread, as the campaign was planned
    notebook = nbformat.read(copy, as_version=4)
    NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # best so far, influence, calibration, credences (no station)
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("text", "")) for o in outputs)
    assert "No station ran this campaign" in text and "name: screen" in text
    assert NOTEBOOK.read_bytes() == stored  # executed a copy: the stored notebook is untouched


# --- a station ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_station_campaign_timeline_and_report(tmp_path: Path) -> None:
    from tests.instruments.station_specs import station_spec, station_yaml

    db = open_database(f"sqlite:///{tmp_path / 'station.db'}")
    knobs = {"name": "station_review", "experiments": 3, "batch_size": 3, "time_scale": 6000, "seed": 1}
    campaign_id, _ = open_campaign(db, station_spec(**knobs), station_yaml(**knobs))
    runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id)
    assert run_loop(ctx, InlineStages(ctx)) == "budget of 3 experiments spent"

    timeline = review.instrument_timeline(db, "station_review")
    with db.session() as session:
        events = session.scalars(
            select(Event)
            .where(Event.campaign_id == campaign_id, Event.kind.in_(review.ACTION_KINDS))
            .order_by(Event.id)
        ).all()
        experiments = session.scalars(select(Experiment).where(Experiment.campaign_id == campaign_id)).all()
    started = [e for e in events if e.kind == "action-started"]
    assert len(timeline) == len(started) and len(events) == 2 * len(started)
    assert list(zip(timeline["instrument"], timeline["action"], strict=True)) == [
        (e.detail["instrument"], e.detail["action"]) for e in started
    ]
    assert set(timeline["instrument"]) == {"pump", "hotplate", "balance", "photometer"}
    failed = {(e.entity_id, e.detail["attempt"], e.detail["step"]) for e in events if e.kind == "action-failed"}
    assert int(timeline["failed"].sum()) == len(failed)
    assert (timeline["end"] >= timeline["start"]).all() and timeline["start_s"].min() == 0
    # Each completed experiment's final attempt ran the whole protocol: nine actions (the tenth step is a wait).
    for experiment in experiments:
        assert experiment.state == ExperimentState.COMPLETED
        last = timeline[(timeline["seq"] == experiment.seq) & (timeline["attempt"] == experiment.attempts)]
        assert len(last) == 9 and not last["failed"].any() and list(last["step"]) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    # One experiment at a time on an instrument: its actions never overlap.
    for _, rows in timeline.sort_values("start").groupby("instrument"):
        assert (rows["start"].iloc[1:].to_numpy() >= rows["end"].iloc[:-1].to_numpy()).all()

    figure = timeline_figure(timeline)
    _check_figure(figure, "Instrument timeline", "[s]", "instrument")
    best = best_so_far_figure(review.best_so_far(db, "station_review"))
    assert best.axes[0].get_ylabel() == "yield [%]"
    page = write_report(db, "station_review", tmp_path / "station.html").read_text(encoding="utf-8")
    assert len(_check_self_contained(page)) == 3  # best so far, influence, timeline (random: no predictions)
    assert "No station ran" not in page and 'alt="Instrument timeline"' in page
    assert "No measured value of this campaign carried a prediction" in page
    db.dispose()
