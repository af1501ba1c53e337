"""A real Prefect server on loopback: the API our flows and the `prefect` CLI speak answers list calls.

Prefect 3.8 with FastAPI 0.154 started a server whose own client was refused with HTTP 422 (`body.limit`) on
`prefect flow-run ls`, `flow ls`, `deployment ls`, `work-pool ls` and `flow.deploy()`. Nothing here is mocked:
the server is `prefect server start` in its own process, with its own PREFECT_HOME and a free port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

PREFECT = str(Path(sys.executable).with_name("prefect"))
STARTUP_DEADLINE_S = 150.0  # the server migrates a fresh SQLite database first; two shared cores are slow at it

FLOW_SCRIPT = """
from prefect import flow

@flow(name="peirce-server-check")
def check() -> int:
    return 42

state = check(return_state=True)
print(state.state_details.flow_run_id, state.result())
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Starts `prefect server start` on 127.0.0.1 and yields the environment a client needs to reach it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")},
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "COLUMNS": "250",  # rich tables of the CLI are not cut to 80 columns, so the run id is printed whole
    }
    log = home / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: teardown stops the server and anything it started
        )
    try:
        _wait_healthy(api, server, log)
        yield env
    finally:
        _stop(server)


def _wait_healthy(api: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"prefect server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{api}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"prefect server not healthy after {STARTUP_DEADLINE_S:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


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
    name="peirce-check", work_pool_name="peirce-pool", print_next_steps=False
)
print(deployment_id)
"""


def test_a_flow_is_deployed_to_a_work_pool_and_listed(prefect_env: dict[str, str], tmp_path: Path) -> None:
    # flow.deploy() was the other call the old server refused with HTTP 422.
    (tmp_path / "check.py").write_text(FLOW_SCRIPT.split("state =")[0])
    pool = subprocess.run(
        [PREFECT, "work-pool", "create", "peirce-pool", "--type", "process"],
        env=prefect_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pool.returncode == 0, pool.stdout[-3000:] + pool.stderr[-3000:]
    deployed = subprocess.run(
        [sys.executable, "-c", DEPLOY_SCRIPT, str(tmp_path)],
        env=prefect_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    listed = subprocess.run([PREFECT, "deployment", "ls"], env=prefect_env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    assert "peirce-server-check/peirce-check" in listed.stdout


@pytest.mark.parametrize("command", [["flow", "ls"], ["deployment", "ls"], ["work-pool", "ls"]])
def test_the_other_list_commands_answer(prefect_env: dict[str, str], command: list[str]) -> None:
    listed = subprocess.run([PREFECT, *command], env=prefect_env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
