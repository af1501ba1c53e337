"""A client for any OpenAI-compatible chat-completions endpoint: a hosted API, vLLM, Ollama, a llama.cpp server.

Only `POST {base_url}/chat/completions` is used, because it is the one call every such server implements the same
way; anything vendor-specific (tools, streaming, logprobs) would tie a campaign to one vendor.

`chat` never raises for network, HTTP or protocol failures. An abductor that cannot reach its model is an ordinary
event in a campaign that runs for days (the laptop lost Wi-Fi, the GPU box is rebooting, the quota ran out); the
orchestrator falls back to another source and stores what happened, so `chat` returns a `ChatExchange` with `error`
set and every attempt recorded instead of unwinding the cycle.

The API key is read from the environment at call time and only ever put in the Authorization header. It is never
stored in the exchange, and any text that comes back (an error body that echoes the key, an exception message) is
scrubbed of it before it is kept or logged, because exchanges are stored with decisions that reviewers read and
campaigns that get shared.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from planners.hypotheses.settings import LLMSettings

log = logging.getLogger(__name__)

RETRY_AFTER_CAP_S = 60.0
"""A server may ask for a long pause (Retry-After); waiting longer than this holds a whole cycle up for one answer."""
BODY_EXCERPT = 200
"""Characters of an error body kept in the error line: enough for the server's reason, short enough to read."""


@dataclass
class ChatExchange:
    """One request to the endpoint and what came of it, as stored with the decision."""

    request: dict[str, Any]  # url, model, messages, parameters: what was sent, without headers (so without the key)
    answer: str | None = None  # choices[0].message.content
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens
    attempts: list[dict[str, Any]] = field(default_factory=list)  # attempt, status, error, seconds
    seconds: float = 0.0
    error: str | None = None  # one line; None when an answer came back
    notes: list[str] = field(default_factory=list)  # things a reviewer should know that are not errors
    finish_reason: str | None = None  # "length" explains an answer cut off mid-JSON
    served_model: str | None = None  # the model the server says answered, which may be more specific than asked

    def to_record(self) -> dict[str, Any]:
        """JSON-ready data for the decision record."""
        return asdict(self)


