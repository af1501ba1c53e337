"""The driver contract: what every instrument driver declares and offers.

A driver declares its skill set, the named `Action`s it can perform, each with typed `Argument`s (with units and
the device's own range from its manual) and the measurements it returns, and whether re-sending it is harmless.
It offers connect, status, execute(action), abort and close. The front end a station calls is this class; each
device's protocol lives in a subclass (one module per protocol), in the spirit of PyLabRobot's front and back ends.

A subclass:
- sets `name` (the entry-point name, e.g. `mettler-sics`), `title`, `manual` (the document it implements),
  `actions` and `serial` (the line settings its manual prescribes);
- implements `identify()`, `read_status()`, `safe_state()` and one method `do_<action>(**arguments)` per action,
  returning a dict of measurement name -> value (numbers or text).
Argument checking, safety limits and the transcript are done here, once, for every driver.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from instruments.clock import SYSTEM_CLOCK, Clock
from instruments.errors import InstrumentError, InvalidAction, LimitViolation
from instruments.limits import SafetyLimits
from instruments.transcript import Transcript
from instruments.transport import LinkOpener, SerialSettings, SerialTransport

ARGUMENT_TYPES = ("number", "integer", "text", "boolean")


@dataclass(frozen=True)
class Argument:
    """One typed argument of an action. `minimum`/`maximum` are the device's range, not the lab's safety limit."""

    name: str
    type: str = "number"  # number | integer | text | boolean
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    default: Any = None  # None: required
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in ARGUMENT_TYPES:
            raise ValueError(f"argument {self.name}: type must be one of {ARGUMENT_TYPES}")

    def coerce(self, value: Any, action: str) -> Any:
        """The value as this argument's type, checked against the device's range; InvalidAction/LimitViolation."""
        where = f"{action}.{self.name}"
        if self.type in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise InvalidAction(f"{where}: expected a number, got {value!r}")
            try:
                number = float(value)
            except ValueError:
                raise InvalidAction(f"{where}: expected a number, got {value!r}") from None
            if not math.isfinite(number):
                raise InvalidAction(f"{where}: expected a finite number, got {value!r}")
            if self.type == "integer":
                if number != int(number):
                    raise InvalidAction(f"{where}: expected a whole number, got {value!r}")
                number = int(number)
            unit = f" {self.unit}" if self.unit else ""
            if self.minimum is not None and number < self.minimum:
                raise LimitViolation(
                    f"{where} = {number:g}{unit} is below the device's range (minimum {self.minimum:g}{unit})",
                    limit=f"{where}.minimum",
                )
            if self.maximum is not None and number > self.maximum:
                raise LimitViolation(
                    f"{where} = {number:g}{unit} is above the device's range (maximum {self.maximum:g}{unit})",
                    limit=f"{where}.maximum",
                )
            return number
        if self.type == "boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "on", "1", "yes"):
                return True
            if str(value).lower() in ("false", "off", "0", "no"):
                return False
            raise InvalidAction(f"{where}: expected true or false, got {value!r}")
        text = str(value)
        if self.choices and text not in self.choices:
            raise InvalidAction(f"{where}: {text!r} is not one of {', '.join(self.choices)}")
        return text


@dataclass(frozen=True)
class Action:
    """A named thing the instrument can do. `idempotent`: re-sending it after a lost answer is harmless."""

    name: str
    description: str
    arguments: tuple[Argument, ...] = ()
    returns: Mapping[str, str] = field(default_factory=dict)  # measurement name -> unit
    idempotent: bool = True
    # Measurements (names in `returns`) that are arrays (`instruments.arrays.ArrayData`, e.g. a spectrum) rather
    # than numbers: kept as data products and turned into numbers by analysis steps, never put in a formula.
    arrays: tuple[str, ...] = ()

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(given) - {a.name for a in self.arguments}
        if unknown:
            known = ", ".join(a.name for a in self.arguments) or "none"
            raise InvalidAction(f"{self.name}: unknown argument(s) {', '.join(sorted(unknown))} (takes: {known})")
        bound = {}
        for argument in self.arguments:
            if argument.name in given:
                bound[argument.name] = argument.coerce(given[argument.name], self.name)
            elif argument.default is not None:
                bound[argument.name] = argument.default
            else:
                raise InvalidAction(f"{self.name}: missing argument {argument.name}")
        return bound

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "idempotent": self.idempotent,
            "arguments": [
                {
                    k: v
                    for k, v in {
                        "name": a.name,
                        "type": a.type,
                        "unit": a.unit,
                        "minimum": a.minimum,
                        "maximum": a.maximum,
                        "choices": list(a.choices) or None,
                        "default": a.default,
                    }.items()
                    if v not in (None, "")
                }
                for a in self.arguments
            ],
            "returns": dict(self.returns),
            **({"arrays": list(self.arrays)} if self.arrays else {}),
        }


class Driver(ABC):
    """Base of every instrument driver. Construct, `connect()`, then `execute()` actions; `close()` at the end.

    Collaborators are arguments with defaults: `opener` makes the byte link from `port` (pyserial by default; a
    device twin's in-process loopback in fast tests) and `clock` is what every wait of the driver and its
    transport runs on (the wall clock by default; `instruments.clock.ManualClock` in fast tests).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    manual: ClassVar[str]  # the document the protocol is implemented from, with its edition
    actions: ClassVar[tuple[Action, ...]]
    serial: ClassVar[SerialSettings] = SerialSettings()

    def __init__(
        self,
        port: str,
        *,
        instrument: str = "",
        limits: SafetyLimits | None = None,
        settings: Mapping[str, Any] | None = None,
        transcript: Transcript | None = None,
        opener: LinkOpener | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.instrument = instrument or self.name
        self.limits = limits or SafetyLimits()
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        serial_settings = self.serial.with_overrides(dict(settings or {}))
        self.transport = SerialTransport(
            port, serial_settings, transcript=transcript, instrument=self.instrument, opener=opener, clock=self.clock
        )
        self.identity: dict[str, str] = {}

    # --- the contract ---------------------------------------------------------------------------------------------

    def connect(self) -> dict[str, str]:
        """Open the port and ask the device who it is; the answer is kept in `identity`."""
        self.transport.open()
        self.identity = self.identify()
        return self.identity

    def status(self) -> dict[str, Any]:
        """What the device reports now (setpoints, readings, running or not)."""
        return self.read_status()

    def execute(self, action: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Check the action and its arguments (types, device range, safety limits), then perform it.

        Nothing is sent when a check fails: the error names the argument and the limit.
        """
        bound = self.check_arguments(action, arguments or {})
        self.limits.check(self.instrument, action, bound)
        try:
            result = getattr(self, f"do_{action}")(**bound)
        except InstrumentError as exc:
            exc.instrument = exc.instrument or self.instrument
            raise
        self.limits.commit(action, bound)
        return dict(result or {})

    def abort(self) -> None:
        """Bring the device to its safe state now (stop pumping, heating off). Safe to call at any time."""
        self.safe_state()

    def close(self) -> None:
        self.transport.close()

    # --- declared skills ------------------------------------------------------------------------------------------

    @classmethod
    def action(cls, name: str) -> Action:
        for action in cls.actions:
            if action.name == name:
                return action
        offered = ", ".join(a.name for a in cls.actions)
        raise InvalidAction(f"{cls.name} has no action '{name}' (offers: {offered})")

    @classmethod
    def check_arguments(cls, action: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments bound and checked as `execute` checks them before it sends anything: types and the
        device's range, and whatever a subclass knows of their values without a device (a recipe that cannot be
        made). InvalidAction or LimitViolation naming the argument. A campaign checks each level of a categorical
        parameter that an argument takes with this before it runs, so a level no instrument can act on is refused
        by name instead of failing experiments."""
        return cls.action(action).bind(arguments)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "title": cls.title,
            "manual": cls.manual,
            "actions": [a.describe() for a in cls.actions],
        }

    # --- for subclasses -------------------------------------------------------------------------------------------

    @abstractmethod
    def identify(self) -> dict[str, str]:
        """Ask the device for its identity (model, serial number, firmware)."""

    @abstractmethod
    def read_status(self) -> dict[str, Any]: ...

    @abstractmethod
    def safe_state(self) -> None: ...

    def query(
        self,
        command: str,
        *,
        idempotent: bool = True,
        timeout_s: float | None = None,
        parse: Callable[[str], Any] | None = None,
    ) -> Any:
        """One command, one answer line; with `parse`, the parsed answer (a malformed one is retried if idempotent)."""
        return self.transport.query(command, idempotent=idempotent, timeout_s=timeout_s, parse=parse)

    def send(self, command: str) -> None:
        self.transport.send(command)
