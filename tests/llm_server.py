"""A real HTTP server speaking the OpenAI chat-completions protocol, answering from a script.

Tests of the LLM path run against it instead of patching the client, so they exercise what production does: JSON
over a socket, status codes, headers, timeouts and refused connections. It listens on 127.0.0.1 on a free port and
runs in a daemon thread, so a test that forgets to close it cannot hang the run.

Use the `llm_server` fixture (`from tests.llm_server import llm_server_fixture  # noqa: F401`), script answers
with `reply` or `script`, point `LLMSettings.base_url` at `server.url`, and read what was sent from `server.requests`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Scripted:
    """One answer: `body` is sent as JSON when it is a dict or list, as it is when a str."""

    status: int = 200
    body: Any = None
    delay: float = 0.0  # seconds to wait before answering (for timeouts)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or the raw text when it was not JSON


def completion(content: str | None, usage: dict[str, int] | None = None, model: str = "scripted-model") -> dict:
    """A chat-completion body whose first choice says `content`."""
    body: dict[str, Any] = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


class ScriptedLLMServer:
    """Answers POST /v1/chat/completions from a queue of `Scripted` answers, then with `default` once it is empty."""

    def __init__(self, default: Scripted | None = None) -> None:
        self.default = default or Scripted(body=completion('{"hypotheses": []}'))
        self.requests: list[Received] = []
        self._queue: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        # A short poll interval: `shutdown` waits for the loop's next poll, and the default 0.5 s adds up over tests.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="scripted-llm", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *answers: Scripted) -> None:
        with self._lock:
            self._queue.extend(answers)

    def reply(
        self, content: str, usage: dict[str, int] | None = None, *, delay: float = 0.0, status: int = 200
    ) -> None:
        """Queue a completion saying `content`."""
        self.script(Scripted(status=status, body=completion(content, usage), delay=delay))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedLLMServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, received: Received) -> Scripted:
        with self._lock:
            self.requests.append(received)
            if received.path != "/v1/chat/completions":
                return Scripted(status=404, body={"error": {"message": f"no route {received.path}"}})
            return self._queue.popleft() if self._queue else self.default


def _handler(server: ScriptedLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = server._answer(Received(path=self.path, headers=headers, body=body))
            time.sleep(answer.delay)
            payload = (answer.body if isinstance(answer.body, str) else json.dumps(answer.body)).encode()
            try:
                self.send_response(answer.status)
                content_type = "text/plain" if isinstance(answer.body, str) else "application/json"
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test): nobody is left to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; `requests` records what came in

    return Handler


@pytest.fixture(name="llm_server")
def llm_server_fixture() -> Iterator[ScriptedLLMServer]:
    """A running server, closed after the test. The function has another name than the fixture so that a test's
    `llm_server` argument does not shadow the import (ruff F811)."""
    with ScriptedLLMServer() as server:
        yield server
