"""Serving a device twin's protocol over a pseudo-terminal or TCP, with injectable faults.

A twin is a `TwinProtocol` (the device's brain: request line in, reply lines out) served by a `TwinServer`
on a real pty (the driver opens its path as it would `/dev/ttyUSB0`) or on a TCP port (the driver opens
`socket://127.0.0.1:PORT`, as it would a serial device server). The bytes are the device's, so a driver tested
against its twin is tested against its protocol.

Faults (`FaultPlan`) are drawn per request, seeded, or scripted for exact tests:
- `no_answer`: the request is lost (not acted on, no reply);
- `late_answer`: acted on, answered after `late_s` (past the driver's timeout);
- `garbled`: acted on, answered with corrupted bytes;
- `device_error`: not acted on, answered with the device's own error reply;
- `disconnect`: not acted on, the line drops (TCP: connection closed; pty: a new pty behind the same path).
Every injected fault is kept in `TwinServer.faults` with the request it hit.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import tempfile
import threading
import time
import tty
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

FAULT_KINDS = ("no_answer", "late_answer", "garbled", "device_error", "disconnect")


class TwinProtocol(ABC):
    """A device's behaviour at the protocol level. Called from one server thread at a time."""

    request_terminator: bytes = b"\r\n"  # what ends a request (the driver's write terminator)
    reply_terminator: bytes = b"\r\n"  # appended to every reply line
    encoding = "ascii"

    # A protocol framed by length (Modbus RTU) ends a frame with silence: bytes that do not make a whole request
    # when the line falls quiet are a broken frame, and the device drops them (Modbus over Serial Line 2.5.1.1).
    drop_partial_on_silence: bool = False

    @abstractmethod
    def handle(self, request: str) -> Sequence[str | bytes]:
        """Act on one request; return the reply lines (none for commands the protocol does not answer)."""

    @abstractmethod
    def error_reply(self, request: str) -> Sequence[str | bytes]:
        """The device's own error answer to this request (used by the `device_error` fault)."""

    def split_request(self, buffer: bytes) -> tuple[bytes, bytes] | None:
        """The first whole request in `buffer` and the bytes after it, or None until one has come. Line protocols
        split at the request terminator; a protocol framed by length (Modbus RTU) overrides this."""
        raw, found, rest = buffer.partition(self.request_terminator)
        return (raw, rest) if found else None

    def decode_request(self, raw: bytes) -> str:
        """A request as text for `handle` and the request log (a binary protocol may show it in hex)."""
        return raw.decode(self.encoding, "replace")

    def answers(self, request: str) -> bool:
        """Whether the protocol answers this request (faults on the answer are only drawn for those)."""
        return True


@dataclass
class FaultPlan:
    rate: float = 0.0  # probability that a request meets a fault
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    late_s: float = 1.0  # how late a late answer comes
    script: list[str | None] = field(default_factory=list)  # faults for the next requests, used before drawing
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS) | {k for k in self.script if k and k not in FAULT_KINDS}
        if unknown:
            raise ValueError(f"unknown fault kind(s): {', '.join(sorted(unknown))} (known: {', '.join(FAULT_KINDS)})")
        self._rng = random.Random(self.seed)

    def draw(self, answered: bool) -> str | None:
        if self.script:
            return self.script.pop(0)
        if self.rate <= 0 or self._rng.random() >= self.rate:
            return None
        # A request that gets no answer can only be lost or cut off; faults on the answer need an answer.
        kinds = [k for k in self.kinds if answered or k in ("no_answer", "disconnect")]
        return self._rng.choice(kinds) if kinds else None


@dataclass(frozen=True)
class InjectedFault:
    at: float
    kind: str
    request: str


class _Link(ABC):
    @abstractmethod
    def fileno(self) -> int: ...
    @abstractmethod
    def read(self) -> bytes: ...
    @abstractmethod
    def write(self, data: bytes) -> None: ...
    @abstractmethod
    def close(self) -> None: ...


class _PtyLink(_Link):
    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing: bytes pass as the device sends them
        self.path = os.ttyname(self.slave)
        self._closed = False

    def fileno(self) -> int:
        return self.master

    def read(self) -> bytes:
        try:
            return os.read(self.master, 4096)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self.master, data)

    def close(self) -> None:
        if self._closed:  # fd numbers are reused at once: closing twice could close a new pty's descriptors
            return
        self._closed = True
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class _SocketLink(_Link):
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def fileno(self) -> int:
        return self.conn.fileno()

    def read(self) -> bytes:
        try:
            return self.conn.recv(4096)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.conn.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        self.conn.close()


@dataclass(frozen=True)
class Response:
    """What a twin does with one request: the bytes it answers (now, or `late_s` later), or drop the line."""

    data: bytes = b""
    late_s: float | None = None
    disconnect: bool = False


