"""A lab under load: 1, 4, 8 and 16 campaigns at once on one Prefect server, its workers and one database,
sharing a few device-twin instruments through lab-wide holds.

What runs is what a lab runs: a lab file whose instruments are `socket://127.0.0.1:PORT`, each served by a
`peirce twin DRIVER --tcp PORT` process (one client at a time, as a serial device server); `peirce deploy --pool`;
`prefect worker start` workers with the database URL in their environment; each campaign started by
`peirce submit`. Every experiment holds each instrument it uses lab-wide (a Prefect global concurrency slot) while
it works there. The same campaign is also run once by `peirce run --engine inline` with no Prefect server (the
embedded path), alone on the same twins, as the baseline of orchestration overhead.

Per number of concurrent campaigns the table gives, from peirce's database (the journals) and Prefect's API:
- campaigns and flow runs completed, experiments completed, retried attempts;
- experiments per hour: completed experiments over the time from the first submit to the last event;
- served time per experiment: a campaign's time from its flow run's first act (the lease taken) to its last
  event, less its experiments' contention waits for holds (waited_s of hold-taken, beyond the median wait of the
  uncontended run, which is the cost of taking a slot and stays counted), over its experiments; the mean over
  campaigns. Overhead per experiment is that less the inline run's time per experiment (same protocol, same
  twins): what the served path adds, Prefect's task runs and API calls and holds included. It is split, from the
  journals, into what sharing the instruments costs (taking and giving back each hold, opening and closing each
  port once per hold, `sharing_seconds`) and the rest (Prefect's task runs, API calls, artifacts);
- hold waits: mean / p95 / max of hold-taken's waited_s over all holds;
- overlapping holds: per instrument, hold intervals (hold-taken .. hold-released of one attempt) that intersect an
  earlier one (must be 0; the journal's interval lies inside the slot's, so an overlap here is a real one);
- lost results: experiments neither completed with their measurements nor ended failed, infeasible, abandoned or
  rejected (must be 0);
- repeated without a record: instrument actions journalled for an attempt that has no dispatch row, or a protocol
  step started twice within one attempt (must be 0).

The planner is random (what is measured is the lab, not the planner). It asserts nothing; it prints the table.

    python benchmarks/lab_load.py                                   # sizes 1,4,8,16; 4 experiments each
    python benchmarks/lab_load.py --sizes 1,4 --experiments 6 --batch 3 --workers 2
    python benchmarks/lab_load.py --postgres postgresql+psycopg://user@host:5432/postgres

The database is PostgreSQL when --postgres (or $PEIRCE_TEST_POSTGRES_URL) names a server (a fresh database is
made there and dropped afterwards), else a SQLite file. The Prefect server is $PREFECT_API_URL's when set, else
one started here on loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.prefect.lab_setup import lab_file  # noqa: E402
from tests.prefect.server import (  # noqa: E402
    StartedServer,
    client_env,
    free_port,
    start_worker,
    stop_process_group,
    stop_worker,
    wait_healthy,
)

PEIRCE = str(Path(sys.executable).with_name("peirce"))
POSTGRES_ENV = "PEIRCE_TEST_POSTGRES_URL"
# The lab's instruments: name -> driver. Every experiment uses all three, one at a time.
INSTRUMENTS = {"hotplate": "ika-namur", "balance": "mettler-sics", "photometer": "keithley-2000"}
TWIN_TIME_SCALE = 1000.0  # simulated seconds per second on the twins: a weighing settles at once
SERVING_WITHIN_S = 60.0
# Experiment states that end an experiment with no result and say so; anything else without a result is lost.
ENDED_WITHOUT_RESULT = {"failed", "infeasible", "abandoned", "rejected"}


class BadInput(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line naming what is wrong, exit 2 (argparse's status), without its usage block.
        print(f"lab_load: {message}", file=sys.stderr)
        raise SystemExit(2)


# --- the lab on disk ------------------------------------------------------------------------------------------------


def lab_file_content(lab: str, ports: dict[str, str]) -> dict[str, Any]:
    # A campaign at the back of the queue waits for every other one's experiments on an instrument.
    return lab_file(lab, INSTRUMENTS, ports, timeout_s=900)


def campaign(name: str, seed: int, experiments: int, batch: int) -> dict[str, Any]:
    """A short station campaign on the three shared instruments: each is held for a few requests and a wait."""
    return {
        "name": name,
        "goal": "Load on a lab's shared instruments: heat, weigh twice, read the photometer.",
        "space": [{"name": "temperature", "type": "continuous", "bounds": [40.0, 90.0], "unit": "degC"}],
        "objectives": [{"name": "score", "direction": "maximize"}],
        "budget": {"experiments": experiments, "batch_size": batch, "max_retries": 1},
        "planner": {"kind": "random", "seed": seed},
        "hypotheses": "none",
        "lab": {
            "station": "load_bench",
            "lab_file": "lab.yaml",
            "instruments": list(INSTRUMENTS),
            "protocol": [
                {"instrument": "hotplate", "action": "set_temperature", "args": {"temperature_c": "{temperature}"}},
                {"wait": 0.1, "unit": "s"},
                {"instrument": "hotplate", "action": "read_temperature", "save": {"temperature_c": "plate"}},
                {"instrument": "hotplate", "action": "heat_off"},
                {"instrument": "balance", "action": "weigh", "save": {"mass_g": "mass"}},
                {"wait": 0.1, "unit": "s"},
                {"instrument": "balance", "action": "weigh", "save": {"mass_g": "again"}},
                {
                    "instrument": "photometer",
                    "action": "measure_voltage",
                    "args": {"samples": 2},
                    "save": {"voltage_v": "signal"},
                },
            ],
            "outcomes": {"score": "plate / 100 + signal - 1000 * (again - mass) * (again - mass)"},
            # One experiment of a campaign in the lab at a time: its time is then the sum of its experiments'.
            "max_concurrency": 1,
        },
    }


@contextlib.contextmanager
def twins(folder: Path) -> Iterator[dict[str, str]]:
    """One `peirce twin DRIVER --tcp PORT` process per instrument; their `socket://` URLs by instrument."""
    processes: list[subprocess.Popen[bytes]] = []
    ports: dict[str, str] = {}
    try:
        for i, (name, driver) in enumerate(INSTRUMENTS.items()):
            port = free_port()
            log = folder / f"twin-{name}.log"
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [
                            PEIRCE,
                            "twin",
                            driver,
                            "--tcp",
                            str(port),
                            "--time-scale",
                            str(TWIN_TIME_SCALE),
                            "--seed",
                            str(i),
                        ],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            deadline = time.monotonic() + SERVING_WITHIN_S
            while "serving on" not in log.read_text():
                if processes[-1].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"twin of {driver} did not start: {log.read_text()[-500:]}")
                time.sleep(0.2)
            ports[name] = f"socket://127.0.0.1:{port}"
        yield ports
    finally:
        for process in processes:
            stop_process_group(process)


@contextlib.contextmanager
def database(folder: Path, postgres: str | None, prefix: str = "peirce_lab_load") -> Iterator[tuple[str, str]]:
    """The lab's database URL and its kind in words: a fresh PostgreSQL database on `postgres`, else a SQLite file."""
    if not postgres:
        yield f"sqlite:///{folder / 'lab.db'}", "SQLite file (WAL)"
        return
    from sqlalchemy import create_engine, make_url, text

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(postgres).set(database=name)
        yield url.render_as_string(hide_password=False), f"PostgreSQL {url.host}:{url.port}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def prefect_server(folder: Path, postgres: str | None) -> Iterator[tuple[dict[str, str], str]]:
    """The client environment of the lab's Prefect server and where it came from: $PREFECT_API_URL's, else one
    started here on loopback, its records in a database of its own on the lab's PostgreSQL server when there is one
    (as docs/deploy.md sets a lab up; Prefect's SQLite answers 503 under a lab's load), else in SQLite."""
    given = os.environ.get("PREFECT_API_URL")
    home = folder / "prefect-home"
    home.mkdir()
    if given:
        wait_healthy(given)
        yield client_env(home, given), f"Prefect server of PREFECT_API_URL ({given})"
        return
    if not postgres:
        with StartedServer(home) as env:
            yield env, "Prefect server started here on loopback (its records in SQLite; leases on disk)"
        return
    with database(folder, postgres, prefix="prefect_lab_load") as (url, kind):
        from sqlalchemy import make_url

        records = make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        with StartedServer(home, {"PREFECT_SERVER_DATABASE_CONNECTION_URL": records}) as env:
            yield env, f"Prefect server started here on loopback (its records on {kind}; leases on disk)"


