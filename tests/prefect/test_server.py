"""A real Prefect server on loopback: the API our flows and the `prefect` CLI speak answers list calls.

Prefect 3.8 with FastAPI 0.154 started a server whose own client was refused with HTTP 422 (`body.limit`) on
`prefect flow-run ls`, `flow ls`, `deployment ls`, `work-pool ls` and `flow.deploy()`. Nothing here is mocked:
the server is `prefect server start` in its own process, with its own PREFECT_HOME and a free port.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.prefect import server
from tests.prefect.server import PREFECT, start_worker, stop_worker

pytestmark = pytest.mark.slow
prefect_env = server.prefect_env  # the real server's fixture (tests/prefect/server.py)

FLOW_SCRIPT = """
from prefect import flow

@flow(name="peirce-server-check")
def check() -> int:
    return 42

state = check(return_state=True)
print(state.state_details.flow_run_id, state.result())
"""


def test_a_flow_run_against_the_server_is_listed_by_the_cli(prefect_env: dict[str, str]) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", FLOW_SCRIPT], env=prefect_env, capture_output=True, text=True, timeout=180
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    run_id, result = ran.stdout.split()[-2:]
    assert result == "42"

    listed = subprocess.run([PREFECT, "flow-run", "ls"], env=prefect_env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    assert run_id in listed.stdout
    assert "COMPLETED" in listed.stdout


DEPLOY_SCRIPT = """
import sys
from prefect import flow

deployment_id = flow.from_source(source=sys.argv[1], entrypoint="check.py:check").deploy(
    name="peirce-check", work_pool_name=sys.argv[2], print_next_steps=False
)
print(deployment_id)
"""


def test_a_flow_is_deployed_to_a_work_pool_listed_and_run_by_a_worker(
    prefect_env: dict[str, str], tmp_path: Path
) -> None:
    # flow.deploy() was the other call the old server refused with HTTP 422.
    (tmp_path / "check.py").write_text(FLOW_SCRIPT.split("state =")[0])
    pool_name = f"peirce-check-{uuid.uuid4().hex[:8]}"  # a server CI shares among modules may know other pools
    pool = subprocess.run(
        [PREFECT, "work-pool", "create", pool_name, "--type", "process"],
        env=prefect_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pool.returncode == 0, pool.stdout[-3000:] + pool.stderr[-3000:]
    deployed = subprocess.run(
        [sys.executable, "-c", DEPLOY_SCRIPT, str(tmp_path), pool_name],
        env=prefect_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    listed = subprocess.run([PREFECT, "deployment", "ls"], env=prefect_env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    assert "peirce-server-check/peirce-check" in listed.stdout

    worker = start_worker(prefect_env, pool_name, db_url="sqlite://", log=tmp_path / "worker.log")
    try:
        ran = subprocess.run(
            [PREFECT, "deployment", "run", "peirce-server-check/peirce-check", "--watch", "--watch-timeout", "150"],
            env=prefect_env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        stop_worker(worker)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:] + (tmp_path / "worker.log").read_text()[-3000:]
    assert "Completed" in ran.stdout, ran.stdout[-3000:]


@pytest.mark.parametrize("command", [["flow", "ls"], ["deployment", "ls"], ["work-pool", "ls"]])
def test_the_other_list_commands_answer(prefect_env: dict[str, str], command: list[str]) -> None:
    listed = subprocess.run([PREFECT, *command], env=prefect_env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
