"""Mettler Toledo balances over MT-SICS, the Mettler Toledo Standard Interface Command Set.

Implemented from METTLER TOLEDO, "MT-SICS Interface Commands for Excellence Balances, Reference Manual" (the
same commands and formats as the "MT-SICS Reference Manual" for the standard balance lines):
- chapter 1, Introduction: command format (upper-case command, parameters separated by one space, CR LF after
  every command and every response), response format `ID Status Parameters`, the weight-value response
  `ID Status WeightValue Unit` (value right-aligned in a 10-character field, sign next to the digits), and the
  general error messages `ES` (syntax error: command not recognised), `ET` (transmission error: parity or a
  break), `EL` (logical error: command cannot be executed);
- chapter 2, command reference (entries by command): level 0 `@` (reset; answers `I4 A "<serial>"`), `I2`
  (balance data `I2 A "<type> <capacity> <unit>"`), `I3` (software version and type definition number), `I4`
  (serial number), `S` (stable weight), `SI` (weight immediately), `Z` (zero); level 1 `T` (tare), `TA` (tare
  value), `TAC` (clear tare). Each command's own statuses: `S`/`D` stable/dynamic value, `A` executed, `I` not
  executable now (busy, or no stability within the balance's timeout), `L` wrong parameter, `+`/`-` overload /
  underload or the upper / lower limit of the zero or tare range.
Interface defaults of the Excellence balances (RS232): 9600 baud, 8 data bits, no parity, 1 stop bit, Xon/Xoff.

Weights are converted to grams whatever host unit the balance is set to (mg, kg, and the other units with an
exact definition in grams); a custom unit cannot be converted and is a ProtocolError naming it.

Every command here is idempotent: reading a weight, zeroing or taring twice at the same load leaves the balance as
once, so the transport may retry them all after a lost answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from instruments.contract import Action, Argument, Driver
from instruments.errors import DeviceError, ProtocolError
from instruments.transport import SerialSettings

# The general error messages (chapter 1, "Error messages"): the whole answer is the code.
GENERAL_ERRORS: dict[str, str] = {
    "ES": "syntax error: the balance did not recognise the command",
    "ET": "transmission error: the balance received a faulty command (parity error or interface break)",
    "EL": "logical error: the balance cannot execute the command",
}

# Statuses that say a command was not carried out, with the meaning the command reference gives them.
_STATUS_ERRORS: dict[str, str] = {
    "I": "command understood but not executable now (busy, or no stability within the balance's timeout)",
    "L": "command understood but not executable (incorrect parameter)",
    "+": "overload: weighing range exceeded",
    "-": "underload: below the weighing range (is the weighing pan in place?)",
}
_SPECIFIC_ERRORS: dict[tuple[str, str], str] = {
    ("Z", "+"): "upper limit of the zero setting range exceeded",
    ("Z", "-"): "lower limit of the zero setting range exceeded",
    ("T", "+"): "upper limit of the taring range exceeded",
    ("T", "-"): "lower limit of the taring range exceeded",
}

# Weighing units with an exact definition in grams (the host units of chapter 2, M21), so a balance set to any
# of them still reports grams to peirce. `ug` is how the 7-bit line spells µg.
UNIT_GRAMS: dict[str, float] = {
    "g": 1.0,
    "mg": 1e-3,
    "ug": 1e-6,
    "kg": 1e3,
    "ct": 0.2,  # metric carat
    "lb": 453.59237,
    "oz": 28.349523125,
    "ozt": 31.1034768,  # troy ounce
    "GN": 0.06479891,  # grain
    "dwt": 1.55517384,  # pennyweight
}

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class SicsReply:
    """One MT-SICS response line: `ident` (the command it answers), `status`, and the parameters after them."""

    ident: str
    status: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Weight:
    """A weight value from `S`, `SI`, `T` or `TA`, in grams; `stable` is False for a dynamic (`D`) value."""

    grams: float
    stable: bool


@dataclass(frozen=True)
class DeviceData:
    """The `I2` balance data: the balance type, its capacity (in `unit`) and that unit."""

    model: str
    capacity: str
    unit: str


def split_fields(line: str) -> tuple[str, ...]:
    """The space-separated fields of a response; a quoted text (which may hold spaces) is one field, unquoted.

    Raises ProtocolError for an unbalanced quote (a response cut off in the middle of a text).
    """
    if not isinstance(line, str):
        raise ProtocolError("answer is not text", received=repr(line))
    if line.count('"') % 2:
        raise ProtocolError("unbalanced quote in answer", received=line)
    return tuple(quoted if bare is None or bare == "" else bare for quoted, bare in _TOKEN.findall(line))


def parse_reply(line: str, ident: str) -> SicsReply:
    """Check that `line` answers command `ident` without an error; return its status and parameters.

    General errors (`ES`, `ET`, `EL`) and the error statuses `I`, `L`, `+`, `-` raise DeviceError with the
    code as the balance sent it (`ES`, `S +`, ...); an answer to another command, or one without a status,
    raises ProtocolError.
    """
    fields = split_fields(line)
    if not fields:
        raise ProtocolError("empty answer", received=line)
    head = fields[0]
    if head in GENERAL_ERRORS and len(fields) == 1:
        raise DeviceError(f"{head}: {GENERAL_ERRORS[head]}", code=head)
    if head != ident:
        raise ProtocolError(f"expected an answer to {ident}", received=line)
    if len(fields) < 2:
        raise ProtocolError(f"answer to {ident} without a status", received=line)
    status = fields[1]
    if status in _STATUS_ERRORS:
        meaning = _SPECIFIC_ERRORS.get((ident, status), _STATUS_ERRORS[status])
        raise DeviceError(f"{ident} {status}: {meaning}", code=f"{ident} {status}")
    return SicsReply(ident, status, fields[2:])


def to_grams(value: str, unit: str) -> float:
    """A weight value field and its unit as grams; ProtocolError for a malformed number or an unknown unit."""
    if not isinstance(value, str) or not _NUMBER.fullmatch(value):
        raise ProtocolError("malformed weight value", received=str(value))
    factor = UNIT_GRAMS.get(unit) if isinstance(unit, str) else None
    if factor is None:
        raise ProtocolError(
            f"weight unit {unit!r} has no definition in grams (set the balance's host unit to g)", received=str(unit)
        )
    grams = float(value) * factor
    if not math.isfinite(grams):
        raise ProtocolError("weight value out of range", received=value)
    return grams


def _weight(reply: SicsReply, line: str, statuses: Iterable[str]) -> Weight:
    if reply.status not in statuses:
        raise ProtocolError(f"unexpected status {reply.status!r} in answer to {reply.ident}", received=line)
    if len(reply.fields) != 2:
        raise ProtocolError(f"answer to {reply.ident} is not `value unit`", received=line)
    return Weight(to_grams(*reply.fields), reply.status != "D")


def parse_weight_response(line: str, *, stable_only: bool = False) -> Weight:
    """The answer to `S` or `SI`: `S S <value> <unit>` (stable) or, for `SI` only, `S D <value> <unit>` (dynamic).

    `S I` (no stable value in time), `S +` (overload) and `S -` (underload) raise DeviceError with that code.
    """
    reply = parse_reply(line, "S")
    return _weight(reply, line, ("S",) if stable_only else ("S", "D"))


def parse_tare_response(line: str) -> float:
    """The answer to `T`: `T S <tare> <unit>`, the tare taken, in grams (`T I`, `T +`, `T -`: DeviceError)."""
    return _weight(parse_reply(line, "T"), line, ("S",)).grams


def parse_tare_value_response(line: str) -> float:
    """The answer to `TA`: `TA A <tare> <unit>`, the tare memory, in grams (`TA I`, `TA L`: DeviceError)."""
    return _weight(parse_reply(line, "TA"), line, ("A",)).grams


def parse_ack(line: str, ident: str) -> None:
    """The answer `<ident> A` of a command that only reports it was done (`Z A`, `TAC A`)."""
    reply = parse_reply(line, ident)
    if reply.status != "A" or reply.fields:
        raise ProtocolError(f"expected `{ident} A`", received=line)


def parse_text_response(line: str, ident: str) -> str:
    """The answer `<ident> A "<text>"` of the inquiry commands (`I2`, `I3`, `I4`, and `@`, which answers `I4`)."""
    reply = parse_reply(line, ident)
    if reply.status != "A" or len(reply.fields) != 1 or not reply.fields[0].strip():
        raise ProtocolError(f'expected `{ident} A "<text>"`', received=line)
    return reply.fields[0].strip()


def parse_device_data(text: str) -> DeviceData:
    """The text of `I2`: `<type> <capacity> <unit>`. The type may hold spaces (`XS205DU Excellence`), so the
    fields are taken from the right."""
    if not isinstance(text, str):
        raise ProtocolError("balance data is not text", received=repr(text))
    parts = text.split()
    if len(parts) < 3 or not _NUMBER.fullmatch(parts[-2]):
        raise ProtocolError("balance data is not `<type> <capacity> <unit>`", received=text)
    return DeviceData(" ".join(parts[:-2]), parts[-2], parts[-1])


class MettlerSicsBalance(Driver):
    """A Mettler Toledo balance speaking MT-SICS levels 0 and 1: weigh (stable or immediately), zero and tare."""

    name = "mettler-sics"
    title = "Mettler Toledo balance (MT-SICS)"
    manual = (
        "METTLER TOLEDO, MT-SICS Interface Commands for Excellence Balances, Reference Manual: ch. 1 (command and "
        "response formats, error messages ES/ET/EL), ch. 2 (level 0: @, I2, I3, I4, S, SI, Z; level 1: T, TA, TAC)"
    )
    serial = SerialSettings(
        baudrate=9600,
        bytesize=8,
        parity="N",
        stopbits=1,
        xonxoff=True,
        write_terminator=b"\r\n",
        read_terminator=b"\r\n",
        encoding="ascii",
    )

    # How long the balance may take to become stable (it answers `S`, `Z`, `T` only then); a wall-clock bound.
    _WAIT = Argument(
        "timeout_s",
        unit="s",
        minimum=0.5,
        maximum=120.0,
        default=10.0,
        description="How long to wait for the balance to become stable and answer.",
    )
    actions: ClassVar[tuple[Action, ...]] = (
        Action(
            "zero",
            "Set the zero point to the present load once stable (MT-SICS Z); the tare memory is cleared with it.",
            arguments=(_WAIT,),
        ),
        Action(
            "tare",
            "Take the present stable load as the tare (MT-SICS T); later weights are net of it.",
            arguments=(_WAIT,),
            returns={"tare_g": "g"},
        ),
        Action("clear_tare", "Clear the tare memory (MT-SICS TAC).", returns={}),
        Action(
            "weigh",
            "The net weight once the balance is stable (MT-SICS S).",
            arguments=(_WAIT,),
            returns={"mass_g": "g"},
        ),
        Action(
            "weigh_immediate",
            "The net weight now, stable or not (MT-SICS SI); stable is 1 for a stable value, 0 for a dynamic one.",
            returns={"mass_g": "g", "stable": ""},
        ),
    )

    # --- the contract ---------------------------------------------------------------------------------------------

    def identify(self) -> dict[str, str]:
        """Balance type and capacity (`I2`), software version and type definition number (`I3`), serial (`I4`)."""
        data = parse_device_data(parse_text_response(self.query("I2"), "I2"))
        software, _, type_definition = parse_text_response(self.query("I3"), "I3").partition(" ")
        identity = {
            "model": data.model or "unknown",
            "capacity": f"{data.capacity} {data.unit}",
            "serial_number": parse_text_response(self.query("I4"), "I4"),
            "software_version": software,
        }
        if type_definition.strip():
            identity["type_definition"] = type_definition.strip()
        return identity

    def read_status(self) -> dict[str, Any]:
        """The immediate weight and its stability (`SI`) and the tare memory (`TA`).

        An overloaded, underloaded or busy balance is a state to report here, not a failure of the status query.
        """
        status: dict[str, Any] = {}
        try:
            weight = self.query("SI", parse=parse_weight_response)
        except DeviceError as exc:
            states = {"S +": "overload", "S -": "underload", "S I": "busy"}
            if exc.code not in states:
                raise
            status["state"] = states[exc.code]
        else:
            status.update(state="stable" if weight.stable else "dynamic", mass_g=weight.grams)
        status["tare_g"] = self.query("TA", parse=parse_tare_value_response)
        return status

    def safe_state(self) -> None:
        """A balance has nothing to stop or switch off, and `@` would clear the tare of a weighing in progress:
        nothing is sent."""

    # --- actions --------------------------------------------------------------------------------------------------

    def do_zero(self, timeout_s: float) -> dict[str, Any]:
        """`Z` -> `Z A` once stable and within the zero setting range (`Z I`, `Z +`, `Z -`: DeviceError)."""
        self.query("Z", timeout_s=timeout_s, parse=lambda line: parse_ack(line, "Z"))
        return {}

    def do_tare(self, timeout_s: float) -> dict[str, Any]:
        """`T` -> `T S <tare> <unit>` once stable (`T I`, `T +`, `T -`: DeviceError)."""
        return {"tare_g": self.query("T", timeout_s=timeout_s, parse=parse_tare_response)}

    def do_clear_tare(self) -> dict[str, Any]:
        """`TAC` -> `TAC A` (`TAC I`: DeviceError)."""
        self.query("TAC", parse=lambda line: parse_ack(line, "TAC"))
        return {}

    def do_weigh(self, timeout_s: float) -> dict[str, Any]:
        """`S` -> `S S <value> <unit>` once stable (`S I` when the balance's own stability timeout ran out)."""
        weight = self.query("S", timeout_s=timeout_s, parse=lambda line: parse_weight_response(line, stable_only=True))
        return {"mass_g": weight.grams}

    def do_weigh_immediate(self) -> dict[str, Any]:
        """`SI` -> `S S <value> <unit>` (stable) or `S D <value> <unit>` (dynamic)."""
        weight = self.query("SI", parse=parse_weight_response)
        return {"mass_g": weight.grams, "stable": 1.0 if weight.stable else 0.0}

    # --- beyond the actions ---------------------------------------------------------------------------------------

    def reset(self) -> str:
        """`@`: back to the state after switching on, without zeroing (the tare memory is cleared); the balance
        answers with its serial number, `I4 A "<serial>"`, which is returned."""
        return parse_text_response(self.query("@"), "I4")

    def exchange(
        self, command: str, ident: str | None = None, *, idempotent: bool = True, timeout_s: float | None = None
    ) -> SicsReply:
        """Send any MT-SICS command and return its checked reply (for commands the actions do not cover).

        `ident` is the response's ID if it is not the command's first word (`SI` is answered by `S`, `@` by `I4`).
        Pass `idempotent=False` for a command whose repetition is not harmless, so it is never re-sent.
        """
        expected = ident or (command.split() or [""])[0]
        return parse_reply(self.query(command, idempotent=idempotent, timeout_s=timeout_s), expected)