def chat(
    settings: LLMSettings,
    messages: list[dict[str, Any]],
    *,
    json_schema: dict[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ChatExchange:
    """Send `messages` to the endpoint of `settings`, retrying timeouts, connection errors, 429 and 5xx answers.

    `json_schema` is the schema of the answer, required when `settings.response_format` is "json_schema".
    `sleep` is what waits between attempts (tests pass one that records instead of waiting).
    Failures come back in the exchange; the only exception is ValueError for json_schema mode without a schema,
    which is a programming error, not an endpoint failure.
    """
    url = f"{settings.base_url.rstrip('/')}/chat/completions"
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": messages,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
    }
    response_format = _response_format(settings, json_schema)
    if response_format is not None:
        body["response_format"] = response_format
    parameters = {k: v for k, v in body.items() if k not in ("model", "messages")}
    exchange = ChatExchange(
        request={"url": url, "model": settings.model, "messages": messages, "parameters": parameters}
    )

    headers = {"Content-Type": "application/json"}
    key = _key(settings, exchange)
    if key:
        headers["Authorization"] = f"Bearer {key}"

    started = time.monotonic()
    # httpx applies the timeout to connecting and to each read; a chat server sends its whole answer at once when
    # generation ends, so the read timeout bounds the wait for the answer.
    with httpx.Client(timeout=settings.timeout_s) as client:
        _attempts(client, url, body, headers, key, settings, exchange, sleep)
    exchange.seconds = round(time.monotonic() - started, 3)
    return exchange


def _response_format(settings: LLMSettings, json_schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if settings.response_format == "json_object":
        return {"type": "json_object"}
    if settings.response_format == "json_schema":
        if json_schema is None:
            raise ValueError("response_format 'json_schema' needs the answer's schema (json_schema=...)")
        # strict=False: strict mode rejects schemas with optional fields or patterns, which the claim schema has;
        # servers that enforce a schema still use it to constrain decoding.
        return {"type": "json_schema", "json_schema": {"name": "hypotheses", "schema": json_schema, "strict": False}}
    return None


def _key(settings: LLMSettings, exchange: ChatExchange) -> str | None:
    if settings.api_key_env is None:
        return None
    key = os.environ.get(settings.api_key_env)
    if not key:
        # Local servers (Ollama, llama.cpp) take no key, so a missing one is worth a note, not a failure; a hosted
        # API will answer 401, and that error is what the reviewer sees.
        exchange.notes.append(f"environment variable {settings.api_key_env} is not set")
        return None
    return key


def _attempts(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    key: str | None,
    settings: LLMSettings,
    exchange: ChatExchange,
    sleep: Callable[[float], None],
) -> None:
    """Try up to 1 + max_retries times; fill in `exchange` with the answer or the error."""
    total = settings.max_retries + 1
    for k in range(total):
        attempt = k + 1
        started = time.monotonic()
        status: int | None = None
        retry_after: float | None = None
        try:
            response = client.post(url, json=body, headers=headers)
        except httpx.TimeoutException:
            error = "timed out"
            final = f"timed out after {_count(attempt)} (timeout {settings.timeout_s:g} s)"
        except httpx.TransportError as exc:
            detail = _one_line(_scrub(str(exc) or type(exc).__name__, key))
            error = f"connection failed: {detail}"
            final = f"connection failed after {_count(attempt)}: {detail}"
        else:
            status = response.status_code
            if response.is_success:
                exchange.attempts.append(_attempt(attempt, status, None, started))
                _read_answer(response, key, exchange)
                return
            excerpt = _one_line(_scrub(response.text, key))[:BODY_EXCERPT]
            error = f"HTTP {status}: {excerpt}"
            if status != 429 and status < 500:
                # Other 4xx (bad key, unknown model, malformed request) will fail the same way every time. Redirects
                # are not followed either: following one would send the key to wherever it points.
                exchange.attempts.append(_attempt(attempt, status, error, started))
                exchange.error = error
                return
            final = f"HTTP {status} after {_count(attempt)}: {excerpt}"
            retry_after = _retry_after(response)
        exchange.attempts.append(_attempt(attempt, status, error, started))
        log.info("LLM endpoint attempt %d of %d failed: %s", attempt, total, error)
        if attempt == total:
            exchange.error = final
            return
        wait = settings.backoff_s * 2**k
        if retry_after is not None:
            wait = max(wait, min(retry_after, RETRY_AFTER_CAP_S))
        sleep(wait)


def _read_answer(response: httpx.Response, key: str | None, exchange: ChatExchange) -> None:
    try:
        data = response.json()
    except ValueError:
        exchange.error = f"answer is not JSON: {_one_line(_scrub(response.text, key))[:BODY_EXCERPT]}"
        return
    if not isinstance(data, dict):
        exchange.error = "answer is not a chat completion (not a JSON object)"
        return
    usage = data.get("usage")
    if isinstance(usage, dict):
        exchange.usage = {
            name: usage[name]
            for name in ("prompt_tokens", "completion_tokens", "total_tokens")
            if isinstance(usage.get(name), int)
        }
    if isinstance(data.get("model"), str):
        exchange.served_model = data["model"]
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(choice.get("finish_reason"), str):
        exchange.finish_reason = choice["finish_reason"]
    if not isinstance(content, str):
        exchange.error = "answer has no choices[0].message.content"
        return
    exchange.answer = _scrub(content, key)


def _retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds, when it is a number (the HTTP-date form is rare from these servers)."""
    try:
        value = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _attempt(attempt: int, status: int | None, error: str | None, started: float) -> dict[str, Any]:
    return {"attempt": attempt, "status": status, "error": error, "seconds": round(time.monotonic() - started, 3)}


def _count(attempts: int) -> str:
    return f"{attempts} attempt" if attempts == 1 else f"{attempts} attempts"


def _scrub(text: str, key: str | None) -> str:
    return text.replace(key, "[key]") if key else text


def _one_line(text: str) -> str:
    return " ".join(text.split())
