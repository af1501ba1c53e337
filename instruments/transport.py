"""Line transport over pyserial's `serial_for_url`: one class for `/dev/ttyUSB0`, `socket://host:port` and ptys.

What it adds to pyserial, and why:
- framing: a write terminator and a read terminator per protocol (CR LF for MT-SICS, ETX for the New Era pumps);
- a timeout per command, and a cap on line length, so a babbling device cannot hang or flood a campaign;
- bounded retries with exponential back-off for idempotent queries only. A command that moves matter (dispense,
  start heating) is never re-sent blindly: a timeout there is raised, recorded, and left to the station;
- resynchronisation: after a timeout the line is drained for a grace period, so a late answer is thrown away
  (and recorded as discarded) instead of being read as the answer to the next command;
- reconnect after a disconnect (a device server restarted, a USB adapter re-enumerated);
- a transcript of every line each way;
- binary frames for protocols framed by length rather than by a terminator (Modbus RTU): `exchange` sends one
  request frame and reads the reply until the driver's `frame_length` says it is whole, after the line has been
  quiet for the protocol's inter-frame gap (RTU frames are delimited by 3.5 character times of silence).
All failures come out as the typed errors of `instruments.errors`.

Front end and back end, as in PyLabRobot: `SerialTransport` is the front end (framing, retries, transcript); the
byte link under it is a back end, opened by a `LinkOpener` from the URL. The default opener is pyserial's
`serial_for_url`; a test can hand in another one (a device twin's in-process loopback link) together with a
`Clock` (see `instruments.clock`), so that timeouts and back-offs are waited on that clock instead of the wall's.
"""

from __future__ import annotations

import contextlib
import socket
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import serial

from instruments.clock import SYSTEM_CLOCK, Clock
from instruments.errors import Disconnected, InstrumentError, InstrumentTimeout, ProtocolError
from instruments.transcript import Transcript


@dataclass(frozen=True)
class SerialSettings:
    """How to talk to one device: line settings from its manual, framing, timing and retry policy."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"  # N | E | O
    stopbits: float = 1
    xonxoff: bool = False
    write_terminator: bytes = b"\r\n"
    read_terminator: bytes = b"\r\n"
    encoding: str = "ascii"
    timeout_s: float = 2.0  # default per-command answer timeout
    retries: int = 2  # extra attempts for idempotent queries after a timeout or a garbled answer
    backoff_s: float = 0.05  # first back-off; doubles per retry
    grace_s: float = 0.5  # after a timeout, how long to drain late bytes before the next command
    max_line: int = 4096  # a longer "line" is a protocol error, not a memory leak
    # Control bytes a protocol sends inside its answers (STX/ETX of the New Era pumps; ACK/NAK lines of an Ocean
    # Optics spectrometer); any other control byte in an answer is a garbled line.
    control_bytes: str = "\t\x02\x03"

    def with_overrides(self, overrides: dict[str, Any]) -> SerialSettings:
        """Settings with a station file's overrides (terminators given as text with escapes, e.g. "\\r")."""
        fixed = {}
        for key, value in overrides.items():
            if key not in self.__dataclass_fields__:
                raise KeyError(key)
            if key.endswith("_terminator") and isinstance(value, str):
                value = value.encode("ascii").decode("unicode_escape").encode("latin-1")
            fixed[key] = value
        return replace(self, **fixed)


# What pyserial lets through when a line drops: a pty's tcdrain raises termios.error, not OSError.
_LINE_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError, termios.error)
POLL_S = 0.05  # how long one read waits for bytes before the deadline is checked again


class Link(Protocol):
    """An open byte link to one device: the part of pyserial's `Serial` the transport uses.

    `read_until` returns at the terminator, at `size` bytes, or after waiting `POLL_S` for more (whatever it
    has then, possibly nothing). A link that dropped raises OSError (or pyserial's SerialException).
    """

    @property
    def is_open(self) -> bool: ...

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def read_until(self, expected: bytes = b"\n", size: int | None = None) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


LinkOpener = Callable[[str, "SerialSettings"], Link]

# How long the frame at the start of `received` is, once enough of it has come to say (None until then), for a
# protocol framed by length (a Modbus RTU reply's length follows from its function code and byte count). A frame
# that cannot be one of the protocol's raises ProtocolError.
FrameLength = Callable[[bytes], "int | None"]


def character_time_s(settings: SerialSettings) -> float:
    """Seconds one character takes on the line: start bit, data bits, parity bit if any, stop bits."""
    bits = 1 + settings.bytesize + (0 if settings.parity == "N" else 1) + settings.stopbits
    return bits / settings.baudrate


