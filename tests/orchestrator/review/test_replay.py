"""Replay: every planning decision re-derived from its record matches; a changed record is caught and named;
another planner can be asked what it would have done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from orchestrator.errors import CampaignNotFound
from orchestrator.review.replay import replay_campaign
from orchestrator.store.models import Artifact, Campaign, CampaignStatus, Decision
from tests.campaigns import hartmann_spec
from tests.orchestrator.cli.helpers import invoke
from tests.orchestrator.ledger.test_hypotheses import _run, _screen_spec

BAYES = {"kind": "bayesian", "seed": 3, "num_restarts": 2, "raw_samples": 64, "mc_samples": 64}


@pytest.fixture
def hartmann(sqlite_url: str, tmp_path: Path) -> Any:
    data = hartmann_spec(budget={"experiments": 9, "batch_size": 3}, planner=BAYES)
    db, _ = _run(sqlite_url, data, tmp_path)
    return db


def test_every_decision_of_a_bayesian_campaign_is_rederived_exactly(hartmann: Any) -> None:
    report = replay_campaign(hartmann, "h6")
    assert report.finished and report.all_match()
    assert [r.status for r in report.rows] == ["match"] * 3
    assert all(r.max_difference == 0.0 and r.recorded == r.rederived for r in report.rows)


def test_a_campaign_with_hypotheses_replays_its_abductions_and_its_planning(sqlite_url: str, tmp_path: Path) -> None:
    settings = {"source": "model", "min_observations": 5, "max_new_per_cycle": 2, "posterior_samples": 128}
    db, _ = _run(sqlite_url, _screen_spec(tmp_path, settings, budget={"experiments": 15, "batch_size": 5}), tmp_path)
    report = replay_campaign(db, "screen")
    stages = {r.stage for r in report.rows}
    assert stages == {"abduce", "deduce"}
    abductions = [r for r in report.rows if r.stage == "abduce"]
    assert abductions and all(r.status == "match" for r in abductions), [(r.status, r.note) for r in abductions]
    assert report.all_match()
    assert any("hypothesis test(s) chosen again" in r.note for r in report.rows)


def test_changed_results_are_caught_by_the_data_hash(hartmann: Any) -> None:
    with hartmann.engine.begin() as connection:
        connection.execute(text("UPDATE measurements SET value = value + 1 WHERE id = 1"))
    report = replay_campaign(hartmann, "h6")
    assert not report.all_match()
    assert "data hash differs" in report.rows[1].note  # cycle 2 saw the changed result; cycle 1 saw none


def test_a_missing_or_changed_artifact_is_named(hartmann: Any) -> None:
    with hartmann.session() as session:
        decision = session.scalars(select(Decision).order_by(Decision.id.desc())).first()
        sha = decision.artifacts["model_state"]
    assert not hartmann.artifacts.path(sha).exists()  # in the database, not in a folder beside it
    with hartmann.session() as session:
        row = session.get_one(Artifact, sha)
        row.content = row.content.replace(b"}", b" }", 1)
    assert f"artifact {sha} has been changed" in replay_campaign(hartmann, "h6").rows[-1].note
    with hartmann.session() as session:
        session.delete(session.get_one(Artifact, sha))
    assert f"artifact {sha} is missing" in replay_campaign(hartmann, "h6").rows[-1].note


def test_another_planner_is_asked_at_every_cycle(hartmann: Any) -> None:
    report = replay_campaign(hartmann, "h6", {"kind": "random"})
    assert [r.status for r in report.rows] == ["counterfactual"] * 3
    assert report.counterfactual == {"planner": {"kind": "random", "seed": 3}}
    later = report.rows[1:]
    assert all(r.recorded_value is not None and r.alternative_value is not None for r in later)
    assert all(len(r.rederived) == 3 and r.rederived != r.recorded for r in later)


def test_a_running_campaign_replays_what_is_finished(hartmann: Any) -> None:
    with hartmann.session() as session:
        session.scalars(select(Campaign)).one().status = CampaignStatus.RUNNING
    report = replay_campaign(hartmann, "h6")
    assert not report.finished and report.all_match()


def test_an_unknown_campaign_is_refused(hartmann: Any) -> None:
    with pytest.raises(CampaignNotFound, match="no campaign 'nope'"):
        replay_campaign(hartmann, "nope")


def test_the_cli_prints_the_table_and_exits_by_the_result(hartmann: Any, tmp_path: Path) -> None:
    url = str(hartmann.engine.url)
    ok = invoke("replay", "h6", "--db", url, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "3 of 3 decisions re-derived exactly" in ok.stdout
    listed = json.loads(invoke("replay", "h6", "--db", url, "--json", cwd=tmp_path).stdout)
    assert listed["all_match"] and len(listed["rows"]) == 3
    other = invoke("replay", "h6", "--db", url, "--planner", "kind: sobol", cwd=tmp_path)
    assert other.returncode == 0 and "counterfactual planner sobol" in other.stdout
    bad = invoke("replay", "h6", "--db", url, "--planner", "kind: nope", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --planner")
    with hartmann.engine.begin() as connection:
        connection.execute(text("UPDATE measurements SET value = value + 1 WHERE id = 1"))
    changed = invoke("replay", "h6", "--db", url, cwd=tmp_path)
    assert changed.returncode == 1 and "1 of 3 decisions re-derived exactly" in changed.stdout
    # The model states replay started from were read from the database, run from another folder: no folder of
    # artifacts was ever written beside the database.
    assert not hartmann.artifacts.root.exists()
    with hartmann.session() as session:
        assert session.scalar(select(func.count()).select_from(Artifact)) == 3
