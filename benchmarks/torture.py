"""Torture peirce: kill its runner at random moments, during station dispenses, and start two runners at once.

    python benchmarks/torture.py                                 # the long version (issue 14's table)
    python benchmarks/torture.py --kills 20 --station-kills 5 --starts 15 --time-limit 600
    python benchmarks/torture.py --quick                         # a few of each, about two minutes

Every run is a real `peirce` process on a real SQLite file in a scratch folder. The script asserts nothing: it
prints what it did and counts violations, and ends with the table of issue 14 (its exit status is 1 when a
violation was counted, so a caller can tell). What it does:

- random kills: a Hartmann-6 campaign (random and Bayesian planners alternate) is run, SIGKILLed at a random
  moment, and `peirce resume`d — killed again, resumed again — until the kills for that campaign are spent; the last
  resume runs to the end of the budget. Per engine (inline, prefect). After each kill: every completed result seen
  before it must still be there with the same values (else "lost"), and the runner's children (its temporary Prefect
  server), read from /proc just before the kill, must be gone within ORPHAN_WAIT_S (else "orphaned server").
- station kills: examples/reaction_station.yaml on its device twins, killed right after the journal's
  `action-started` event of the pump's dispense (the database is polled for it). The twins live in the runner's
  process, so the runner is started through this script (`--tap-pump`), which records every request the pump twin
  receives, with the idempotency key of the experiment being run, in a file that survives the kill. Then: every
  `RUN` the pump received must have a write-ahead `action-started` record of its dispense, and each one never
  confirmed (no `action-done`/`action-failed` after it) must be named in doubt (`unconfirmed_action`).
- simultaneous starts: two `peirce resume C` at once on a killed campaign; exactly one may run (print a cycle or
  still be running when the other was refused), the other must be refused with one line. The runner is then killed
  for the next trial.
- at the end of every campaign: no idempotency key completed twice, no cycle index twice, the budget spent.
- every process that ends on its own (not killed) must end without a traceback, a refusal in one line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PEIRCE = str(Path(sys.executable).with_name("peirce"))
# How long a killed runner's children may take to go (the server's graceful shutdown, then its watchdog).
ORPHAN_WAIT_S = 10.0
# A runner that neither finishes nor is killed within this is stuck: counted, killed.
STUCK_S = 300.0
# Simultaneous starts: how long to wait for the second runner's refusal.
REFUSAL_WAIT_S = 30.0


# --- the tally -------------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What was done and every violation seen, by kind (each with one line saying where)."""

    kills: Counter[str] = field(default_factory=Counter)
    planners: dict[str, set[str]] = field(default_factory=dict)  # by engine
    campaigns: Counter[str] = field(default_factory=Counter)
    resumes: int = 0
    kills_with_children: int = 0  # kills of a runner that had started a child (its temporary Prefect server)
    dispenses_received: int = 0
    dispenses_in_doubt: int = 0
    start_trials: int = 0
    single_runner_trials: int = 0
    violations: dict[str, list[str]] = field(default_factory=dict)

    def violation(self, kind: str, where: str) -> None:
        self.violations.setdefault(kind, []).append(where)
        print(f"  VIOLATION {kind}: {where}", flush=True)

    def count(self, kind: str) -> int:
        return len(self.violations.get(kind, []))


VIOLATION_KINDS = (
    "lost result",
    "key completed twice",
    "cycle index twice",
    "budget not finished",
    "orphaned Prefect server",
    "dispense without write-ahead record",
    "unconfirmed dispense not named in doubt",
    "two runners at once",
    "no runner",
    "traceback or multi-line failure",
    "stuck runner",
)


