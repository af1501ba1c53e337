"""The Prefect engine's temporary server dies with its runner: on SIGKILL, SIGTERM, Ctrl-C and at a normal end, and
what it prints never reaches the person's terminal (issue 14, items 4 and 8)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prefect.settings import PREFECT_API_URL, temporary_settings

from orchestrator.cycle.prefect_server import ensure_temporary_server
from tests.campaigns import EXAMPLES_DIR, write_spec
from tests.orchestrator.cli.helpers import PEIRCE

# SIGTERM's graceful shutdown (2 s at most), the watchdog's grace (3 s), and the slowness of a shared machine.
GONE_WITHIN_S = 15.0


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie waiting for init to reap it holds no port, runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_prefect_run(tmp_path: Path) -> subprocess.Popen[str]:
    spec = yaml.safe_load((EXAMPLES_DIR / "hartmann6_random.yaml").read_text())
    spec["budget"] = {"experiments": 400, "batch_size": 2}  # far more than the test lets it run
    write_spec(tmp_path / "h6.yaml", spec)
    return subprocess.Popen(
        [PEIRCE, "run", "h6.yaml", "--engine", "prefect", "--db", f"sqlite:///{tmp_path / 'p.db'}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_server(runner: subprocess.Popen[str]) -> tuple[int, int]:
    """The runner's temporary Prefect server (its pid and port), once it answers and the run is under way."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert runner.poll() is None, runner.communicate()
        for pid in children(runner.pid):
            args = cmdline(pid)
            if "prefect.server.api.server:create_app" in args:
                port = int(args[args.index("--port") + 1])
                if listening(port):
                    return pid, port
        time.sleep(0.2)
    raise AssertionError("the runner started no Prefect server")


def assert_gone(pid: int, port: int) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while time.monotonic() < deadline and (running(pid) or listening(port)):
        time.sleep(0.2)
    alive = running(pid)
    if alive:
        Path(f"/proc/{pid}").exists() and subprocess.run(["kill", "-9", str(pid)], check=False)
    assert not alive, f"server {pid} outlived its runner by {GONE_WITHIN_S} s"
    assert not listening(port)


@pytest.mark.slow
# SIGINT is Ctrl-C sent to the runner alone: the server, in a session of its own, does not get it from the terminal.
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["KILL", "TERM", "INT"])
def test_the_temporary_server_dies_with_its_runner(tmp_path: Path, signum: int) -> None:
    runner = start_prefect_run(tmp_path)
    try:
        server, port = wait_for_server(runner)
        time.sleep(1.0)  # a cycle or so under way
        runner.send_signal(signum)
        runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert_gone(server, port)


@pytest.mark.slow
def test_a_finished_run_leaves_no_server_and_prints_nothing_of_its_own(tmp_path: Path) -> None:
    spec = yaml.safe_load((EXAMPLES_DIR / "hartmann6_random.yaml").read_text())
    spec["budget"] = {"experiments": 4, "batch_size": 2}
    write_spec(tmp_path / "h6.yaml", spec)
    runner = subprocess.Popen(
        [PEIRCE, "run", "h6.yaml", "--engine", "prefect", "--db", f"sqlite:///{tmp_path / 'p.db'}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server, port = wait_for_server(runner)
    out, err = runner.communicate(timeout=180)
    assert runner.returncode == 0, err
    assert "h6 finished" in out or "finished: budget of 4 experiments spent" in out
    # Nothing but our own lines: the server's shutdown (its SQLAlchemy pool's "Exception during reset or
    # similar", once seen after "finished") goes to its own log, not to the person's terminal.
    assert err == ""
    assert_gone(server, port)


def test_no_temporary_server_when_prefect_is_pointed_at_a_server_of_its_own() -> None:
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert ensure_temporary_server() is None
