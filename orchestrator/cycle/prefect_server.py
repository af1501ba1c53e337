"""Prefect's temporary API server, started by peirce so that it never outlives the runner that started it.

When no `PREFECT_API_URL` is set, Prefect 3 starts a temporary server the first time a client needs one
(`prefect.server.api.server.SubprocessASGIServer`, a `uvicorn` child) and stops it from an `atexit` hook. A runner
killed with SIGKILL runs no hook, so its server kept listening: 37 of 99 killed runs left one behind (issue 14).

`ensure_temporary_server` starts that server before the flow does and registers it as Prefect's default one, so
every Prefect client of this process uses it and none starts another. It differs from Prefect's own in three ways:
- it dies with its parent: the child asks the kernel for SIGTERM when the runner dies (`prctl(PR_SET_PDEATHSIG)`,
  set by the child itself at start-up, so no `preexec_fn` runs between fork and exec in a process with threads), and
  a watchdog thread in the child kills it outright if it is still alive a few seconds after the runner is gone (a
  graceful shutdown that hangs, or a kernel without PR_SET_PDEATHSIG);
- it runs in a session of its own, so Ctrl-C at the terminal reaches only the runner, which stops at a safe point
  while its server still answers, and then stops the server on its way out;
- what it prints goes to an unlinked temporary file, not to the person's terminal: its shutdown chatter (SQLAlchemy's
  `Exception during reset or similar` from its aiosqlite pool, once seen after "finished") is not ours to show.
  The file's text is shown only when the server fails to start.

The kernel sends the parent-death signal when the *thread* that started the child ends, so the server is started
from the thread that runs the flow (the CLI's main thread), never from a short-lived one; a server found dead is
started again.

On a normal exit, Ctrl-C or a SIGTERM that the runner handles, Prefect's `atexit` hook stops the server (after
Prefect's own workers have drained, as they registered their hooks later); on SIGKILL the kernel's signal does.

Run as a module (`python -m orchestrator.cycle.prefect_server PARENT_PID UVICORN_ARGS…`) this is the child's side:
it arms the parent-death signal and the watchdog, then runs uvicorn.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any

import prefect
from prefect.server.api.server import SubprocessASGIServer, subprocess_server_logger
from prefect.settings import PREFECT_API_URL, get_current_settings

# From <linux/prctl.h>: deliver a signal to this process when its parent thread dies.
PR_SET_PDEATHSIG = 1
# How long the child waits, after its parent is gone, for SIGTERM's graceful shutdown before it kills itself.
WATCHDOG_GRACE_S = 3.0
# Environment variable naming the runner's process id in its server's environment: a test or the torture script
# finds a runner's server by it, even after the server was orphaned and adopted by init.
RUNNER_PID_ENV = "PEIRCE_PREFECT_SERVER_OF"


class TemporaryServer(SubprocessASGIServer):
    """Prefect's temporary server, run through this module's child side (see the module's doc)."""

    _log: IO[bytes] | None = None

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        # The same server Prefect runs (its app, its settings, no UI), through our child side.
        server_env = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        if self._log is None:
            # Unlinked at once: the file vanishes with the last descriptor, even if both processes are killed.
            self._log = tempfile.TemporaryFile(prefix="peirce-prefect-server-")  # noqa: SIM115 (open while it runs)
        args = [
            sys.executable,
            "-m",
            __name__,
            str(os.getpid()),
            "--app-dir",
            str(prefect.__module_path__.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
            # An open connection must not hold a stopping server for long.
            "--timeout-graceful-shutdown",
            "2",
        ]
        env = {
            **os.environ,
            **server_env,
            **get_current_settings().to_environment_variables(exclude_unset=True),
            RUNNER_PID_ENV: str(os.getpid()),
        }
        return subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, start_new_session=True
        )

    def start(self, timeout: int | None = None) -> None:
        try:
            super().start(timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} Its output: {self.output()[-2000:]!r}") from exc

    def stop(self) -> None:
        # Quietly: Prefect announces the stop on its console logger, and at exit the stream that logger was set up
        # with may be closed already (a test's captured output), which prints a "--- Logging error ---" traceback.
        was_disabled, subprocess_server_logger.disabled = subprocess_server_logger.disabled, True
        try:
            super().stop()
        finally:
            subprocess_server_logger.disabled = was_disabled

    def output(self) -> str:
        """What the server printed so far (for an error message)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.running and self.server_process is not None and self.server_process.poll() is None


def ensure_temporary_server() -> TemporaryServer | None:
    """Start peirce's temporary Prefect server unless one of ours is alive or Prefect is pointed at a server of
    its own (PREFECT_API_URL); None in that case. The server stays up for the rest of this process (later runs in
    the same process reuse it) and stops at its exit, or with it when it is killed."""
    if PREFECT_API_URL.value():
        return None
    default = SubprocessASGIServer._instances.get(None)
    if isinstance(default, TemporaryServer) and default.alive():
        return default
    if default is not None:
        # A server Prefect started itself, or one of ours that died: ours replaces it as the default.
        default.stop()
        SubprocessASGIServer._instances.pop(None, None)
    server = TemporaryServer()  # registers itself as Prefect's default server (SubprocessASGIServer.__new__)
    server.start()
    return server


def _arm_parent_death_signal(parent_pid: int) -> None:
    """SIGTERM to this process when its parent dies; exit now if it died before the request was made."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    """Kill this process if it outlives its parent by more than the grace period."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    time.sleep(WATCHDOG_GRACE_S)
    os.kill(os.getpid(), signal.SIGKILL)


def _serve(argv: list[str]) -> None:
    import uvicorn.main  # the child's side only: the runner never loads uvicorn's command line

    parent_pid = int(argv[0])
    if sys.platform == "linux":
        _arm_parent_death_signal(parent_pid)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True).start()
    uvicorn.main.main(argv[1:], prog_name="uvicorn")


if __name__ == "__main__":
    _serve(sys.argv[1:])
