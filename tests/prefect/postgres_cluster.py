"""A PostgreSQL server of a test's own, to stop and start under a running campaign (CI's shared one serves every
other test and must not be restarted). Made with initdb in a fresh folder, on a free loopback port, owned by the
postgres user when the tests run as root (PostgreSQL refuses to run as root), as `.ci/run` makes CI's."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.prefect.server import free_port


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """initdb in `folder`, then `start` / `stop` / `restart` on one port; `url` is the `postgres` database's."""

    def __init__(self, folder: Path) -> None:
        found = postgres_bin()
        if found is None:
            if os.environ.get("PEIRCE_REQUIRE_POSTGRES"):
                pytest.fail("no PostgreSQL installed (initdb not found) but PostgreSQL tests are required")
            pytest.skip("no PostgreSQL installed (initdb not found)")
        self.bin = found
        self.folder = folder
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.root = os.getuid() == 0
        if self.root:
            shutil.chown(folder, "postgres")
        self._run("initdb", "-D", str(folder / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{tool}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends every session (as a restart for an upgrade does), `immediate` as a crash."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")
