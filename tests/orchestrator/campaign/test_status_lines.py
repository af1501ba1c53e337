"""What `peirce status` prints about a campaign's runner and its instruments, beyond the counts (issue 14, 5 and 8):
dispenses sent and never confirmed are named, by experiment and action."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cycle.context import load_context, open_campaign
from orchestrator.cycle.deduce import deduce
from orchestrator.cycle.recovery import recover, start_cycle
from orchestrator.store.database import open_database
from orchestrator.store.models import Experiment, ExperimentState
from orchestrator.store.records import add_event, move_experiment
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec
from tests.orchestrator.cli.helpers import invoke


def test_status_names_the_dispenses_left_unconfirmed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'u.db'}"
    db = open_database(url)
    spec, text = to_spec(hartmann_spec(budget={"experiments": 4, "batch_size": 2}), EXAMPLES_DIR)
    campaign_id, _ = open_campaign(db, spec, text)
    ctx = load_context(db, campaign_id)
    unconfirmed, confirmed = deduce(ctx, start_cycle(ctx), 2)
    dispense = {"step": 0, "instrument": "pump", "action": "dispense", "args": {"volume_ml": 1.5}}
    with db.session() as session:  # both sent; one confirmed; then the runner dies
        for experiment_id in (unconfirmed, confirmed):
            move_experiment(session, session.get_one(Experiment, experiment_id), ExperimentState.DISPATCHED)
            add_event(session, campaign_id, "experiment", experiment_id, "action-started", detail=dispense)
        add_event(session, campaign_id, "experiment", confirmed, "action-done", detail={**dispense, "result": {}})
        seq = session.get_one(Experiment, unconfirmed).seq
    recover(ctx)  # what the next resume does first: both abandoned in doubt, one with its dispense unconfirmed
    db.dispose()
    shown = invoke("status", "h6", "--db", url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "  pump: 1 actions done; failed: none" in lines
    assert (
        f"  unconfirmed: 1 action sent and never confirmed (#{seq} pump.dispense); "
        "check the instruments before reusing what they touched"
    ) in lines
