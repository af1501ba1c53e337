"""Notifications against a real HTTP server on loopback: a batch waiting for approval is announced once with its
seqs, work handed to a person asks for results, the campaign's end is announced, a webhook that fails never fails
the campaign, and the secret URL of a `url_env` webhook appears in no event, no log line, no stored spec."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.campaign import runs
from orchestrator.cycle.context import CampaignContext, load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.lab.contract import Lab
from orchestrator.people.notify import notify_failed
from orchestrator.people.requests import answer, open_requests
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Campaign, Event, Experiment, ExperimentState, PersonRequest, RequestKind
from orchestrator.store.records import move_experiment, set_campaign_status
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec, write_spec
from tests.orchestrator.cli.helpers import invoke
from tests.person_lab import PersonLab

SECRET = "T0KEN-sk-1234567890abcdef"  # what a chat service's webhook path would hold
ENV = "PEIRCE_TEST_WEBHOOK"


@dataclass(frozen=True)
class Hit:
    path: str
    body: Any


class Hooks:
    """An HTTP server on 127.0.0.1 recording every POST; a path's answer is 200 unless `answers` says otherwise
    (a status, or a delay in seconds before answering 200)."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.statuses: dict[str, int] = {}
        self.delays: dict[str, float] = {}
        self._lock = threading.Lock()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hooks._lock:
                    hooks.hits.append(Hit(self.path, json.loads(raw)))
                time.sleep(hooks.delays.get(self.path, 0.0))
                try:
                    self.send_response(hooks.statuses.get(self.path, 200))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="webhooks", daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def at(self, path: str) -> list[Any]:
        with self._lock:
            return [hit.body for hit in self.hits if hit.path == path]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = Hooks()
    try:
        yield server
    finally:
        server.close()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nobody listens there once the socket is closed


def _start(tmp_path: Path, data: dict[str, Any], lab: Lab | None = None) -> tuple[Database, CampaignContext]:
    db = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    spec, text = to_spec(data, EXAMPLES_DIR)
    campaign_id, _ = open_campaign(db, spec, text)
    return db, _claimed(db, campaign_id, lab)


def _claimed(db: Database, campaign_id: int, lab: Lab | None = None) -> CampaignContext:
    lease = runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id, lab=lab)
    ctx.runner = lease.runner
    return ctx


def _approve_all(db: Database, campaign_id: int, by: str) -> None:
    with db.session() as session:
        for request in open_requests(session, campaign_id, [RequestKind.APPROVAL]):
            answer(session, request, by=by, resolution="approved")
            experiment = session.get_one(Experiment, request.experiment_id)
            move_experiment(session, experiment, ExperimentState.APPROVED, detail={"by": by})


def _events(db: Database, kind: str) -> list[dict[str, Any]]:
    with db.session() as session:
        return [e.detail for e in session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id))]