# --- processes -------------------------------------------------------------------------------------------------------


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PEIRCE_DB_URL", "COLUMNS")}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def start(args: Sequence[str], cwd: Path, tap: Path | None = None) -> subprocess.Popen[str]:
    """`peirce ARGS` as a process of its own (through this script's pump tap when `tap` is given)."""
    command = [sys.executable, __file__, "--tap-pump", str(tap), "--", *args] if tap else [PEIRCE, *args]
    return subprocess.Popen(
        command, cwd=cwd, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def children(pid: int) -> list[int]:
    """Every descendant of `pid` now, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is not: it holds no port and runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_runner(process: subprocess.Popen[str], tally: Tally, where: str) -> None:
    """SIGKILL the runner; its children (a temporary Prefect server) must be gone within ORPHAN_WAIT_S."""
    kids = children(process.pid)
    tally.kills_with_children += bool(kids)
    process.kill()
    process.wait()
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while time.monotonic() < deadline and any(alive(k) for k in kids):
        time.sleep(0.2)
    for kid in kids:
        if alive(kid):
            tally.violation("orphaned Prefect server", f"{where}: pid {kid} alive {ORPHAN_WAIT_S:.0f} s after the kill")
            os.kill(kid, signal.SIGKILL)
    # Only now: an orphan that inherited the runner's output pipes would have kept them open, and a read to their
    # end would have waited for it.
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def finish(process: subprocess.Popen[str], tally: Tally, where: str) -> tuple[int, str, str]:
    """Wait for a process that ends on its own; a traceback, or a failure in more than one line, is counted."""
    try:
        out, err = process.communicate(timeout=STUCK_S)
    except subprocess.TimeoutExpired:
        tally.violation("stuck runner", f"{where}: still running after {STUCK_S:.0f} s")
        kill_runner(process, tally, where)
        return -9, "", ""
    if "Traceback" in err or (process.returncode != 0 and len(err.strip().splitlines()) != 1):
        tally.violation(
            "traceback or multi-line failure", f"{where}: exit {process.returncode}: {err.strip()[-300:]!r}"
        )
    return process.returncode, out, err


COMPLETED_TWICE = (
    "SELECT e.idempotency_key, COUNT(*) FROM events v JOIN experiments e ON v.entity_id = e.id "
    "WHERE v.entity = 'experiment' AND v.to_state = 'completed' GROUP BY e.id HAVING COUNT(*) > 1"
)
MEASURED_TWICE = (
    "SELECT e.idempotency_key, m.name, COUNT(*) FROM measurements m JOIN experiments e ON m.experiment_id = e.id "
    "GROUP BY e.id, m.name HAVING COUNT(*) > 1"
)
CYCLES_TWICE = "SELECT [index], COUNT(*) FROM cycles GROUP BY campaign_id, [index] HAVING COUNT(*) > 1"
ACTION_KINDS = ("action-started", "action-done", "action-failed")
PUMP_DISPENSE = ("pump", "dispense")


# --- the database, read as it is -------------------------------------------------------------------------------------


def query(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # not yet created
    finally:
        connection.close()


def completed_results(db: Path) -> dict[str, tuple[tuple[str, float], ...]]:
    """Completed experiments: idempotency key → their measurements."""
    rows = query(
        db,
        "SELECT e.idempotency_key, m.name, m.value FROM experiments e JOIN measurements m ON m.experiment_id = e.id "
        "WHERE e.state = 'completed' ORDER BY e.idempotency_key, m.name",
    )
    results: dict[str, list[tuple[str, float]]] = {}
    for key, name, value in rows:
        results.setdefault(key, []).append((name, value))
    return {key: tuple(values) for key, values in results.items()}


def check_kept(db: Path, seen: dict[str, tuple[tuple[str, float], ...]], tally: Tally, where: str) -> None:
    now = completed_results(db)
    for key, values in seen.items():
        if now.get(key) != values:
            tally.violation("lost result", f"{where}: {key} was {values}, now {now.get(key)}")


def check_no_repeats(db: Path, tally: Tally, where: str) -> None:
    """No idempotency key completed (or measured) twice, no cycle index written twice."""
    for key, times in query(db, COMPLETED_TWICE):
        tally.violation("key completed twice", f"{where}: {key} completed {times} times")
    for key, name, times in query(db, MEASURED_TWICE):
        tally.violation("key completed twice", f"{where}: {key} has {times} measurements of {name}")
    for index, times in query(db, CYCLES_TWICE):
        tally.violation("cycle index twice", f"{where}: cycle {index} written {times} times")


def check_campaign_end(db: Path, name: str, budget: int, tally: Tally, where: str) -> None:
    check_no_repeats(db, tally, where)
    status = query(db, "SELECT status FROM campaigns WHERE name = ?", (name,))
    done = query(db, "SELECT COUNT(*) FROM experiments WHERE state = 'completed'")[0][0]
    if not status or status[0][0] != "completed" or done < budget:
        tally.violation("budget not finished", f"{where}: status {status}, {done}/{budget} completed")


# --- random kills on Hartmann-6 --------------------------------------------------------------------------------------


def hartmann_spec(folder: Path, planner: str, experiments: int) -> tuple[Path, str]:
    source = "hartmann6_random.yaml" if planner == "random" else "hartmann6.yaml"
    spec = yaml.safe_load((EXAMPLES / source).read_text())
    spec["budget"] = {"experiments": experiments, "batch_size": 5}
    path = folder / f"h6_{planner}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path, str(spec["name"])


# Kills land at a random moment of the runner's work: uniformly within this many seconds after the runner's first
# write to the database (its claim, or the new campaign), by engine and planner. The seconds before that write are
# the interpreter loading; a kill there tests nothing a later one does not. On Prefect the window also covers its
# temporary server's start (about five seconds after the claim), the flow's start and its first cycles.
KILL_WINDOW_S = {
    ("inline", "random"): 3.0,
    ("inline", "bayesian"): 15.0,
    ("prefect", "random"): 10.0,
    ("prefect", "bayesian"): 20.0,
}
# Experiments per campaign: enough that a campaign outlives its kills (a random-planner runner does about 40
# experiments a second inline, 10 on Prefect), little enough that the last resume to the end is short.
BUDGET = {
    ("inline", "random"): 600,
    ("prefect", "random"): 250,
    ("inline", "bayesian"): 10,
    ("prefect", "bayesian"): 10,
}
STATION_BUDGET = 6
# Campaigns in a row that end before any kill: a part stops there (its campaigns fail at once, or end too soon to be
# killed) instead of starting campaign after campaign until its time is up; the violations say why.
BARREN_LIMIT = 4


def last_event(db: Path) -> int:
    rows = query(db, "SELECT MAX(id) FROM events")
    return int(rows[0][0] or 0) if rows else 0


@dataclass(frozen=True)
class Series:
    """One campaign run to its end through kills: where it lives and how it is started."""

    folder: Path
    db: Path
    name: str
    spec: str
    args: list[str]
    label: str
    kind: str  # the tally's column: an engine, or "station"
    tap: Path | None = None


def kill_and_resume(
    series: Series,
    kills: int,
    tally: Tally,
    deadline: float,
    baseline: Callable[[], Any],
    moment: Callable[[subprocess.Popen[str], Any], bool],
) -> int:
    """Run the campaign, SIGKILL it when `moment` says so (given what `baseline` read just before the start), and
    resume it after each kill, `kills` times; then let it run to its end. Returns the kills done."""
    command: list[str] = ["run", series.spec, *series.args]
    resume = ["resume", series.name, *series.args]
    done_kills = 0
    for _ in range(kills * 3 + 3):
        where = f"{series.label} kill {done_kills + 1}"
        seen, before = completed_results(series.db), baseline()
        process = start(command, series.folder, tap=series.tap)
        if command[0] == "resume":
            tally.resumes += 1
        if done_kills < kills and time.monotonic() < deadline and moment(process, before):
            kill_runner(process, tally, where)
            done_kills += 1
            tally.kills[series.kind] += 1
            check_kept(series.db, seen, tally, where)
            command = resume
            continue
        code, _, err = finish(process, tally, where)
        check_kept(series.db, seen, tally, where)
        if code != 0 and "already completed" not in err:
            command = resume
            continue
        break
    return done_kills


def kill_series(
    folder: Path, engine: str, planner: str, kills: int, rng: random.Random, tally: Tally, deadline: float
) -> int:
    """One campaign killed `kills` times at random moments, resumed after each, then run to its end."""
    experiments = BUDGET[engine, planner]
    spec, name = hartmann_spec(folder, planner, experiments)
    db = folder / "torture.db"
    args = ["--db", f"sqlite:///{db}", "--engine", engine]
    tally.campaigns[engine] += 1
    tally.planners.setdefault(engine, set()).add(planner)
    window = KILL_WINDOW_S[engine, planner]

    def moment(process: subprocess.Popen[str], written: Any) -> bool:
        # After the runner's first new write (it is under way), a random time within the window.
        while process.poll() is None and last_event(db) == written:
            time.sleep(0.05)
        try:
            process.wait(timeout=rng.uniform(0.0, window))
        except subprocess.TimeoutExpired:
            return True
        return False

    label = f"{engine}/{planner} {folder.name}"
    done_kills = kill_and_resume(
        Series(folder, db, name, str(spec), args, label, engine), kills, tally, deadline, lambda: last_event(db), moment
    )
    check_campaign_end(db, name, experiments, tally, f"{engine}/{planner} {folder.name}")
    print(f"  {engine}/{planner}: {done_kills} kills, campaign {folder.name} finished", flush=True)
    return done_kills


# --- kills during station dispenses ----------------------------------------------------------------------------------


def dispenses_started(db: Path) -> int:
    rows = query(db, "SELECT detail FROM events WHERE entity = 'experiment' AND kind = 'action-started'")
    return sum(1 for (detail,) in rows if _action(detail) == PUMP_DISPENSE)


def _action(detail: Any) -> tuple[Any, Any]:
    step = json.loads(detail) if isinstance(detail, str) else (detail or {})
    return step.get("instrument"), step.get("action")


def station_series(folder: Path, kills: int, tally: Tally, deadline: float) -> int:
    """The reaction station on its twins, killed right after a dispense's write-ahead record, resumed each time."""
    spec = yaml.safe_load((EXAMPLES / "reaction_station.yaml").read_text())
    spec["budget"] = {"experiments": STATION_BUDGET, "batch_size": 3, "max_retries": 2}
    spec["planner"] = {"kind": "random", "seed": 3}
    path = folder / "station.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    db, tap = folder / "torture.db", folder / "pump.log"
    name, args = str(spec["name"]), ["--db", f"sqlite:///{folder / 'torture.db'}", "--engine", "inline"]
    tally.campaigns["station"] += 1

    def moment(process: subprocess.Popen[str], before: Any) -> bool:
        # Right after the write-ahead record of a dispense: the pump may or may not have received it.
        while process.poll() is None and dispenses_started(db) == before:
            time.sleep(0.02)
        return process.poll() is None

    series = Series(folder, db, name, str(path), args, f"station {folder.name}", "station", tap)
    done_kills = kill_and_resume(series, kills, tally, deadline, lambda: dispenses_started(db), moment)
    check_campaign_end(db, name, STATION_BUDGET, tally, f"station {folder.name}")
    check_dispenses(db, tap, tally, f"station {folder.name}")
    print(f"  station: {done_kills} kills during dispenses, campaign {folder.name} finished", flush=True)
    return done_kills


def check_dispenses(db: Path, tap: Path, tally: Tally, where: str) -> None:
    """Each `RUN` the pump twin received: a write-ahead record of its dispense, and named in doubt if unconfirmed."""
    received = [
        line.split("\t")[0] for line in tap.read_text().splitlines() if line.split("\t")[1].strip().endswith("RUN")
    ]
    for key in received:
        tally.dispenses_received += 1
        found = query(db, "SELECT id, state FROM experiments WHERE idempotency_key = ?", (key,))
        if not found:
            tally.violation("dispense without write-ahead record", f"{where}: no experiment {key}")
            continue
        experiment_id, state = found[0]
        journal = query(
            db,
            "SELECT kind, detail FROM events WHERE entity = 'experiment' AND entity_id = ? ORDER BY id",
            (experiment_id,),
        )
        dispense = [kind for kind, detail in journal if kind in ACTION_KINDS and _action(detail) == PUMP_DISPENSE]
        if "action-started" not in dispense:
            tally.violation("dispense without write-ahead record", f"{where}: {key} has no action-started dispense")
        elif dispense[-1] == "action-started":
            named = any(
                "unconfirmed_action" in (json.loads(detail) if isinstance(detail, str) else (detail or {}))
                and _action(json.loads(detail)["unconfirmed_action"]) == PUMP_DISPENSE
                for kind, detail in journal
                if kind == "state" and detail
            )
            if named and state == "abandoned":
                tally.dispenses_in_doubt += 1
            else:
                tally.violation("unconfirmed dispense not named in doubt", f"{where}: {key} ({state})")


def tap_pump(log: Path, args: list[str]) -> None:
    """Run `peirce ARGS` here, with every request the pump twin receives appended to `log` (with the key of the
    experiment that sent it) by unbuffered writes that a SIGKILL cannot lose."""
    import orchestrator.lab.station as station_lab
    from instruments.drivers.newera_pump import NewEraPump
    from orchestrator.cli.app import main
    from simulators.twins.server import TwinEndpoint

    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    # A station runs several experiments at once, each in a thread of its own, and reserves the pump for one
    # experiment's step at a time: the key of the thread that last sent the pump a command is the key of the
    # request the twin (in its own thread) receives next.
    local, sender = threading.local(), {"key": ""}
    run, command, respond = station_lab.StationRuntime.run, NewEraPump._command, TwinEndpoint.respond

    def run_tapped(self: Any, parameters: Any, key: str, *rest: Any, **options: Any) -> Any:
        local.key = key  # whatever else the runtime takes (a journal, a person to ask) passes through unchanged
        return run(self, parameters, key, *rest, **options)

    def command_tapped(self: NewEraPump, *a: Any, **k: Any) -> Any:
        sender["key"] = getattr(local, "key", "")
        return command(self, *a, **k)

    def respond_tapped(self: TwinEndpoint, request: str) -> Any:
        if self.name == "pump":
            os.write(fd, f"{sender['key']}\t{request.strip()}\n".encode())
        return respond(self, request)

    station_lab.StationRuntime.run = run_tapped  # type: ignore[method-assign]
    NewEraPump._command = command_tapped  # type: ignore[method-assign]
    TwinEndpoint.respond = respond_tapped  # type: ignore[method-assign]
    main(args)


# --- simultaneous starts ---------------------------------------------------------------------------------------------


def start_trials(folder: Path, trials: int, tally: Tally, deadline: float) -> None:
    """Two `peirce resume C` at once on a killed campaign, `trials` times: exactly one runs."""
    spec, name = hartmann_spec(folder, "random", 100_000)
    db = folder / "torture.db"
    args = ["--db", f"sqlite:///{db}", "--engine", "inline"]
    first = start(["run", str(spec), *args], folder)
    while first.poll() is None and not completed_results(db):
        time.sleep(0.1)
    kill_runner(first, tally, "starts: first run")
    for trial in range(1, trials + 1):
        if time.monotonic() > deadline:
            break
        where = f"starts trial {trial}"
        pair = [start(["resume", name, *args], folder) for _ in range(2)]
        outcomes: dict[int, str] = {}
        limit = time.monotonic() + REFUSAL_WAIT_S
        while time.monotonic() < limit and len(outcomes) < 2:
            for i, process in enumerate(pair):
                if i not in outcomes and process.poll() is not None:
                    _, out, _ = finish(process, tally, where)
                    outcomes[i] = "ran" if "cycle" in out else "refused"
            if "refused" in outcomes.values():
                break
            time.sleep(0.05)
        for i, process in enumerate(pair):
            if i not in outcomes:
                # Still running when the other was refused (or when the wait ran out): a runner. Kill it for the
                # next trial, as a crash would leave it.
                outcomes[i] = "ran"
                kill_runner(process, tally, where)
        runners = list(outcomes.values()).count("ran")
        tally.start_trials += 1
        if runners == 1:
            tally.single_runner_trials += 1
        elif runners == 2:
            tally.violation("two runners at once", where)
        else:
            tally.violation("no runner", f"{where}: both refused")
    check_no_repeats(db, tally, "starts")
    print(
        f"  simultaneous starts: {tally.single_runner_trials}/{tally.start_trials} with exactly one runner", flush=True
    )


# --- the table -------------------------------------------------------------------------------------------------------


def table(tally: Tally, command: str, seconds: float) -> str:
    lines = [
        f"Command: `{command}`  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} min on {os.cpu_count()} cores",
        "",
        "| fault | trials | violations |",
        "|---|---|---|",
        f"| random SIGKILL, inline engine (Hartmann-6, {_planners(tally, 'inline')}) | {tally.kills['inline']} kills, "
        f"{tally.campaigns['inline']} campaigns | {_lost_twice(tally)} |",
        f"| random SIGKILL, prefect engine (Hartmann-6, {_planners(tally, 'prefect')}) | {tally.kills['prefect']} "
        "kills, "
        f"{tally.campaigns['prefect']} campaigns, {tally.kills_with_children} kills with the server up | orphaned "
        "Prefect servers: "
        f"{tally.count('orphaned Prefect server')} |",
        f"| SIGKILL right after a dispense's write-ahead record (station on twins) | {tally.kills['station']} kills, "
        f"{tally.dispenses_received} dispenses received, {tally.dispenses_in_doubt} unconfirmed | "
        f"without a record: {tally.count('dispense without write-ahead record')}, unconfirmed not named in doubt: "
        f"{tally.count('unconfirmed dispense not named in doubt')} |",
        f"| two `peirce resume C` at once | {tally.start_trials} trials, {tally.single_runner_trials} with exactly one "
        f"runner | two runners: {tally.count('two runners at once')}, none: {tally.count('no runner')} |",
        f"| every process ending on its own ({tally.resumes} resumes, refusals) | | traceback or multi-line "
        f"failure: {tally.count('traceback or multi-line failure')}, stuck: {tally.count('stuck runner')} |",
        f"| every campaign | {sum(tally.campaigns.values())} campaigns | budget not finished: "
        f"{tally.count('budget not finished')} |",
        "",
        f"Violations in all: {sum(len(v) for v in tally.violations.values())}",
    ]
    return "\n".join(lines)


def _planners(tally: Tally, engine: str) -> str:
    return " + ".join(sorted(tally.planners.get(engine, set()))) or "no"


def _lost_twice(tally: Tally) -> str:
    return (
        f"lost results: {tally.count('lost result')}, keys completed twice: {tally.count('key completed twice')}, "
        f"cycle indexes twice: {tally.count('cycle index twice')} (all engines)"
    )


def torture(
    kills: int,
    station_kills: int,
    starts: int,
    *,
    engines: Sequence[str] = ("inline", "prefect"),
    planners: Sequence[str] = ("random", "bayesian"),
    seed: int = 0,
    time_limit: float = float("inf"),
    workdir: Path,
) -> Tally:
    """Run every part (see the module's doc) and return the tally."""
    workdir.mkdir(parents=True, exist_ok=True)
    rng, tally = random.Random(seed), Tally()
    began = time.monotonic()
    # The time limit is shared out: each part gets its own slice, so a slow part does not starve the others.
    parts: list[tuple[str, float, Callable[[float], None]]] = []
    for engine in engines:
        share = 1.0 if engine == "inline" else 1.6  # a Prefect start costs seconds more

        def kills_of(deadline: float, engine: str = engine) -> None:
            number, barren = 0, 0
            while tally.kills[engine] < kills and time.monotonic() < deadline and barren < BARREN_LIMIT:
                number += 1
                folder = workdir / f"{engine}-{number}"
                folder.mkdir()
                planner = planners[(number - 1) % len(planners)]
                per_campaign = min(10 if planner == "random" else 3, kills - tally.kills[engine])
                barren = 0 if kill_series(folder, engine, planner, per_campaign, rng, tally, deadline) else barren + 1
            if barren >= BARREN_LIMIT:
                print(f"  {engine}: {barren} campaigns in a row ended before any kill; see the violations", flush=True)

        parts.append((f"random kills, {engine}", share, kills_of))

    def station(deadline: float) -> None:
        number, barren = 0, 0
        while tally.kills["station"] < station_kills and time.monotonic() < deadline and barren < BARREN_LIMIT:
            number += 1
            folder = workdir / f"station-{number}"
            folder.mkdir()
            barren = (
                0
                if station_series(folder, min(4, station_kills - tally.kills["station"]), tally, deadline)
                else barren + 1
            )
        if barren >= BARREN_LIMIT:
            print(f"  station: {barren} campaigns in a row ended before any kill; see the violations", flush=True)

    def simultaneous(deadline: float) -> None:
        if starts <= 0:
            return
        folder = workdir / "starts"
        folder.mkdir()
        start_trials(folder, starts, tally, deadline)

    parts += [("station kills", 1.0, station), ("simultaneous starts", 1.0, simultaneous)]
    total = sum(share for _, share, _ in parts)
    for label, share, part in parts:
        left = time_limit - (time.monotonic() - began)
        print(f"{label}:", flush=True)
        part(time.monotonic() + left * share / total if left > 0 else time.monotonic())
        total -= share
    return tally


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--tap-pump"]:
        tap_pump(Path(argv[1]), argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="random SIGKILLs per engine")
    parser.add_argument("--station-kills", type=int, default=10, help="SIGKILLs right after a dispense starts")
    parser.add_argument("--starts", type=int, default=50, help="trials of two simultaneous resumes")
    parser.add_argument("--engines", default="inline,prefect")
    parser.add_argument("--planners", default="random,bayesian", help="alternated, campaign by campaign")
    parser.add_argument(
        "--quick", action="store_true", help="3 kills per engine (random planner), 2 station kills, 3 start trials"
    )
    parser.add_argument("--time-limit", type=float, default=float("inf"), help="seconds; stop starting new kills")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the campaigns' folders here (default: a temporary one)")
    options = parser.parse_args(argv)
    if options.quick:
        options.kills, options.station_kills, options.starts, options.planners = 3, 2, 3, "random"
    engines = [e for e in options.engines.split(",") if e]
    command = "python benchmarks/torture.py " + " ".join(argv)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="peirce-torture-") as scratch:
        workdir = options.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        tally = torture(
            options.kills,
            options.station_kills,
            options.starts,
            engines=engines,
            planners=[p for p in options.planners.split(",") if p],
            seed=options.seed,
            time_limit=options.time_limit,
            workdir=workdir,
        )
    print()
    print(table(tally, command.strip(), time.monotonic() - began))
    return 1 if tally.violations else 0


if __name__ == "__main__":
    sys.exit(main())
