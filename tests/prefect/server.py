"""A real Prefect server for tests, and Prefect workers beside it.

`prefect_env` (a module fixture) yields the environment a client needs: the server named by
$PEIRCE_TEST_PREFECT_API_URL when it is set (CI starts one for the whole run, `.ci/run`), else a
`prefect server start` of the module's own on loopback, with its own PREFECT_HOME and a free port, stopped when the
module's tests are done. Either way the environment carries no other PREFECT_* setting of the caller's and a
PREFECT_HOME of its own, so a test's clients never touch the person's profile.

A test module uses it by binding it under its name: `prefect_env = server.prefect_env` (pytest finds a fixture
by the module's attributes; an import of the name would read to linters as unused and then redefined).

`start_worker` starts `prefect worker start --pool NAME` in a session of its own (its flow runs are its children,
so `stop_worker` stops them with it), with PEIRCE_DB_URL and PREFECT_API_URL in its environment as a lab's worker
has them. Nothing here is mocked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

PREFECT = str(Path(sys.executable).with_name("prefect"))
SHARED_API_ENV = "PEIRCE_TEST_PREFECT_API_URL"
STARTUP_DEADLINE_S = 150.0  # the server migrates a fresh SQLite database first; two shared cores are slow at it
LEASES_ON_DISK = "prefect.server.concurrency.lease_storage.filesystem"
# How often a process worker asks its pool for flow runs (Prefect's default is 10 s; tests wait less).
WORKER_POLL_S = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_env(home: Path, api: str) -> dict[str, str]:
    """This process's environment with no PREFECT_* setting but a home of its own and `api` as the server."""
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")},
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "COLUMNS": "250",  # rich tables of the CLI are not cut to 80 columns, so a run id is printed whole
    }


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a client of a real Prefect server (see the module's doc)."""
    home = tmp_path_factory.mktemp("prefect-home")
    shared = os.environ.get(SHARED_API_ENV)
    if shared:
        wait_healthy(shared)
        yield client_env(home, shared)
        return
    with StartedServer(home) as env:
        yield env


class StartedServer:
    """`prefect server start` on 127.0.0.1 with its home in `home`; the client environment on entry."""

    def __init__(self, home: Path, settings: Mapping[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **client_env(home, self.api),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            # As docs/deploy.md sets a lab's server up: holds (leases) kept on disk, so a restart forgets none.
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": LEASES_ON_DISK,
            **(settings or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> dict[str, str]:
        self.start()
        return self.env

    def start(self) -> None:
        """Start the server (again, after `stop`: same port, same home and database) and wait until it answers."""
        log = self.home / "server.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: teardown stops the server and anything it started
            )
        try:
            wait_healthy(self.api, self.process, log)
        except BaseException:
            stop_process_group(self.process)
            raise

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def __exit__(self, *_: object) -> None:
        self.stop()


def wait_healthy(api: str, server: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    """Wait until `api`/health answers; fail the test with the server's output if it exits or never does."""
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            output = log.read_text()[-3000:] if log else ""
            pytest.fail(f"prefect server exited with {server.returncode}:\n{output}")
        try:
            if httpx.get(f"{api}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    output = log.read_text()[-3000:] if log else ""
    pytest.fail(f"prefect server at {api} not healthy after {STARTUP_DEADLINE_S:.0f} s:\n{output}")


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM to the process's group (it was started in a session of its own), SIGKILL after `grace_s`."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        process.wait(timeout=10)


def start_worker(
    env: Mapping[str, str], pool: str, *, db_url: str, log: Path, name: str | None = None
) -> subprocess.Popen[bytes]:
    """`prefect worker start --pool POOL` in a session of its own, its output in `log`: a lab's worker, with the
    database URL in its environment (PEIRCE_DB_URL) and the server's (PREFECT_API_URL). The pool must exist."""
    worker_env = {**env, "PEIRCE_DB_URL": db_url, "PREFECT_WORKER_QUERY_SECONDS": str(WORKER_POLL_S)}
    command = [PREFECT, "worker", "start", "--pool", pool, "--type", "process"]
    if name is not None:
        command += ["--name", name]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=worker_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Stop a worker and the flow runs it started: its process group, and any flow run Prefect started in a
    group of its own (killed outright: a test that stops its worker is done with them)."""
    children = descendants(worker.pid)
    stop_process_group(worker, grace_s=30.0)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (from /proc: Linux only, as the tests' machines are)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name, in parentheses, may hold spaces: the fields after its closing one are fixed.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found