def frame_gap_s(settings: SerialSettings) -> float:
    """The silence that ends a Modbus RTU frame: 3.5 character times, and a fixed 1.75 ms above 19200 baud
    (Modbus over Serial Line, V1.02, section 2.5.1.1), where a character time is too short for a PC to time."""
    return 0.00175 if settings.baudrate > 19200 else 3.5 * character_time_s(settings)


def hex_bytes(data: bytes) -> str:
    """Binary frames in a transcript: `01 03 00 01 00 01 D5 CA`."""
    return " ".join(f"{b:02X}" for b in data)


def open_serial_link(url: str, settings: SerialSettings) -> Link:
    """A pyserial port for `/dev/ttyUSB0`, `socket://host:port` or a pty path, with the device's line settings."""
    port: Link = serial.serial_for_url(
        url,
        baudrate=settings.baudrate,
        bytesize=settings.bytesize,
        parity=settings.parity,
        stopbits=settings.stopbits,
        xonxoff=settings.xonxoff,
        # A short, fixed read timeout: read_line polls up to each command's own deadline. Changing the port's
        # timeout per read would re-apply termios settings every time (slow, and some kernels refuse to re-apply
        # 7-bit/parity settings to a pty).
        timeout=POLL_S,
        write_timeout=settings.timeout_s,
    )
    return port


def _close_link(port: Link) -> None:
    """Close a port. pyserial's `socket://` port sleeps 0.3 s after closing its socket ("in case of quick
    reconnects"): a lab-wide shared instrument is connected and closed once per experiment, so that sleep was most
    of what holding one cost. Its socket is closed here without it; a device server that is slow to take the next
    client makes the next connect wait, within that driver's own timeout, instead of every close."""
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket) and port.__class__.__module__.endswith("protocol_socket"):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        # pyserial's own bookkeeping of a closed port (what its close sets), on a link typed by what we use.
        setattr(port, "_socket", None)  # noqa: B010
        setattr(port, "is_open", False)  # noqa: B010
        return
    port.close()


