"""Random SIGKILLs on both engines and a SIGKILL right after a station dispense's write-ahead record, each followed
by `peirce resume` to the end of the budget (issue 14: "What held" and "What broke" 4).

A bounded run of `benchmarks/torture.py`: a few kills per engine (random planner) and during a station dispense.
It must count no violation: no completed result lost, no idempotency key completed twice, no cycle written twice,
every budget finished, no Prefect server outliving its killed runner, every dispense the pump twin received
recorded before it was sent and, when never confirmed, named in doubt, and every process that ended on its own
ending without a traceback. Simultaneous starts are tortured in `test_runners.py`. The long version, with the
Bayesian planner and many more kills, is the script itself (its table is in docs/reliability.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from torture import torture


@pytest.mark.slow
def test_kills_lose_nothing_repeat_nothing_and_leave_no_server(tmp_path: Path) -> None:
    tally = torture(2, 1, 0, planners=("random",), seed=14, workdir=tmp_path)
    assert tally.kills["inline"] == 2 and tally.kills["prefect"] == 2 and tally.kills["station"] == 1, tally.kills
    assert tally.dispenses_received >= 1
    assert tally.violations == {}