class TwinEndpoint:
    """A TwinProtocol behind a fault plan: what every way of serving a twin shares (the request log, the faults
    injected, the device's answers as bytes). `TwinServer` serves it on a pty or TCP; `LoopbackTwin`
    (`simulators.twins.loopback`) in-process, straight to a driver's transport."""

    def __init__(self, protocol: TwinProtocol, faults: FaultPlan | None = None, name: str = "twin") -> None:
        self.protocol = protocol
        self.faults = faults or FaultPlan()
        self.name = name
        self.injected: list[InjectedFault] = []
        self.log: list[str] = []  # every request received, in order
        self.url = ""

    def respond(self, request: str) -> Response:
        """Log the request, draw its fault, and act on it (or not) as the fault says."""
        self.log.append(request)
        fault = self.faults.draw(self.protocol.answers(request))
        if fault is not None:
            self.injected.append(InjectedFault(time.time(), fault, request))
        if fault == "no_answer":
            return Response()
        if fault == "disconnect":
            return Response(disconnect=True)
        if fault == "device_error":
            return Response(self.encode(self.protocol.error_reply(request)))
        lines: list[str | bytes] = list(self.protocol.handle(request))
        if fault == "garbled" and lines:
            lines = [_garble(lines[0]), *lines[1:]]
        if fault == "late_answer" and lines:
            return Response(self.encode(lines), late_s=self.faults.late_s)
        return Response(self.encode(lines))

    def encode(self, lines: Sequence[str | bytes]) -> bytes:
        """Reply lines as the device sends them, each with its terminator."""
        encoding, terminator = self.protocol.encoding, self.protocol.reply_terminator
        return b"".join((line if isinstance(line, bytes) else line.encode(encoding)) + terminator for line in lines)


class TwinServer(TwinEndpoint):
    """Serves one TwinProtocol on a pty (`start_pty`) or TCP (`start_tcp`) from a background thread."""

    def __init__(self, protocol: TwinProtocol, faults: FaultPlan | None = None, name: str = "twin") -> None:
        super().__init__(protocol, faults, name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._link: _Link | None = None
        self._listener: socket.socket | None = None
        self._dir: str | None = None
        self._lock = threading.Lock()  # replies (including late ones) are written whole, one at a time

    # --- starting and stopping ------------------------------------------------------------------------------------

    def start_pty(self) -> str:
        """Serve on a new pty; returns a stable path (a symlink, like /dev/serial/by-id/…) to open."""
        self._dir = tempfile.mkdtemp(prefix="peirce-twin-")
        self.url = os.path.join(self._dir, f"tty-{self.name}")
        self._new_pty()
        self._start(self._serve_pty)
        return self.url

    def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a TCP port (one client at a time, as a serial device server); returns `socket://host:port`."""
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(1)
        bound_host, bound_port = self._listener.getsockname()[:2]
        self.url = f"socket://{bound_host}:{bound_port}"
        self._start(self._serve_tcp)
        return self.url

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._link is not None:
            self._link.close()
        if self._listener is not None:
            self._listener.close()
        if self._dir is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.url)
                os.rmdir(self._dir)

    def __enter__(self) -> TwinServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, target: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=target, name=f"twin-{self.name}", daemon=True)
        self._thread.start()

    # --- serving ----------------------------------------------------------------------------------------------------

    def _new_pty(self) -> None:
        link = _PtyLink()
        tmp = f"{self.url}.new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(link.path, tmp)
        os.replace(tmp, self.url)  # atomic: a driver reconnecting finds the old or the new pty, never nothing
        self._link = link

    def _serve_pty(self) -> None:
        while not self._stop.is_set():
            assert self._link is not None
            self._pump(self._link, reopen=self._reopen_pty)

    def _reopen_pty(self) -> None:
        old = self._link
        self._new_pty()
        if old is not None:
            old.close()

    def _serve_tcp(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready:
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._link = _SocketLink(conn)
            self._pump(self._link, reopen=None)
            self._link.close()

    def _pump(self, link: _Link, reopen: Callable[[], None] | None) -> None:
        """Read requests from one connection until it closes, a disconnect fault, or stop."""
        buffer = bytearray()
        while not self._stop.is_set():
            ready, _, _ = select.select([link.fileno()], [], [], 0.05)
            if not ready:
                if buffer and self.protocol.drop_partial_on_silence:
                    buffer.clear()  # the line fell silent inside a frame: a broken frame, dropped
                continue
            data = link.read()
            if not data:
                if isinstance(link, _PtyLink):
                    time.sleep(0.01)  # pty master reads EIO while no one has the slave open: wait for a driver
                    continue
                return  # TCP client went away
            buffer += data
            while (split := self.protocol.split_request(bytes(buffer))) is not None:
                raw, rest = split
                buffer = bytearray(rest)
                if self._serve_request(link, self.protocol.decode_request(raw)) == "disconnect":
                    if reopen is not None:
                        reopen()
                    return

    def _serve_request(self, link: _Link, request: str) -> str | None:
        response = self.respond(request)
        if response.disconnect:
            link.close()
            return "disconnect"
        if response.late_s is not None:
            timer = threading.Timer(response.late_s, self._reply, args=(link, response.data))
            timer.daemon = True
            timer.start()
        elif response.data:
            self._reply(link, response.data)
        return None

    def _reply(self, link: _Link, data: bytes) -> None:
        with self._lock:
            link.write(data)


def _garble(line: str | bytes) -> bytes:
    """A line as line noise leaves it: a few bytes flipped to values outside ASCII."""
    data = bytearray(line if isinstance(line, bytes) else line.encode("ascii", "replace"))
    if not data:
        return b"\xff"
    for i in range(0, len(data), max(1, len(data) // 3)):
        data[i] = 0x80 | (data[i] ^ 0x5A)
    return bytes(data)