class SerialTransport:
    """One open line to one device. Thread-safe: one exchange at a time.

    `opener` makes the byte link from the URL (pyserial by default); `clock` is what timeouts, back-offs and the
    resynchronisation grace are measured and waited on (the wall clock by default).
    """

    def __init__(
        self,
        url: str,
        settings: SerialSettings,
        *,
        transcript: Transcript | None = None,
        instrument: str = "",
        opener: LinkOpener | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.url = url
        self.settings = settings
        self.transcript = transcript if transcript is not None else Transcript()
        self.instrument = instrument
        self.opener: LinkOpener = opener if opener is not None else open_serial_link
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._port: Link | None = None
        self._lock = threading.RLock()
        self._dirty = False  # a timeout happened: late bytes may still arrive
        self.opened = 0  # times the port was opened: a change tells a caller that the line dropped meanwhile

    # --- connection ---------------------------------------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            if self._port is not None and self._port.is_open:
                return
            try:
                self._port = self.opener(self.url, self.settings)
            except (serial.SerialException, OSError, termios.error, ValueError) as exc:  # a line error or a bad URL
                self._port = None
                raise Disconnected(f"cannot open {self.url}: {exc}", instrument=self.instrument) from None
            self.transcript.record("note", f"opened {self.url}")
            self.opened += 1
            self._dirty = False

    def close(self) -> None:
        with self._lock:
            if self._port is not None:
                with contextlib.suppress(*_LINE_ERRORS):
                    _close_link(self._port)
                self._port = None
                self.transcript.record("note", "closed")

    def reconnect(self) -> None:
        with self._lock:
            self.close()
            self.open()

    @property
    def is_open(self) -> bool:
        return self._port is not None and self._port.is_open

    # --- exchanges ----------------------------------------------------------------------------------------------

    def query(
        self,
        command: str,
        *,
        idempotent: bool,
        timeout_s: float | None = None,
        parse: Callable[[str], Any] | None = None,
    ) -> Any:
        """Send a command and return its one-line answer (terminator stripped, decoded), or `parse(answer)`.

        Idempotent queries are retried (timeouts, garbled answers, a dropped line) with back-off; other commands
        are sent once, and a missing answer raises InstrumentTimeout: the device may or may not have acted.
        A parser runs inside the retry loop, so a malformed answer (a ProtocolError from the parser) is retried
        like a garbled one; a DeviceError is the device's considered answer and is raised at once.
        """

        def once() -> Any:
            self._write(command)
            answer = self.read_line(timeout_s, command=command)
            return parse(answer) if parse is not None else answer

        return self._retrying(once, idempotent=idempotent, name=repr(command), drain_after_garble=False)

    def exchange(
        self,
        request: bytes,
        frame_length: FrameLength,
        *,
        idempotent: bool,
        timeout_s: float | None = None,
        parse: Callable[[bytes], Any] | None = None,
        label: str | None = None,
    ) -> Any:
        """Send one binary request frame and return the reply frame (or `parse(reply)`), for protocols framed by
        length. Retries as `query` does: idempotent requests after a timeout, a garbled or malformed frame (a
        ProtocolError from `frame_length` or `parse`, a bad CRC) or a dropped line; others are sent once.
        `label` names the request in errors and notes (`read PV (register 1)`); the transcript shows both frames
        in hex."""
        name = label or hex_bytes(request)

        def once() -> Any:
            self._write_frame(request, name)
            reply = self.read_frame(frame_length, timeout_s, command=name)
            return parse(reply) if parse is not None else reply

        # The rest of a garbled frame may still be on its way: drained before the next try.
        return self._retrying(once, idempotent=idempotent, name=name, drain_after_garble=True)

    def _retrying(self, once: Callable[[], Any], *, idempotent: bool, name: str, drain_after_garble: bool) -> Any:
        """`once()` on an open, prepared line, retried with back-off after a timeout, a garbled or malformed
        answer or a dropped line when the request is idempotent; a request that is not is sent once (after a
        dropped line the port is reopened for the next one, and this one is not re-sent)."""
        attempts = 1 + (self.settings.retries if idempotent else 0)
        delay = self.settings.backoff_s
        with self._lock:
            for attempt in range(1, attempts + 1):
                try:
                    self._ensure_open()
                    self._prepare()
                    return once()
                except (InstrumentTimeout, ProtocolError, Disconnected) as exc:
                    if drain_after_garble and isinstance(exc, ProtocolError):
                        self._dirty = True
                    if attempt == attempts:
                        if isinstance(exc, Disconnected) and not idempotent:
                            self._try_reconnect()
                        raise
                    self.transcript.record("note", f"retry {attempt}/{attempts - 1} of {name}: {exc.kind}")
                    if isinstance(exc, Disconnected):
                        self._try_reconnect()
                    self.clock.sleep(delay)
                    delay *= 2
        raise AssertionError("unreachable")

    def read_frame(
        self, frame_length: FrameLength, timeout_s: float | None = None, *, command: str | None = None
    ) -> bytes:
        """Read one frame whose length `frame_length` tells from its first bytes; InstrumentTimeout when it does
        not come whole in time, ProtocolError when it cannot be a frame of the protocol, Disconnected."""
        s = self.settings
        port = self._require_port()
        timeout = s.timeout_s if timeout_s is None else timeout_s
        deadline = self.clock.now() + timeout
        buffer = bytearray()
        while True:
            try:
                wanted = frame_length(bytes(buffer)) if buffer else None
            except ProtocolError as exc:
                self.transcript.record("discarded", hex_bytes(bytes(buffer)))
                exc.instrument, exc.command = exc.instrument or self.instrument, command
                raise
            if wanted is not None and len(buffer) >= wanted:
                frame = bytes(buffer)  # never more: only what the frame still needs is read
                self.transcript.record("rx", hex_bytes(frame))
                return frame
            if len(buffer) >= s.max_line:
                self.transcript.record("discarded", hex_bytes(bytes(buffer)))
                self._dirty = True
                raise ProtocolError(
                    f"frame longer than {s.max_line} bytes",
                    received=bytes(buffer[:64]),
                    instrument=self.instrument,
                    command=command,
                )
            if self.clock.now() >= deadline:
                self._dirty = True
                if buffer:
                    self.transcript.record("discarded", hex_bytes(bytes(buffer)))
                    raise InstrumentTimeout(
                        f"incomplete frame within {timeout:g} s: {hex_bytes(bytes(buffer))}",
                        instrument=self.instrument,
                        command=command,
                    )
                raise InstrumentTimeout(f"no answer within {timeout:g} s", instrument=self.instrument, command=command)
            try:
                # Exactly what the frame still needs once its length is known, byte by byte until then: a read
                # for more would wait out the port's poll timeout after every frame.
                buffer += port.read(wanted - len(buffer) if wanted is not None else 1)
            except _LINE_ERRORS as exc:
                self._drop()
                raise Disconnected(
                    f"line lost while reading: {exc}", instrument=self.instrument, command=command
                ) from None

    def send(self, command: str) -> None:
        """Send a command the protocol does not answer (NAMUR and SCPI settings). Never re-sent."""
        with self._lock:
            self._ensure_open()
            self._prepare()
            self._write(command)

    def send_bare(self, text: str) -> None:
        """Send `text` with no terminator (a mode switch the manual says must go without CR or LF). Never re-sent."""
        with self._lock:
            self._ensure_open()
            self._prepare()
            port = self._require_port()
            self.transcript.record("tx", text)
            try:
                port.write(text.encode(self.settings.encoding))
                port.flush()
            except _LINE_ERRORS as exc:
                self._drop()
                raise Disconnected(
                    f"line lost while writing: {exc}", instrument=self.instrument, command=text
                ) from None

    def read_line(self, timeout_s: float | None = None, *, command: str | None = None) -> str:
        """Read one line; raises InstrumentTimeout, ProtocolError (undecodable, too long) or Disconnected."""
        s = self.settings
        port = self._require_port()
        timeout = s.timeout_s if timeout_s is None else timeout_s
        deadline = self.clock.now() + timeout
        buffer = bytearray()
        terminator = s.read_terminator
        while True:
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                self._dirty = True
                if buffer:
                    self.transcript.record("discarded", bytes(buffer))
                    raise InstrumentTimeout(
                        f"incomplete answer within {timeout:g} s: {bytes(buffer)!r}",
                        instrument=self.instrument,
                        command=command,
                    )
                raise InstrumentTimeout(f"no answer within {timeout:g} s", instrument=self.instrument, command=command)
            try:
                chunk = port.read_until(terminator, s.max_line + len(terminator) - len(buffer))
            except _LINE_ERRORS as exc:
                self._drop()
                raise Disconnected(
                    f"line lost while reading: {exc}", instrument=self.instrument, command=command
                ) from None
            buffer += chunk
            if buffer.endswith(terminator):
                raw = bytes(buffer[: -len(terminator)])
                self.transcript.record("rx", raw)
                return self._decode(raw, command)
            if len(buffer) >= s.max_line:
                self.transcript.record("discarded", bytes(buffer))
                self._dirty = True
                raise ProtocolError(
                    f"line longer than {s.max_line} bytes",
                    received=bytes(buffer[:64]),
                    instrument=self.instrument,
                    command=command,
                )

    # --- internals ----------------------------------------------------------------------------------------------

    def _decode(self, raw: bytes, command: str | None) -> str:
        try:
            text = raw.decode(self.settings.encoding)
        except UnicodeDecodeError:
            raise ProtocolError(
                "undecodable answer", received=raw, instrument=self.instrument, command=command
            ) from None
        if any(ord(c) < 32 and c not in self.settings.control_bytes for c in text):
            raise ProtocolError("control bytes in answer", received=raw, instrument=self.instrument, command=command)
        return text

    def _ensure_open(self) -> None:
        if not self.is_open:
            self.open()

    def _require_port(self) -> Link:
        if self._port is None or not self._port.is_open:
            raise Disconnected("port is not open", instrument=self.instrument)
        return self._port

    def _write(self, command: str) -> None:
        port = self._require_port()
        data = command.encode(self.settings.encoding) + self.settings.write_terminator
        self.transcript.record("tx", command)
        try:
            port.write(data)
            port.flush()
        except _LINE_ERRORS as exc:
            self._drop()
            raise Disconnected(f"line lost while writing: {exc}", instrument=self.instrument, command=command) from None

    def _write_frame(self, frame: bytes, name: str) -> None:
        port = self._require_port()
        # The silence before a frame that marks its start (the line was drained just before by `_prepare`).
        self.clock.sleep(frame_gap_s(self.settings))
        self.transcript.record("tx", hex_bytes(frame))
        try:
            port.write(frame)
            port.flush()
        except _LINE_ERRORS as exc:
            self._drop()
            raise Disconnected(f"line lost while writing: {exc}", instrument=self.instrument, command=name) from None

    def _prepare(self) -> None:
        """Throw away stale input before a command: after a timeout, wait out the grace period for late bytes."""
        port = self._require_port()
        quiet_for = self.settings.grace_s if self._dirty else 0.0
        self._dirty = False
        stale = bytearray()
        clock = self.clock
        end = clock.now() + quiet_for
        try:
            while True:
                waiting = port.in_waiting
                if waiting:
                    stale += port.read(waiting)
                    continue
                if clock.now() >= end:
                    break
                clock.sleep(min(0.01, max(0.0, end - clock.now())))
        except _LINE_ERRORS as exc:
            self._drop()
            raise Disconnected(f"line lost: {exc}", instrument=self.instrument) from None
        if stale:
            self.transcript.record("discarded", bytes(stale))

    def _drop(self) -> None:
        """Forget a port whose line is gone, so that the next command opens it afresh (whatever sent it)."""
        self.close()
        self._dirty = False

    def _try_reconnect(self) -> None:
        with contextlib.suppress(InstrumentError):  # the next command reports it, with its own context
            self.reconnect()
