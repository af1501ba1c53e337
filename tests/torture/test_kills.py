"""Random SIGKILLs on both engines and a SIGKILL right after a station dispense's write-ahead record, each followed
by `peirce resume` to the end of the budget (issue 14: "What held" and "What broke" 4).

A bounded run of `benchmarks/torture.py`: a few kills per engine (random planner) and one during a station dispense.
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
    # Two kills inline and one during a station dispense; one on Prefect, whose start costs seconds more (its
    # server's death under SIGKILL, SIGTERM and Ctrl-C is tested on its own in test_flow_server.py).
    inline = torture(2, 1, 0, engines=("inline",), planners=("random",), seed=14, workdir=tmp_path / "inline")
    prefect = torture(1, 0, 0, engines=("prefect",), planners=("random",), seed=14, workdir=tmp_path / "prefect")
    assert inline.kills["inline"] == 2 and inline.kills["station"] == 1, inline.kills
    assert prefect.kills["prefect"] == 1, prefect.kills
    assert inline.dispenses_received >= 1
    assert inline.violations == {} and prefect.violations == {}
