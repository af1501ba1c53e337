"""What Prefect's UI shows of a campaign: its flow run named after it, task runs named after cycle and experiment,
the cycle lines in the run's logs, and per-cycle artifacts (the batch, the best so far, the hypotheses) under keys
that stay the same for the campaign.

The end-to-end test runs `peirce run --engine prefect` against a real Prefect server (tests/prefect/server.py: the
module's own, or CI's) and reads what the UI reads through Prefect's client API; what it expects is read from the
database with SQL, not with the code under test."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import Artifact, FlowRun, Log, StateType
from prefect.client.schemas.sorting import LogSort
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import create_engine, text

from orchestrator.cycle.prefect_artifacts import REPORT_URL_ENV, artifact_key, report_pointer
from tests.campaigns import hartmann_spec, write_spec
from tests.orchestrator.cli.helpers import PEIRCE
from tests.prefect.server import prefect_env  # noqa: F401 (the real server's fixture)

RUN_DEADLINE_S = 300.0  # Prefect's start and three cycles of a Bayesian planner on two shared cores
LOGS_DEADLINE_S = 30.0  # the runner's log worker sends its last batch as the process ends
NAME = "h6_ui"  # a name with an underscore: its keys have a dash there

# --- keys and the report's pointer, without a server ------------------------------------------------------------


def test_keys_are_lowercase_dashes_and_stay_apart_for_names_lowercasing_would_merge() -> None:
    assert artifact_key("h6_ui", "batch") == "campaign-h6-ui-batch"
    assert artifact_key("_x", "best") == "campaign--x-best"
    upper, lower = artifact_key("Run_A", "batch"), artifact_key("run_a", "batch")
    assert upper != lower and lower == "campaign-run-a-batch"
    assert all(re.fullmatch("[a-z0-9-]+", key) for key in (upper, lower))


def test_the_report_is_a_link_where_a_lab_serves_reports_else_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REPORT_URL_ENV, raising=False)
    assert report_pointer("h6") == "Full report: run `peirce report h6` (it writes h6-report.html)."
    monkeypatch.setenv(REPORT_URL_ENV, "https://lab.example/reports/")
    assert report_pointer("h6") == "Full report: [h6-report.html](https://lab.example/reports/h6-report.html)"


# --- end to end, against a real Prefect server ------------------------------------------------------------------


@pytest.mark.slow
def test_prefect_shows_the_campaigns_runs_logs_and_artifacts(
    prefect_env: dict[str, str],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    budget = {"experiments": 9, "batch_size": 3}
    hypotheses = {"source": "model", "min_observations": 3}  # proposed from cycle 2 on
    data = hartmann_spec(name=NAME, planner={"kind": "bayesian", "seed": 7}, hypotheses=hypotheses, budget=budget)
    spec = write_spec(tmp_path / "c.yaml", data)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    env = {key: value for key, value in prefect_env.items() if key not in ("PEIRCE_DB_URL", REPORT_URL_ENV)}
    run = [PEIRCE, "run", str(spec), "--db", url, "--engine", "prefect"]
    ran = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE_S)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert f"{NAME} finished: budget of 9 experiments spent" in ran.stdout
    db = _read(url)

    with temporary_settings(updates={PREFECT_API_URL: prefect_env["PREFECT_API_URL"]}):
        with get_client(sync_client=True) as client:
            [flow_run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[NAME])))
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
            artifacts = {
                kind: client.read_artifacts(
                    artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(NAME, kind)]))
                )
                for kind in ("batch", "best", "hypotheses")
            }
        messages = [log.message for log in _logs(flow_run)]

    # The flow run is the campaign's, with its id as the only parameter; task runs by cycle and by seq.
    assert flow_run.state is not None and flow_run.state.type == StateType.COMPLETED
    assert flow_run.parameters == {"campaign_id": db["campaign_id"]}
    cycles = [row["index"] for row in db["cycles"]]
    assert cycles == [1, 2, 3]
    expected = {f"{stage}-c{i}" for i in cycles for stage in ("abduce", "deduce", "induce")}
    expected |= {f"experiment-{row['seq']}" for row in db["experiments"]}
    assert sorted(t.name for t in task_runs) == sorted(expected)

    # The cycle lines the terminal shows, in order, then the hypothesis news and the end, in the run's logs.
    for cycle in db["cycles"]:
        [(objective, best)] = json.loads(cycle["best"]).items()
        mark = " (improved)" if cycle["improved"] else ""
        spent = 3 * cycle["index"]
        line = f"cycle {cycle['index']}  {spent}/9 experiments  best {objective} = {best['value']:.4g} (#{best['seq']})"
        assert line + mark in messages, messages
        assert f"cycle {cycle['index']}: 3 experiments planned (" in "\n".join(messages)
    for hypothesis in db["hypotheses"]:
        news = f"  hypothesis {hypothesis['id']} proposed ({hypothesis['source']}): {hypothesis['statement']}"
        assert news in messages, messages
    assert f"{NAME} stops: budget of 9 experiments spent" in messages
    assert not [m for m in messages if str(tmp_path) in m or "sqlite" in m]  # no database URL in Prefect's records

    # The batch table: one version per cycle, each the cycle's experiments as the database has them.
    batches = sorted(artifacts["batch"], key=lambda a: a.created or 0)
    assert [a.flow_run_id for a in batches] == [flow_run.id] * 3
    for cycle, artifact in zip(db["cycles"], batches, strict=True):
        rows = [e for e in db["experiments"] if e["cycle_id"] == cycle["id"]]
        assert _table(artifact) == [_expected_row(e, db["measured"].get(e["id"])) for e in rows]
        assert "peirce report h6_ui" in (artifact.description or "")
    assert any(row["y predicted"] for row in _table(batches[-1]))  # the Bayesian planner predicted cycle 3

    # The best so far and the hypotheses: one version per cycle; the latest says how the campaign ended.
    assert len(artifacts["best"]) == 3 and len(artifacts["hypotheses"]) == 3
    latest_best = max(artifacts["best"], key=lambda a: a.created or 0).data
    [(objective, best)] = json.loads(db["cycles"][-1]["best"]).items()
    assert f"| {objective} (minimize) | {best['value']:.4g} | #{best['seq']} |" in str(latest_best)
    assert "The campaign stops: budget of 9 experiments spent." in str(latest_best)
    assert "Full report: run `peirce report h6_ui`" in str(latest_best)
    by_cycle = {c["id"]: c["index"] for c in db["cycles"]}
    hypothesis_notes = sorted(artifacts["hypotheses"], key=lambda a: a.created or 0)
    proposed = [h for h in db["hypotheses"] if h["cycle_id"] is not None]
    assert proposed, "the campaign proposed no hypothesis: the artifact's rows are not tested"
    for hypothesis in proposed:
        note = str(hypothesis_notes[by_cycle[hypothesis["cycle_id"]] - 1].data)
        assert f"| {hypothesis['id']} | {hypothesis['statement']} | " in note, note
    assert "No hypothesis changed this cycle." in str(hypothesis_notes[0].data)


@pytest.mark.slow
def test_the_inline_engine_publishes_nothing_to_prefect(
    prefect_env: dict[str, str],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    name = "h6_inline"
    spec = write_spec(tmp_path / "c.yaml", hartmann_spec(name=name, budget={"experiments": 2, "batch_size": 2}))
    env = {key: value for key, value in prefect_env.items() if key != "PEIRCE_DB_URL"}
    run = [PEIRCE, "run", str(spec), "--db", f"sqlite:///{tmp_path / 'c.db'}", "--engine", "inline"]
    ran = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE_S)
    assert ran.returncode == 0, ran.stderr[-3000:]
    keys = [artifact_key(name, kind) for kind in ("batch", "best", "hypotheses")]
    api = {PREFECT_API_URL: prefect_env["PREFECT_API_URL"]}
    with temporary_settings(updates=api), get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    assert (found, runs) == ([], [])


def _read(url: str) -> dict[str, Any]:
    """The campaign's cycles, experiments, final measurements and hypotheses, straight from its tables."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            campaign_id = conn.execute(text("SELECT id FROM campaigns WHERE name = :n"), {"n": NAME}).scalar_one()
            cycles = conn.execute(
                text('SELECT id, "index", best, improved FROM cycles WHERE campaign_id = :c ORDER BY "index"'),
                {"c": campaign_id},
            )
            experiments = conn.execute(
                text(
                    "SELECT id, cycle_id, seq, parameters, predicted, state, attempts FROM experiments"
                    " WHERE campaign_id = :c ORDER BY seq"
                ),
                {"c": campaign_id},
            )
            measured = conn.execute(
                text(
                    "SELECT m.experiment_id, m.value FROM measurements m JOIN experiments e ON e.id = m.experiment_id"
                    " WHERE e.campaign_id = :c AND m.attempt = e.attempts AND m.name = 'y'"
                ),
                {"c": campaign_id},
            )
            hypotheses = conn.execute(
                text("SELECT id, cycle_id, source, statement FROM hypotheses WHERE campaign_id = :c ORDER BY id"),
                {"c": campaign_id},
            )
            return {
                "campaign_id": campaign_id,
                "cycles": [dict(row._mapping) for row in cycles],
                "experiments": [dict(row._mapping) for row in experiments],
                "measured": dict(measured.all()),
                "hypotheses": [dict(row._mapping) for row in hypotheses],
            }
    finally:
        engine.dispose()


def _expected_row(experiment: dict[str, Any], measured: float | None) -> dict[str, Any]:
    predicted = json.loads(experiment["predicted"] or "null") or {}  # a JSON null without a prediction
    y = predicted.get("y")
    shown = f"{y['mean']:.4g} ± {y['std']:.4g}" if y and y.get("mean") is not None else ""
    return {
        "seq": experiment["seq"],
        **{f"x{i}": json.loads(experiment["parameters"])[f"x{i}"] for i in range(1, 7)},
        "y predicted": shown,
        "y measured": measured,
        "state": experiment["state"],
    }


def _table(artifact: Artifact) -> list[dict[str, Any]]:
    data = artifact.data
    return list(json.loads(data) if isinstance(data, str) else data)  # type: ignore[arg-type]


def _logs(flow_run: FlowRun) -> list[Log]:
    """The flow run's logs, oldest first, once the runner's last batch has arrived (its end-of-run line)."""
    deadline = time.monotonic() + LOGS_DEADLINE_S
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])),
                sort=LogSort.TIMESTAMP_ASC,
            )
        if any("stops:" in log.message for log in logs) or time.monotonic() > deadline:
            return logs
        time.sleep(0.5)
