"""Notifications: the campaign's webhooks (`notify:` in its file, `campaign.notify`) told when people are needed
and when the campaign ends.

- `approval` and `results`: when the loop starts waiting for people (`cycle.waiting.await_people`), once per
  request: each request it tells about is marked (`detail["notified_at"]`, committed before anything is sent), so
  a resumed campaign, or a runner that waits again, never repeats a notice for the same request;
- `finished` and `stopped`: when the campaign closes (`cycle.recovery.finish_campaign`), once per close;
- `failed`: when a run ends in an error (the CLI, after it has marked the campaign failed: `campaign.runs` is below
  this room, so the call is made from above).

Payloads: `json` sends `{campaign, event, status, reason, experiments: [{seq, parameters, reasons}], at}`, `slack`
sends `{"text": "..."}` (Slack and every receiver that speaks its incoming-webhook format).

A notification never fails the campaign: a receiver that refuses the connection, answers with an error or does not
answer within the webhook's timeout costs one warning line on the runner's stderr and one `notify-failed` event
(the webhook by its variable, the status or the kind of error). The URL of a `url_env` webhook is read from the
environment when sending and appears nowhere else: not in the database, not in an event, not in a message, and
not in httpx's own log line, which is redacted while its request is sent.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from orchestrator.campaign.notify import NotifyEvent, Webhook
from orchestrator.campaign.spec import CampaignSpec
from orchestrator.people.waiting import Waiting
from orchestrator.records.events import Entity, EventKind, NotifyFailedDetail
from orchestrator.store.database import Database
from orchestrator.store.models import Campaign, Experiment, PersonRequest, RequestKind, utcnow
from orchestrator.store.records import add_event

# The request kinds the loop notifies about when it starts waiting for them, and the event each one sends.
WAITING_EVENTS: dict[str, NotifyEvent] = {RequestKind.APPROVAL: "approval", RequestKind.RESULT: "results"}
# The campaign's status at its close, and the event it sends.
END_EVENTS: dict[str, NotifyEvent] = {"completed": "finished", "stopped": "stopped", "failed": "failed"}
NOTIFIED = "notified_at"  # the key a request's detail gets once people were told about it

Warn = Callable[[str], None]


def _stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Notice:
    """What one notification says."""

    campaign: str
    event: NotifyEvent
    status: str
    reason: str
    experiments: list[dict[str, Any]] = field(default_factory=list)
    at: datetime = field(default_factory=utcnow)

    def text(self) -> str:
        """The one line a chat message shows."""
        if self.event in ("approval", "results"):
            return f"peirce: {self.campaign} is waiting for people: {self.reason}"
        return f"peirce: {self.campaign} {self.event}: {self.reason}"

    def payload(self, format: str) -> dict[str, Any]:
        if format == "slack":
            return {"text": self.text()}
        return {
            "campaign": self.campaign,
            "event": self.event,
            "status": self.status,
            "reason": self.reason,
            "experiments": self.experiments,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class Delivery:
    """How one webhook took one notice: `status` its HTTP status, else `error` (never the URL)."""

    webhook: str
    event: NotifyEvent
    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


# --- the hooks the loop and the CLI call ------------------------------------------------------------------------


def notify_waiting(db: Database, campaign_id: int, spec: CampaignSpec, *, warn: Warn = _stderr) -> list[Delivery]:
    """Tell the webhooks about the campaign's open requests nobody was told about yet (one notice per kind), after
    marking them told in one transaction. Returns what each webhook answered; never raises for a webhook."""
    if not spec.notify:
        return []
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        rows = session.execute(
            select(PersonRequest, Experiment)
            .join(Experiment, Experiment.id == PersonRequest.experiment_id)
            .where(
                PersonRequest.campaign_id == campaign_id,
                PersonRequest.resolved_at.is_(None),
                PersonRequest.kind.in_(tuple(WAITING_EVENTS)),
            )
            .order_by(Experiment.seq)
        ).all()
        by_kind: dict[str, list[tuple[PersonRequest, Experiment]]] = {}
        for request, experiment in rows:
            event = WAITING_EVENTS[request.kind]
            if NOTIFIED in (request.detail or {}) or not _subscribed(spec.notify, event):
                continue
            by_kind.setdefault(request.kind, []).append((request, experiment))
        now = utcnow()
        notices = []
        for kind, pairs in by_kind.items():
            for request, _ in pairs:
                request.detail = {**(request.detail or {}), NOTIFIED: now.isoformat()}
            seqs = [experiment.seq for _, experiment in pairs]
            notices.append(
                Notice(
                    campaign=campaign.name,
                    event=WAITING_EVENTS[kind],
                    status=campaign.status,
                    reason=Waiting({kind: seqs}).describe(campaign.name),
                    experiments=[_experiment(experiment, request) for request, experiment in pairs],
                    at=now,
                )
            )
    return [d for notice in notices for d in send(db, campaign_id, spec.notify, notice, warn=warn)]


def notify_end(
    db: Database, campaign_id: int, spec: CampaignSpec, status: str, reason: str, *, warn: Warn = _stderr
) -> list[Delivery]:
    """The campaign closed (`completed`: event `finished`; `stopped`: `stopped`; `failed`: `failed`)."""
    if not spec.notify:
        return []
    event = END_EVENTS.get(status, "finished")
    with db.session() as session:
        name = session.get_one(Campaign, campaign_id).name
    return send(db, campaign_id, spec.notify, Notice(name, event, status, reason), warn=warn)


def notify_failed(db: Database, campaign_id: int, message: str, *, warn: Warn = _stderr) -> list[Delivery]:
    """A run ended in an error and the campaign is marked failed: tell the webhooks of its stored spec. Whatever
    goes wrong here (the database among it) is one warning line: the failure being reported is the news."""
    try:
        with db.session() as session:
            spec = CampaignSpec.model_validate(session.get_one(Campaign, campaign_id).spec)
        return notify_end(db, campaign_id, spec, "failed", message, warn=warn)
    except Exception as exc:  # a notification never adds a failure to the one being reported
        warn(f"notification 'failed' not sent: {type(exc).__name__}")
        return []


# --- sending ----------------------------------------------------------------------------------------------------


def send(
    db: Database, campaign_id: int, webhooks: Iterable[Webhook], notice: Notice, *, warn: Warn = _stderr
) -> list[Delivery]:
    """Post `notice` to each webhook subscribed to its event; a failure is a warning and a `notify-failed` event."""
    deliveries = []
    for webhook in webhooks:
        if notice.event not in webhook.on:
            continue
        delivery = _post(webhook, notice)
        deliveries.append(delivery)
        if not delivery.ok:
            _record_failure(db, campaign_id, delivery, warn)
    return deliveries


def _post(webhook: Webhook, notice: Notice) -> Delivery:
    label = webhook.label
    url = webhook.url if webhook.url is not None else os.environ.get(webhook.url_env or "", "").strip()
    if not url:
        return Delivery(label, notice.event, error=f"environment variable {webhook.url_env} is not set")
    with _redacted(url, label):
        try:
            response = httpx.post(url, json=notice.payload(webhook.format), timeout=webhook.timeout)
        except httpx.TimeoutException:
            return Delivery(label, notice.event, error=f"no answer within {webhook.timeout:g} s")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # The kind of error only: httpx's messages may quote the URL.
            return Delivery(label, notice.event, error=type(exc).__name__)
    return Delivery(label, notice.event, status=response.status_code)


def _record_failure(db: Database, campaign_id: int, delivery: Delivery, warn: Warn) -> None:
    what = f"HTTP {delivery.status}" if delivery.error is None else delivery.error
    warn(f"notification '{delivery.event}' to {delivery.webhook} failed: {what}")
    detail = NotifyFailedDetail(
        webhook=delivery.webhook, event=delivery.event, status=delivery.status, error=delivery.error
    )
    try:
        with db.session() as session:
            add_event(
                session,
                campaign_id,
                Entity.CAMPAIGN,
                campaign_id,
                EventKind.NOTIFY_FAILED,
                detail=detail.model_dump(mode="json", exclude_none=True),
            )
    except Exception as exc:  # warned above; a notification never fails the campaign
        warn(f"notify-failed event not recorded: {type(exc).__name__}")


def _subscribed(webhooks: Iterable[Webhook], event: NotifyEvent) -> bool:
    return any(event in webhook.on for webhook in webhooks)


def _experiment(experiment: Experiment, request: PersonRequest) -> dict[str, Any]:
    out: dict[str, Any] = {"seq": experiment.seq, "parameters": experiment.parameters}
    reasons = (request.detail or {}).get("reasons")
    if reasons:
        out["reasons"] = reasons
    return out


# --- keeping the URL out of httpx's log -------------------------------------------------------------------------


class _Redact(logging.Filter):
    """httpx logs every request at INFO with its full URL; while a webhook's request is sent, its URL is replaced
    by the webhook's label in any record of the `httpx` logger."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}

    def add(self, url: str, label: str) -> None:
        with self._lock:
            for form in _forms(url):
                self._secrets[form] = label

    def remove(self, url: str) -> None:
        with self._lock:
            for form in _forms(url):
                self._secrets.pop(form, None)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = dict(self._secrets)
        if not secrets:
            return True
        message = record.getMessage()
        changed = message
        for url, label in secrets.items():
            changed = changed.replace(url, label)
        if changed != message:
            record.msg, record.args = changed, None
        return True


def _forms(url: str) -> set[str]:
    """The URL as given and as httpx prints it (normalised: a lower-case host, a `/` for an empty path)."""
    try:
        return {url, str(httpx.URL(url))}
    except (httpx.InvalidURL, ValueError):
        return {url}


_REDACT = _Redact()
logging.getLogger("httpx").addFilter(_REDACT)


class _redacted:
    def __init__(self, url: str, label: str) -> None:
        self.url, self.label = url, label

    def __enter__(self) -> None:
        _REDACT.add(self.url, self.label)

    def __exit__(self, *exc: object) -> None:
        _REDACT.remove(self.url)
