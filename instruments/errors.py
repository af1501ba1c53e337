"""Typed instrument errors: what went wrong between peirce and a device, in a form the station can act on.

Every failure a driver can meet is one of these, never a bare `serial.SerialException` or `UnicodeDecodeError`:
the station records the kind with the experiment it hit, and the orchestrator retries or gives up by kind.
"""

from __future__ import annotations


class InstrumentError(Exception):
    """Base of every driver failure. `instrument` names the station's instrument, `command` the line sent."""

    kind = "instrument"
    # Whether re-running the experiment (under the same idempotency key, with a record) could help.
    retryable = True

    def __init__(self, message: str, *, instrument: str = "", command: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.instrument = instrument
        self.command = command

    def __str__(self) -> str:
        where = f"{self.instrument}: " if self.instrument else ""
        sent = f" (after {self.command!r})" if self.command is not None else ""
        return f"{where}{self.message}{sent}"


class InstrumentTimeout(InstrumentError):
    """No complete answer within the command's timeout."""

    kind = "timeout"


class ProtocolError(InstrumentError):
    """Bytes the protocol does not allow: garbled, truncated, or an answer to another command."""

    kind = "protocol"

    def __init__(
        self, message: str, *, received: bytes | str = b"", instrument: str = "", command: str | None = None
    ) -> None:
        shown = received if isinstance(received, str) else received.decode("ascii", "backslashreplace")
        super().__init__(f"{message}: {shown!r}" if received else message, instrument=instrument, command=command)
        self.received = received


class DeviceError(InstrumentError):
    """The device answered, and its answer was an error code (overload, unknown command, busy…)."""

    kind = "device"

    def __init__(self, message: str, *, code: str = "", instrument: str = "", command: str | None = None) -> None:
        super().__init__(message, instrument=instrument, command=command)
        self.code = code


class LimitViolation(InstrumentError):
    """Refused before anything was sent: an argument passes a safety limit or the device's range."""

    kind = "limit"
    retryable = False  # the same experiment would be refused again

    def __init__(self, message: str, *, limit: str = "", instrument: str = "", command: str | None = None) -> None:
        super().__init__(message, instrument=instrument, command=command)
        self.limit = limit


class InvalidAction(InstrumentError):
    """An action the driver does not offer, or arguments it does not take (a protocol or station file error)."""

    kind = "invalid"
    retryable = False


class Disconnected(InstrumentError):
    """The port closed or vanished (cable pulled, device server restarted, device powered off)."""

    kind = "disconnected"