def test_a_batch_waiting_for_approval_is_announced_once_with_its_seqs_and_the_end_too(
    tmp_path: Path, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, hooks.url(f"/services/{SECRET}"))
    data = hartmann_spec(budget={"experiments": 4, "batch_size": 2}, approval="batch")
    data["notify"] = [
        {"url": hooks.url("/hook"), "format": "json"},
        {"url_env": ENV, "format": "slack", "on": ["approval", "finished"]},
    ]
    db, ctx = _start(tmp_path, data)
    assert run_loop(ctx, InlineStages(ctx)).startswith("waiting for people")

    [notice] = hooks.at("/hook")
    assert notice["campaign"] == "h6" and notice["event"] == "approval" and notice["status"] == "running"
    assert notice["reason"] == "2 experiments wait for approval (#1, #2; `peirce pending h6`)"
    assert [e["seq"] for e in notice["experiments"]] == [1, 2]
    assert notice["experiments"][0]["reasons"] == ["approval: batch (every batch waits for a person)"]
    assert set(notice["experiments"][0]["parameters"]) == {f"x{i}" for i in range(1, 7)}
    assert notice["at"].endswith("+00:00")
    assert hooks.at(f"/services/{SECRET}") == [
        {"text": "peirce: h6 is waiting for people: 2 experiments wait for approval (#1, #2; `peirce pending h6`)"}
    ]

    # Resumed with nothing answered: the same pause, nobody told twice.
    ctx = _claimed(db, ctx.campaign_id)
    run_loop(ctx, InlineStages(ctx))
    assert len(hooks.at("/hook")) == 1

    _approve_all(db, ctx.campaign_id, "Ada")
    ctx = _claimed(db, ctx.campaign_id)
    run_loop(ctx, InlineStages(ctx))
    _approve_all(db, ctx.campaign_id, "Ada")
    ctx = _claimed(db, ctx.campaign_id)
    assert run_loop(ctx, InlineStages(ctx)) == "budget of 4 experiments spent"

    told = [(n["event"], [e["seq"] for e in n["experiments"]]) for n in hooks.at("/hook")]
    assert told == [("approval", [1, 2]), ("approval", [3, 4]), ("finished", [])]
    assert hooks.at("/hook")[-1]["status"] == "completed"
    assert hooks.at("/hook")[-1]["reason"] == "budget of 4 experiments spent"
    assert [n["text"] for n in hooks.at(f"/services/{SECRET}")][1:] == [
        "peirce: h6 is waiting for people: 2 experiments wait for approval (#3, #4; `peirce pending h6`)",
        "peirce: h6 finished: budget of 4 experiments spent",
    ]
    assert _events(db, "notify-failed") == []


def test_work_handed_to_a_person_asks_for_results(tmp_path: Path, hooks: Hooks) -> None:
    data = hartmann_spec(budget={"experiments": 2, "batch_size": 2})
    data["notify"] = [{"url": hooks.url("/hook"), "on": ["results"]}]
    db, ctx = _start(tmp_path, data, lab=PersonLab())
    run_loop(ctx, InlineStages(ctx))
    [notice] = hooks.at("/hook")
    assert notice["event"] == "results"
    assert notice["reason"] == "2 experiments wait for results entered by hand (#1, #2; `peirce next h6`)"
    with db.session() as session:
        assert all("notified_at" in r.detail for r in session.scalars(select(PersonRequest)))


def test_webhooks_that_fail_do_not_fail_the_campaign(
    tmp_path: Path, hooks: Hooks, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks.statuses["/broken"] = 500
    hooks.delays["/slow"] = 2.0
    data = hartmann_spec(budget={"experiments": 2, "batch_size": 2})
    data["notify"] = [
        {"url": hooks.url("/broken")},
        {"url": f"http://127.0.0.1:{_closed_port()}/hook"},
        {"url": hooks.url("/slow"), "timeout": 0.2},
        {"url_env": "PEIRCE_TEST_UNSET_WEBHOOK"},
        {"url": hooks.url("/hook")},
    ]
    db, ctx = _start(tmp_path, data)
    assert run_loop(ctx, InlineStages(ctx)) == "budget of 2 experiments spent"
    with db.session() as session:
        assert session.get_one(Campaign, ctx.campaign_id).status == "completed"
    assert [n["event"] for n in hooks.at("/hook")] == ["finished"]  # the working one was told all the same

    failed = _events(db, "notify-failed")
    port = data["notify"][1]["url"]
    assert failed == [
        {"webhook": hooks.url("/broken"), "event": "finished", "status": 500},
        {"webhook": port, "event": "finished", "error": "ConnectError"},
        {"webhook": hooks.url("/slow"), "event": "finished", "error": "no answer within 0.2 s"},
        {
            "webhook": "$PEIRCE_TEST_UNSET_WEBHOOK",
            "event": "finished",
            "error": "environment variable PEIRCE_TEST_UNSET_WEBHOOK is not set",
        },
    ]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: notification 'finished' to {hooks.url('/broken')} failed: HTTP 500",
        f"warning: notification 'finished' to {port} failed: ConnectError",
        f"warning: notification 'finished' to {hooks.url('/slow')} failed: no answer within 0.2 s",
        "warning: notification 'finished' to $PEIRCE_TEST_UNSET_WEBHOOK failed: "
        "environment variable PEIRCE_TEST_UNSET_WEBHOOK is not set",
    ]