# --- running --------------------------------------------------------------------------------------------------------


def peirce(env: dict[str, str], *args: str, cwd: Path) -> str:
    done = subprocess.run([PEIRCE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(
            f"peirce {' '.join(args[:2])} exited {done.returncode}: {(done.stdout + done.stderr)[-2000:]}"
        )
    return done.stdout


def write_campaigns(folder: Path, names: Sequence[str], experiments: int, batch: int) -> list[Path]:
    paths = []
    for i, name in enumerate(names):
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(campaign(name, i, experiments, batch), sort_keys=False))
        paths.append(path)
    return paths


def submit_all(env: dict[str, str], pool: str, db_url: str, specs: Sequence[Path], folder: Path) -> list[str]:
    """`peirce submit` of every campaign at once (as people of a lab would); the flow run ids."""
    processes = [
        subprocess.Popen(
            [PEIRCE, "submit", spec.name, "--pool", pool, "--db", db_url],
            env=env,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for spec in specs
    ]
    run_ids = []
    for process, spec in zip(processes, specs, strict=True):
        out, _ = process.communicate(timeout=600)
        if process.returncode != 0 or "flow run " not in out:
            raise RuntimeError(f"peirce submit {spec.name} exited {process.returncode}: {out[-2000:]}")
        run_ids.append(out.split("flow run ")[1].split()[0])
    return run_ids


def wait_final(env: dict[str, str], run_ids: Sequence[str], within_s: float) -> dict[str, str]:
    """Each flow run's final state name (or its state when `within_s` ran out)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    states: dict[str, str] = {}
    deadline = time.monotonic() + within_s
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        while True:
            final = 0
            for run_id in run_ids:
                run = c.read_flow_run(uuid.UUID(run_id))
                states[run_id] = run.state.name if run.state is not None else "none"
                final += bool(run.state is not None and run.state.is_final())
            if final == len(run_ids) or time.monotonic() > deadline:
                return states
            time.sleep(1.0)


# --- reading the journals -------------------------------------------------------------------------------------------


@dataclass
class Journals:
    campaigns: dict[str, str]  # name -> status
    experiments: list[dict[str, Any]]
    measured: set[tuple[int, int]]  # (experiment id, attempt) with measurements
    dispatched: set[tuple[int, int]]  # (experiment id, attempt) with a dispatch row
    events: list[dict[str, Any]]


def read_journals(url: str, names: Sequence[str]) -> Journals:
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(url)
    params = {"names": list(names)}

    def rows(sql: str) -> list[dict[str, Any]]:
        query = text(sql).bindparams(bindparam("names", expanding=True))
        return [dict(row._mapping) for row in conn.execute(query, params)]

    try:
        with engine.connect() as conn:
            campaigns = {
                r["name"]: r["status"] for r in rows("SELECT name, status FROM campaigns WHERE name IN :names")
            }
            experiments = rows(
                "SELECT e.id, e.seq, e.state, e.attempts, c.name AS campaign FROM experiments e"
                " JOIN campaigns c ON c.id = e.campaign_id WHERE c.name IN :names ORDER BY e.id"
            )
            measured = {
                (r["experiment_id"], r["attempt"])
                for r in rows(
                    "SELECT DISTINCT m.experiment_id, m.attempt FROM measurements m"
                    " JOIN experiments e ON e.id = m.experiment_id JOIN campaigns c ON c.id = e.campaign_id"
                    " WHERE c.name IN :names"
                )
            }
            dispatched = {
                (r["experiment_id"], r["attempt"])
                for r in rows(
                    "SELECT d.experiment_id, d.attempt FROM dispatches d"
                    " JOIN experiments e ON e.id = d.experiment_id JOIN campaigns c ON c.id = e.campaign_id"
                    " WHERE c.name IN :names"
                )
            }
            events = rows(
                "SELECT v.id, c.name AS campaign, v.entity, v.entity_id, v.kind, v.to_state, v.at, v.detail"
                " FROM events v JOIN campaigns c ON c.id = v.campaign_id WHERE c.name IN :names ORDER BY v.id"
            )
    finally:
        engine.dispose()
    for event in events:
        detail = event["detail"]
        event["detail"] = json.loads(detail) if isinstance(detail, str) else (detail or {})
        at = event["at"]
        event["at"] = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return Journals(campaigns, experiments, measured, dispatched, events)


def hold_intervals(journals: Journals) -> dict[str, list[tuple[datetime, datetime, str]]]:
    """Per slot, each hold's (taken, released, who) from the hold-taken and hold-released events of one attempt."""
    open_: dict[tuple[int, int, str], datetime] = {}
    spans: dict[str, list[tuple[datetime, datetime, str]]] = {}
    for event in journals.events:
        if event["entity"] != "experiment" or event["kind"] not in ("hold-taken", "hold-released"):
            continue
        detail = event["detail"]
        key = (event["entity_id"], int(detail.get("attempt", 0)), str(detail["slot"]))
        if event["kind"] == "hold-taken":
            open_[key] = event["at"]
        elif key in open_:
            who = f"{event['campaign']} experiment {event['entity_id']}"
            spans.setdefault(key[2], []).append((open_.pop(key), event["at"], who))
    return spans


def overlapping(spans: dict[str, list[tuple[datetime, datetime, str]]]) -> int:
    """Holds of one slot that begin before an earlier hold of it has ended."""
    count = 0
    for intervals in spans.values():
        latest_end: datetime | None = None
        for start, end, _ in sorted(intervals):
            if latest_end is not None and start < latest_end:
                count += 1
            latest_end = end if latest_end is None else max(latest_end, end)
    return count


def lost_results(journals: Journals) -> int:
    lost = 0
    for e in journals.experiments:
        if e["state"] == "completed":
            lost += (e["id"], e["attempts"]) not in journals.measured
        elif e["state"] not in ENDED_WITHOUT_RESULT:
            lost += 1
    return lost


def repeated_without_record(journals: Journals) -> int:
    """Attempts that sent actions with no dispatch row, plus protocol steps started twice within one attempt."""
    started: dict[tuple[int, int, int], int] = {}
    unrecorded: set[tuple[int, int]] = set()
    for event in journals.events:
        if event["entity"] != "experiment" or event["kind"] != "action-started":
            continue
        attempt = int(event["detail"].get("attempt", 0))
        if (event["entity_id"], attempt) not in journals.dispatched:
            unrecorded.add((event["entity_id"], attempt))
        key = (event["entity_id"], attempt, int(event["detail"].get("step", -1)))
        started[key] = started.get(key, 0) + 1
    return len(unrecorded) + sum(n - 1 for n in started.values() if n > 1)


def sharing_seconds(journals: Journals, name: str, uncontended_wait_s: float) -> float:
    """What sharing the instruments cost the campaign's experiments, from their journals, contention aside: per hold,
    taking the slot (its wait, up to the uncontended median), opening the port and checking the instrument's
    identity (connect-started .. connect-done), closing it (the last event before hold-released .. hold-released)
    and giving the slot back (hold-released .. the attempt's next event). An embedded run connects each instrument
    once and takes no holds."""
    total = 0.0
    own = [e for e in journals.events if e["campaign"] == name and e["entity"] == "experiment"]
    by_attempt: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for event in own:
        by_attempt.setdefault((event["entity_id"], int(event["detail"].get("attempt", 0))), []).append(event)
    for events in by_attempt.values():
        for i, event in enumerate(events):
            kind = event["kind"]
            if kind == "hold-taken":
                total += min(float(event["detail"]["waited_s"]), uncontended_wait_s)
            elif kind == "connect-done" and i > 0 and events[i - 1]["kind"] == "connect-started":
                total += (event["at"] - events[i - 1]["at"]).total_seconds()
            elif kind == "hold-released" and i > 0:
                total += (event["at"] - events[i - 1]["at"]).total_seconds()
                if i + 1 < len(events):
                    total += min(1.0, (events[i + 1]["at"] - event["at"]).total_seconds())
    return total


def waits(journals: Journals) -> list[float]:
    return [
        float(e["detail"]["waited_s"])
        for e in journals.events
        if e["entity"] == "experiment" and e["kind"] == "hold-taken"
    ]


def campaign_seconds(journals: Journals, name: str) -> float:
    """From the runner's first act on the campaign (its lease taken) to the campaign's last event."""
    own = [e for e in journals.events if e["campaign"] == name]
    starts = [e["at"] for e in own if e["entity"] == "campaign" and e["to_state"] == "running"]
    first = min(starts) if starts else min(e["at"] for e in own)
    return (max(e["at"] for e in own) - first).total_seconds()


# --- one size -------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    size: int
    campaigns_done: int = 0
    runs_completed: int = 0
    run_states: dict[str, int] = field(default_factory=dict)
    experiments: int = 0
    completed: int = 0
    retried: int = 0
    wall_s: float = 0.0
    per_experiment_s: float = 0.0  # served, less contention waits
    sharing_s: float = 0.0  # of which: taking and giving back holds, opening and closing ports (per experiment)
    waits: list[float] = field(default_factory=list)
    overlaps: int = 0
    lost: int = 0
    repeated: int = 0


def measure_size(
    size: int,
    journals: Journals,
    names: Sequence[str],
    states: dict[str, str],
    uncontended_wait_s: float,
) -> Row:
    row = Row(size=size)
    row.campaigns_done = sum(1 for n in names if journals.campaigns.get(n) == "completed")
    row.runs_completed = sum(1 for s in states.values() if s == "Completed")
    for state in states.values():
        row.run_states[state] = row.run_states.get(state, 0) + 1
    row.experiments = len(journals.experiments)
    row.completed = sum(1 for e in journals.experiments if e["state"] == "completed")
    row.retried = sum(max(0, e["attempts"] - 1) for e in journals.experiments)
    first = min(e["at"] for e in journals.events)
    last = max(e["at"] for e in journals.events)
    row.wall_s = (last - first).total_seconds()
    row.waits = waits(journals)
    per_campaign = []
    sharing: list[float] = []
    for name in names:
        own_waits = [
            float(e["detail"]["waited_s"])
            for e in journals.events
            if e["campaign"] == name and e["kind"] == "hold-taken"
        ]
        contention = sum(max(0.0, w - uncontended_wait_s) for w in own_waits)
        done = sum(1 for e in journals.experiments if e["campaign"] == name and e["state"] == "completed")
        if done:
            per_campaign.append((campaign_seconds(journals, name) - contention) / done)
            sharing.append(sharing_seconds(journals, name, uncontended_wait_s) / done)
    row.per_experiment_s = statistics.fmean(per_campaign) if per_campaign else float("nan")
    row.sharing_s = statistics.fmean(sharing) if sharing else float("nan")
    row.overlaps = overlapping(hold_intervals(journals))
    row.lost = lost_results(journals)
    row.repeated = repeated_without_record(journals)
    return row


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- main -----------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = _Parser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8,16", help="numbers of concurrent campaigns, comma-separated")
    parser.add_argument("--experiments", type=int, default=4, help="budget of each campaign")
    parser.add_argument("--batch", type=int, default=2, help="experiments per cycle")
    parser.add_argument("--workers", type=int, default=2, help="prefect workers on the pool")
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_ENV), help="PostgreSQL server URL")
    parser.add_argument("--within", type=float, default=900.0, help="seconds a size may take before it is cut off")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument(
        "--keep", type=Path, help="scratch folder to use and keep (logs, campaign files, a SQLite database)"
    )
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: '{args.sizes}' is not a comma-separated list of whole numbers")
    if not args.sizes or min(args.sizes) < 1:
        parser.error("--sizes: each size is at least 1")
    for name in ("experiments", "batch", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: at least 1")
    if args.batch > args.experiments:
        parser.error("--batch: larger than --experiments")
    if args.within <= 0:
        parser.error("--within: positive")
    return args


def run_inline(folder: Path, env: dict[str, str], db_url: str, name: str, args: argparse.Namespace) -> float:
    """The same campaign by `peirce run --engine inline`, no Prefect server: its time per completed experiment."""
    (spec,) = write_campaigns(folder, [name], args.experiments, args.batch)
    embedded = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    peirce(embedded, "run", spec.name, "--engine", "inline", "--db", db_url, cwd=folder)
    journals = read_journals(db_url, [name])
    done = sum(1 for e in journals.experiments if e["state"] == "completed")
    return campaign_seconds(journals, name) / max(done, 1)


@contextlib.contextmanager
def scratch(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="peirce-lab-load-") as tmp:
        yield Path(tmp)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM (a timeout, a person) unwinds like Ctrl-C: the server, the workers and the twins are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    suffix = uuid.uuid4().hex[:6]
    with scratch(args.keep) as folder:
        with (
            database(folder, args.postgres) as (db_url, db_kind),
            prefect_server(folder, args.postgres) as (env, server_kind),
            twins(folder) as ports,
        ):
            env = {**env, "PEIRCE_ARTIFACTS": str(folder / "artifacts")}
            (folder / "lab.yaml").write_text(yaml.safe_dump(lab_file_content(f"load_{suffix}", ports), sort_keys=False))
            inline_s = run_inline(folder, env, db_url, f"inline_{suffix}", args)
            pool = f"lab-load-{suffix}"
            peirce(env, "deploy", "--pool", pool, "--db", db_url, cwd=folder)
            workers = [
                start_worker(env, pool, db_url=db_url, log=folder / f"worker-{i}.log", name=f"{pool}-{i}")
                for i in range(args.workers)
            ]
            rows = []
            uncontended_wait_s = 0.0
            try:
                for size in args.sizes:
                    names = [f"load_{suffix}_{size}_{i}" for i in range(size)]
                    specs = write_campaigns(folder, names, args.experiments, args.batch)
                    run_ids = submit_all(env, pool, db_url, specs, folder)
                    states = wait_final(env, run_ids, args.within)
                    journals = read_journals(db_url, names)
                    if size == 1:
                        uncontended_wait_s = statistics.median(waits(journals) or [0.0])
                    rows.append(measure_size(size, journals, names, states, uncontended_wait_s))
                    print_row(rows[-1], inline_s, flush=True)
            finally:
                for worker in workers:
                    stop_worker(worker)
        print_table(rows, inline_s, args, db_kind, server_kind, uncontended_wait_s)
        if args.json:
            args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1, default=str))


