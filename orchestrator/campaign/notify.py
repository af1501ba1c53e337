"""`notify:` in the campaign file: webhooks told when a batch waits for approval, when results are needed, and when
the campaign finishes, is stopped or fails.

    notify:
      - {url_env: PEIRCE_SLACK_WEBHOOK, format: slack, on: [approval, results, finished, failed]}
      - {url: "http://127.0.0.1:8080/hook", format: json}

The campaign file is stored with the campaign (and travels in its archives), so a webhook's secret never goes in
it: `url_env` names the environment variable that holds the URL, read by the runner when it sends. A literal `url`
is for a receiver that needs no secret (a lab's own server): it may carry no user or password, no query string and
no fragment, and may not be a chat service's incoming webhook (whose path is its token). A refused URL is never
repeated in the error, which names the field only.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from orchestrator.records.base import StrictModel as _Strict

NotifyEvent = Literal["approval", "results", "finished", "stopped", "failed"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("approval", "results", "finished", "stopped", "failed")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Services whose incoming-webhook URL is its own credential (a token in the path or the query).
_TOKEN_HOSTS = (
    "hooks.slack.com",
    "discord.com",
    "discordapp.com",
    "webhook.office.com",
    "outlook.office.com",
    "chat.googleapis.com",
    "api.telegram.org",
    "hooks.zapier.com",
    "maker.ifttt.com",
    "ntfy.sh",
)


class Webhook(_Strict):
    """One receiver of the campaign's notifications."""

    url_env: str | None = Field(
        default=None,
        description="Environment variable holding the webhook's URL (its token stays out of the campaign's records).",
    )
    url: str | None = Field(
        default=None,
        description="The URL itself, only for a receiver that needs no secret: no user, password, query or token.",
    )
    format: Literal["json", "slack"] = Field(
        default="json",
        description="json: {campaign, event, reason, experiments, at}; slack: {text} (Slack, Mattermost, ...).",
    )
    on: list[NotifyEvent] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS),
        description="What to send: approval, results, finished, stopped, failed (default: all).",
    )
    timeout: float = Field(default=5.0, gt=0, le=60, description="Seconds to wait for the receiver's answer.")

    @field_validator("url_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("name an environment variable (letters, digits, _), not a URL")
        return value

    @field_validator("url")
    @classmethod
    def _no_secret(cls, value: str | None) -> str | None:
        problem = None if value is None else literal_url_problem(value)
        if problem:
            raise ValueError(f"{problem}; put the URL in an environment variable and name it with url_env")
        return value

    @model_validator(mode="after")
    def _one_address(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url_env (the variable holding the URL) and url")
        return self

    @property
    def label(self) -> str:
        """How messages and events name this webhook: its variable, or its URL (which holds no secret)."""
        return f"${self.url_env}" if self.url_env is not None else str(self.url)


def literal_url_problem(url: str) -> str | None:
    """Why `url` may not be written in a campaign file (it could be a credential), or None. Never quotes it."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https") or not host:
        return "not an http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "carries a user or password"
    if parts.query:
        return "has a query string (a token?)"
    if parts.fragment:
        return "has a fragment"
    if any(host == known or host.endswith(f".{known}") for known in _TOKEN_HOSTS):
        return "is a chat service's webhook, whose path is its token"
    return None