def test_a_failed_campaign_is_announced_with_its_message(tmp_path: Path, hooks: Hooks) -> None:
    data = hartmann_spec(budget={"experiments": 2, "batch_size": 2})
    data["notify"] = [{"url": hooks.url("/hook"), "on": ["failed"]}]
    db, ctx = _start(tmp_path, data)
    with db.session() as session:
        set_campaign_status(session, session.get_one(Campaign, ctx.campaign_id), "failed", reason="RuntimeError: x")
    notify_failed(db, ctx.campaign_id, "RuntimeError: x")
    [notice] = hooks.at("/hook")
    assert (notice["event"], notice["status"], notice["reason"]) == ("failed", "failed", "RuntimeError: x")


def test_the_secret_url_is_in_no_event_no_log_line_and_no_stored_spec(
    tmp_path: Path,
    hooks: Hooks,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret_path = f"/services/{SECRET}"
    hooks.statuses[secret_path] = 500  # a failure, so that every message about it is written
    monkeypatch.setenv(ENV, hooks.url(secret_path))
    caplog.set_level(logging.DEBUG)
    data = hartmann_spec(budget={"experiments": 2, "batch_size": 2}, approval="batch")
    data["notify"] = [{"url_env": ENV, "format": "slack"}]
    db, ctx = _start(tmp_path, data)
    run_loop(ctx, InlineStages(ctx))
    _approve_all(db, ctx.campaign_id, "Ada")
    ctx = _claimed(db, ctx.campaign_id)
    assert run_loop(ctx, InlineStages(ctx)) == "budget of 2 experiments spent"

    assert [n["text"].split(":")[1] for n in hooks.at(secret_path)] == [" h6 is waiting for people", " h6 finished"]
    assert [e["webhook"] for e in _events(db, "notify-failed")] == [f"${ENV}", f"${ENV}"]
    assert any("HTTP Request: POST" in r.getMessage() for r in caplog.records)  # httpx did log its requests
    logged = "\n".join(r.getMessage() for r in caplog.records)
    printed = capsys.readouterr()
    with db.session() as session:
        campaign = session.get_one(Campaign, ctx.campaign_id)
        stored = [
            json.dumps(campaign.spec),
            campaign.spec_text,
            *(json.dumps(e.detail) for e in session.scalars(select(Event))),
            *(json.dumps(r.detail) for r in session.scalars(select(PersonRequest))),
        ]
    assert ENV in campaign.spec_text
    for text in [logged, printed.out, printed.err, *stored]:
        assert SECRET not in text
    assert (tmp_path / "c.db").read_bytes().find(SECRET.encode()) == -1


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"https://hooks.slack.com/services/{SECRET}", "is a chat service's webhook, whose path is its token"),
        (f"http://127.0.0.1:8080/hook?token={SECRET}", "has a query string (a token?)"),
        (f"http://ada:{SECRET}@127.0.0.1:8080/hook", "carries a user or password"),
        ("ftp://127.0.0.1/hook", "not an http(s) URL"),
    ],
)
def test_a_url_that_may_hold_a_secret_is_refused_without_repeating_it(tmp_path: Path, url: str, problem: str) -> None:
    spec = write_spec(tmp_path / "c.yaml", {**hartmann_spec(), "notify": [{"url": url}]})
    result = invoke("validate", str(spec), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: notify[0].url: {problem}; put the URL in an environment variable and name it with url_env"
    )
    assert SECRET not in result.stdout + result.stderr


def test_a_webhook_names_one_address(tmp_path: Path) -> None:
    for hook, message in [
        ({}, "notify[0]: give exactly one of url_env (the variable holding the URL) and url"),
        ({"url_env": "https://example.org/x"}, "notify[0].url_env: name an environment variable"),
        ({"url_env": ENV, "on": ["approved"]}, "notify[0].on[0]: Input should be 'approval', 'results', "),
    ]:
        spec = write_spec(tmp_path / "c.yaml", {**hartmann_spec(), "notify": [hook]})
        result = invoke("validate", str(spec), cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.startswith(f"error: {message}"), result.stderr