def print_row(row: Row, inline_s: float, flush: bool = False) -> None:
    print(
        f"  {row.size} campaigns: {row.completed}/{row.experiments} experiments in {row.wall_s:.1f} s, "
        f"served {row.per_experiment_s * 1000:.0f} ms per experiment (inline {inline_s * 1000:.0f} ms), "
        f"runs {row.run_states}",
        file=sys.stderr,
        flush=flush,
    )


def print_table(
    rows: Sequence[Row],
    inline_s: float,
    args: argparse.Namespace,
    db_kind: str,
    server_kind: str,
    uncontended_wait_s: float,
) -> None:
    print(
        f"Campaigns of {args.experiments} experiments (batches of {args.batch}, random planner) on three shared "
        f"device twins over TCP ({', '.join(INSTRUMENTS.values())}); {args.workers} Prefect process workers; "
        f"database: {db_kind}; {server_kind}.\n"
    )
    print(
        f"Inline engine (`peirce run --engine inline`, no Prefect server), same campaign alone: "
        f"{inline_s * 1000:.0f} ms per experiment. Uncontended cost of taking a hold (median wait at the smallest "
        f"size): {uncontended_wait_s * 1000:.0f} ms.\n"
    )
    print(
        "| campaigns | campaigns completed | flow runs completed | experiments completed | retried attempts "
        "| experiments / h | served s / experiment | overhead vs inline, ms / experiment "
        "| of which holds and ports, ms | of which the rest (Prefect, tasks, artifacts), ms "
        "| hold wait mean / p95 / max s | overlapping holds | lost results | repeated without a record |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        per_hour = r.completed / r.wall_s * 3600 if r.wall_s > 0 else float("nan")
        w = r.waits
        wait_text = f"{statistics.fmean(w):.2f} / {percentile(w, 0.95):.2f} / {max(w):.2f}" if w else "—"
        print(
            f"| {r.size} | {r.campaigns_done}/{r.size} | {r.runs_completed}/{r.size} | {r.completed}/{r.experiments} "
            f"| {r.retried} | {per_hour:.0f} | {r.per_experiment_s:.3f} | {(r.per_experiment_s - inline_s) * 1000:.0f} "
            f"| {r.sharing_s * 1000:.0f} | {(r.per_experiment_s - inline_s - r.sharing_s) * 1000:.0f} "
            f"| {wait_text} | {r.overlaps} | {r.lost} | {r.repeated} |"
        )


if __name__ == "__main__":
    try:
        main()
    except BadInput as exc:
        print(f"lab_load: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(130) from None
