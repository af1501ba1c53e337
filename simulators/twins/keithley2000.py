"""Device twin of a Keithley Model 2000 multimeter on RS-232 (SCPI): DC volts from a photodiode amplifier on the
bench, or four-wire ohms from a four-point probe on a film.

Protocol as in Keithley Instruments, "Model 2000 Multimeter User's Manual", 2000-900-01 Rev. J (August 2010):
- section 4 (RS-232 operation, p. 4-6; programming syntax, p. 4-32; common commands, p. 4-39): requests and
  answers end in LF (the terminator this twin is set to, as the driver's station would set the meter); commands
  are case-insensitive, in long or short form (`:SENSe:VOLTage:DC:NPLCycles` = `:sens:volt:nplc`), with the
  optional nodes `[:SENSe[1]]`, `[:DC]`, `[:UPPer]`, `[:IMMediate]`, `[:DATA]`, `[:NEXT]` left out or not; several
  commands in one message are separated by `;` and a command not starting with `:` continues the previous one's
  path; the answers of several queries in one message come back in one line, separated by `;`. After an error
  the rest of the message is ignored, as an IEEE 488.2 parser does. Setting commands are not answered.
- section 5 (SCPI command reference): `*IDN?` `*RST` `*CLS` `*OPC` `*OPC?` `*WAI` `*ESR?`, `:CONFigure:VOLTage
  [:DC]` and `:CONFigure?`, `:READ?`, `:FETCh?`, `:MEASure:VOLTage[:DC]?`, `:INITiate[:IMMediate]`,
  `:INITiate:CONTinuous <b>`, `:ABORt`, `[:SENSe[1]]:FUNCtion '<name>'`, `[:SENSe[1]]:VOLTage[:DC]:RANGe[:UPPer]
  <0..1010|MIN|MAX|DEF>`, `...:RANGe:AUTO <b>`, `...:NPLCycles <0.01..10|MIN|MAX|DEF>`, `:FORMat:ELEMents
  <READing,CHANnel,UNITs>`, `:FORMat[:DATA] ASCii`, `:SYSTem:ERRor?` (= `:STATus:QUEue[:NEXT]?`),
  `:STATus:QUEue:CLEar`, `:SYSTem:VERSion?`, `:SYSTem:REMote`, `:SYSTem:LOCal`, `:SYSTem:PRESet`, and each one's
  query form where the manual has one; for four-wire ohms `:CONFigure:FRESistance`, `:MEASure:FRESistance?`,
  `[:SENSe[1]]:FUNCtion 'FRESistance'`, `[:SENSe[1]]:FRESistance:RANGe[:UPPer] <0..120e6|MIN|MAX|DEF>`,
  `...:FRESistance:RANGe:AUTO <b>` and `...:FRESistance:NPLCycles <0.01..10|MIN|MAX|DEF>` (ranges 100 Ω to 100 MΩ
  in decades). Each function keeps its own range, autorange and integration time, as the 2000 does.
- appendix B: errors go to a FIFO queue of 10 (`0,"No error"` when empty; when it overflows the last entry becomes
  `-350,"Queue overflow"`) and set the Standard Event Status Register bits (CME, EXE, DDE, QYE): -102 syntax
  error, -104 data type error, -108 parameter not allowed, -109 missing parameter, -113 undefined header, -114
  header suffix out of range, -120 numeric data error, -141 invalid character data, -213 init ignored (`:READ?`
  or `:INIT` with continuous initiation on: the reading still comes back), -221 settings conflict, -222 parameter
  data out of range, -224 illegal parameter value, -230 data corrupt or stale (`:FETCh?` with no fresh reading:
  no answer).

Readings: `±d.dddddddd E±dd` (Figure 5-1) with the units (`VDC`, or `OHM4W` in four-wire ohms) and channel
(`,0INTCHAN`) elements appended when selected, rounded to the resolution the integration time gives (6½ digits
from 1 PLC, 5½ from 0.1 PLC, 4½ below, as the front-panel RATE key sets them); past 120 % of the range (1010 V on
the 1000 V range) the reading is the overflow `+9.90000000E+37`, with no units. Autorange picks the lowest range
that holds the reading.

Power-on state: DC volts, autorange, 1 PLC, continuous initiation ON (the front panel keeps measuring), elements
READ; `*RST` sets continuous initiation off, `:SYSTem:PRESet` on. Only DC volts and four-wire ohms are modelled:
the other functions of a 2000 (`'VOLT:AC'`, `'RES'`, ...) are refused with -224 by this twin.

Physics: the meter reads a photodiode amplifier behind the vessel at `instrument`: `dark_v + blank_v *
10 ** (-absorbance)` (full blank signal with no vessel in the light path), plus seeded noise of `noise_sd_v` at
1 PLC, falling as 1/sqrt(NPLC). In four-wire ohms the meter reads the four-point probe on the sample at
`instrument`: the sample's `resistance_ohm` (V/I across the inner pins; infinite, an overflow, when there is no
sample or nothing on it conducts), with seeded noise of `fres_noise_ppm` of the reading at 1 PLC. With the `film`
option `ada` it reads instead the doped spiro-OMeTAD film of the Ada template between the substrate's electrodes
(`simulators.templates.ada:film_resistance_ohm`, computed from what was done to the sample). A reading takes
`NPLC / line_hz` simulated seconds.

Faults (`device_error`: the 2000 does not act on the request and reports its own error):
- a reading query (`:READ?`, `:FETCh?`, `:MEASure...?`) answers the overflow reading `+9.90000000E+37`, what the
  2000 sends when its input is overloaded;
- the error query answers `-350,"Queue overflow"` (the queue lost entries);
- any other query is not answered and `-200,"Execution error"` is queued (the driver times out, and the error
  queue says why);
- a setting is not applied and `-221,"Settings conflict"` is queued.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from simulators.twins.bench import Bench, Vessel
from simulators.twins.server import TwinProtocol

ERROR_MESSAGES: dict[int, str] = {
    -101: "Invalid character",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -120: "Numeric data error",
    -141: "Invalid character data",
    -200: "Execution error",
    -213: "Init ignored",
    -221: "Settings conflict",
    -222: "Parameter data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -350: "Queue overflow",
}
QUEUE_SIZE = 10
OVERFLOW = "+9.90000000E+37"
RANGES_V = (0.1, 1.0, 10.0, 100.0, 1000.0)
RANGE_MAX_V = 1010.0  # the largest :RANGe parameter, and the largest reading on the 1000 V range
NPLC_MIN, NPLC_MAX, NPLC_DEFAULT = 0.01, 10.0, 1.0
ELEMENTS = ("READ", "CHAN", "UNIT")  # the order they are sent in (Figure 5-1)
_ELEMENT_NAMES = {"READ": "READ", "READING": "READ", "CHAN": "CHAN", "CHANNEL": "CHAN", "UNIT": "UNIT", "UNITS": "UNIT"}
# Function names a 2000 takes in :FUNCtion (quoted); only DC volts and four-wire ohms are modelled here.
_DCV_NAMES = ("VOLT", "VOLT:DC", "VOLTAGE", "VOLTAGE:DC")
_FRES_NAMES = ("FRES", "FRESISTANCE")
DCV, FRES = "VOLT:DC", "FRES"  # the function names :FUNCtion? answers
RANGES_OHM = (1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)
RANGE_MAX_OHM = 120e6  # the largest :FRESistance:RANGe parameter: 120 % of the 100 MΩ range
# What four-wire ohms read on the sample: its `resistance_ohm` (a sputtered film's, from the sputter twin), or the
# Ada template's spiro-OMeTAD film, computed from the sample's dopant and anneal.
FILMS = {
    "bench": "simulators.twins.keithley2000:bench_resistance_ohm",
    "ada": "simulators.templates.ada:film_resistance_ohm",
}
# Standard Event Status Register bits (section 4, status structure) by error class.
_ESR_OPC, _ESR_QYE, _ESR_DDE, _ESR_EXE, _ESR_CME = 1, 4, 8, 16, 32

_HEADER = re.compile(r":?[A-Za-z][A-Za-z0-9]*(?::[A-Za-z][A-Za-z0-9]*)*\??")
_COMMON = re.compile(r"\*[A-Za-z]+\??")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[Ee][+-]?[0-9]+)?")


class ScpiError(Exception):
    """A SCPI error while executing one command: queued with its code, the rest of the message is dropped."""

    def __init__(self, code: int) -> None:
        super().__init__(f"{code},{ERROR_MESSAGES[code]}")
        self.code = code


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    optional: bool
    suffix: bool  # takes the numeric suffix 1 (SENSe1)

    def matches(self, mnemonic: str) -> bool:
        word = mnemonic.upper()
        if word in (self.short, self.long):
            return True
        base = word.rstrip("0123456789")
        if not self.suffix or base == word or base not in (self.short, self.long):
            return False
        if word[len(base) :] != "1":
            raise ScpiError(-114)
        return True


def _compile(pattern: str) -> tuple[_Node, ...]:
    """`[SENSe#]:VOLTage:[DC]:RANGe` -> nodes; capitals are the short form, [] optional, # a numeric suffix."""
    nodes = []
    for part in pattern.split(":"):
        optional = part.startswith("[")
        name = part.strip("[]")
        suffix = name.endswith("#")
        name = name.rstrip("#")
        nodes.append(_Node("".join(c for c in name if c.isupper()), name.upper(), optional, suffix))
    return tuple(nodes)


def _match(nodes: tuple[_Node, ...], mnemonics: list[str]) -> bool:
    if not nodes:
        return not mnemonics
    node, rest = nodes[0], nodes[1:]
    if mnemonics and node.matches(mnemonics[0]) and _match(rest, mnemonics[1:]):
        return True
    return node.optional and _match(rest, mnemonics)


def _split(text: str, separator: str) -> list[str]:
    """Split at `separator` outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == separator:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _nr3(value: float) -> str:
    return f"{value:+.8E}"


class Keithley2000Twin(TwinProtocol):
    """A Keithley 2000 reading the photodiode amplifier behind the vessel at `instrument`."""

    request_terminator = b"\n"
    reply_terminator = b"\n"

    def __init__(
        self,
        bench: Bench,
        instrument: str = "photometer",
        serial: str = "1234567",
        blank_v: float = 5.0,
        noise_sd_v: float = 0.0005,
        dark_v: float = 0.0005,
        *,
        firmware: str = "A20  /A02",
        line_hz: float = 60.0,
        fres_noise_ppm: float = 20.0,
        film: str = "bench",
    ) -> None:
        if not all(math.isfinite(x) for x in (blank_v, noise_sd_v, dark_v, line_hz, fres_noise_ppm)):
            raise ValueError("blank_v, noise_sd_v, dark_v, line_hz and fres_noise_ppm must be finite")
        if blank_v <= 0 or noise_sd_v < 0 or dark_v < 0 or line_hz <= 0 or fres_noise_ppm < 0:
            raise ValueError("blank_v and line_hz must be positive, noise_sd_v, dark_v and fres_noise_ppm not negative")
        if not serial or any(c in serial + firmware for c in ',;"\r\n') or not (serial + firmware).isascii():
            raise ValueError("serial and firmware are ASCII without , ; or quotes")
        self.bench = bench
        self.instrument = instrument
        self.serial = serial
        self.firmware = firmware
        self.blank_v = blank_v
        self.noise_sd_v = noise_sd_v
        self.dark_v = dark_v
        self.line_hz = line_hz
        self.fres_noise_ppm = fres_noise_ppm
        if film not in FILMS:
            raise ValueError(f"film: '{film}' is not one of {', '.join(FILMS)}")
        module, _, name = FILMS[film].partition(":")
        self.resistance: Callable[[Vessel], float] = getattr(import_module(module), name)
        self.errors: list[tuple[int, str]] = []
        self.esr = 0
        self.remote = False
        self.elements: list[str] = ["READ"]
        self._power_on()
        self.continuous = True  # at power-on the front panel measures continuously
        self._set_table = self._table(
            {
                "CONFigure:VOLTage:[DC]": self._configure,
                "CONFigure:FRESistance": self._configure_fres,
                "[SENSe#]:FRESistance:RANGe:[UPPer]": self._set_fres_range,
                "[SENSe#]:FRESistance:RANGe:AUTO": self._set_fres_autorange,
                "[SENSe#]:FRESistance:NPLCycles": self._set_fres_nplc,
                "[SENSe#]:FUNCtion": self._set_function,
                "[SENSe#]:VOLTage:[DC]:RANGe:[UPPer]": self._set_range,
                "[SENSe#]:VOLTage:[DC]:RANGe:AUTO": self._set_autorange,
                "[SENSe#]:VOLTage:[DC]:NPLCycles": self._set_nplc,
                "INITiate:[IMMediate]": self._initiate,
                "INITiate:CONTinuous": self._set_continuous,
                "ABORt": self._abort,
                "FORMat:ELEMents": self._set_elements,
                "FORMat:[DATA]": self._set_format,
                "SYSTem:REMote": self._remote,
                "SYSTem:LOCal": self._local,
                "SYSTem:PRESet": self._preset,
                "STATus:QUEue:CLEar": self._clear_queue,
            }
        )
        self._query_table = self._table(
            {
                "SYSTem:ERRor": self._next_error,
                "STATus:QUEue:[NEXT]": self._next_error,
                "SYSTem:VERSion": lambda p: self._none(p) or "1991.0",
                "CONFigure": lambda p: self._none(p) or f'"{self.function}"',
                "[SENSe#]:FUNCtion": lambda p: self._none(p) or f'"{self.function}"',
                "[SENSe#]:FRESistance:RANGe:[UPPer]": lambda p: self._none(p) or _nr3(self.fres_range_ohm),
                "[SENSe#]:FRESistance:RANGe:AUTO": lambda p: self._none(p) or ("1" if self.fres_autorange else "0"),
                "[SENSe#]:FRESistance:NPLCycles": lambda p: self._none(p) or _nr3(self.fres_nplc),
                "[SENSe#]:VOLTage:[DC]:RANGe:[UPPer]": lambda p: self._none(p) or _nr3(self.range_v),
                "[SENSe#]:VOLTage:[DC]:RANGe:AUTO": lambda p: self._none(p) or ("1" if self.autorange else "0"),
                "[SENSe#]:VOLTage:[DC]:NPLCycles": lambda p: self._none(p) or _nr3(self.nplc),
                "INITiate:CONTinuous": lambda p: self._none(p) or ("1" if self.continuous else "0"),
                "FORMat:ELEMents": lambda p: self._none(p) or ",".join(e for e in ELEMENTS if e in self.elements),
                "FORMat:[DATA]": lambda p: self._none(p) or "ASC",
                "READ": self._read,
                "FETCh": self._fetch,
                "MEASure:VOLTage:[DC]": self._measure,
                "MEASure:FRESistance": self._measure_fres,
            }
        )

    # --- TwinProtocol -------------------------------------------------------------------------------------------------

    def handle(self, request: str) -> list[str]:
        answers: list[str] = []
        path: list[str] = []
        for unit in _split(request, ";"):
            unit = unit.strip()
            if not unit:
                continue
            try:
                answer, path = self._execute(unit, path)
            except ScpiError as exc:
                self._push(exc.code)
                break  # IEEE 488.2: the rest of the message is not executed
            if answer is not None:
                answers.append(answer)
        return [";".join(answers)] if answers else []

    def error_reply(self, request: str) -> list[str]:
        kinds = [self._kind(unit.strip()) for unit in _split(request, ";") if unit.strip()]
        if "reading" in kinds:
            return [OVERFLOW]
        if "errors" in kinds:
            return ['-350,"Queue overflow"']
        self._push(-200 if "query" in kinds else -221)
        return []

    def answers(self, request: str) -> bool:
        return any(unit.strip().endswith("?") or "? " in unit for unit in _split(request, ";"))

    # --- parsing ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _table(entries: dict[str, Callable[[list[str]], str | None]]) -> list[tuple[tuple[_Node, ...], Callable]]:
        return [(_compile(pattern), handler) for pattern, handler in entries.items()]

    def _split_unit(self, unit: str, path: list[str]) -> tuple[str, list[str], list[str], bool]:
        """A command as (header text, mnemonics with the path applied, parameters, is-a-query)."""
        header, rest = re.fullmatch(r"(\S*)\s*(.*)", unit, re.DOTALL).groups()  # type: ignore[union-attr]
        query = header.endswith("?")
        params = [p.strip() for p in _split(rest, ",")] if rest.strip() else []
        if header.startswith("*"):
            if not _COMMON.fullmatch(header):
                raise ScpiError(-102)
            return header.upper(), [], params, query
        if not _HEADER.fullmatch(header):
            raise ScpiError(-102)
        words = header.rstrip("?").lstrip(":").split(":")
        mnemonics = words if header.startswith(":") else [*path, *words]
        return header, mnemonics, params, query

    def _kind(self, unit: str) -> str:
        try:
            header, mnemonics, _, query = self._split_unit(unit, [])
            handler = self._resolve(header, mnemonics, query)
        except ScpiError:
            return "query" if unit.split(" ")[0].endswith("?") else "setting"
        if handler in (self._read, self._fetch, self._measure, self._measure_fres):
            return "reading"
        if handler == self._next_error:
            return "errors"
        return "query" if query else "setting"

    def _resolve(self, header: str, mnemonics: list[str], query: bool) -> Callable[[list[str]], str | None]:
        if header.startswith("*"):
            common = {
                "*IDN?": self._identify,
                "*OPC?": lambda p: self._none(p) or "1",
                "*ESR?": self._read_esr,
                "*RST": self._reset,
                "*CLS": self._clear_status,
                "*OPC": self._set_opc,
                "*WAI": self._none,
            }
            if header not in common:
                raise ScpiError(-113)
            return common[header]
        for nodes, handler in self._query_table if query else self._set_table:
            if _match(nodes, mnemonics):
                return handler
        raise ScpiError(-113)

    def _execute(self, unit: str, path: list[str]) -> tuple[str | None, list[str]]:
        header, mnemonics, params, query = self._split_unit(unit, path)
        handler = self._resolve(header, mnemonics, query)
        if header.startswith("*"):
            return handler(params), path  # common commands leave the path where it was
        return handler(params), mnemonics[:-1]

    # --- parameters ---------------------------------------------------------------------------------------------

    @staticmethod
    def _none(params: list[str]) -> None:
        if params:
            raise ScpiError(-108)

    @staticmethod
    def _one(params: list[str]) -> str:
        if not params or not params[0]:
            raise ScpiError(-109)
        if len(params) > 1:
            raise ScpiError(-108)
        return params[0]

    def _numeric(self, params: list[str], low: float, high: float, default: float) -> float:
        text = self._one(params)
        named = {"MIN": low, "MINIMUM": low, "MAX": high, "MAXIMUM": high, "DEF": default, "DEFAULT": default}
        if text.upper() in named:
            return named[text.upper()]
        if not _NUMBER.fullmatch(text):
            raise ScpiError(-141 if text[:1].isalpha() else -120)
        value = float(text)
        if not math.isfinite(value) or not low <= value <= high:
            raise ScpiError(-222)
        return value

    def _boolean(self, params: list[str]) -> bool:
        text = self._one(params).upper()
        if text in ("ON", "OFF"):
            return text == "ON"
        if _NUMBER.fullmatch(text):
            return round(float(text)) != 0
        raise ScpiError(-141)

    # --- state ------------------------------------------------------------------------------------------------------

    def _power_on(self) -> None:
        """The *RST defaults: DC volts, and each function autoranging (from its top range at first) at 1 PLC."""
        self.function = DCV
        self.autorange = True
        self.range_v = 1000.0
        self.nplc = NPLC_DEFAULT
        self.fres_autorange = True
        self.fres_range_ohm = RANGES_OHM[-1]
        self.fres_nplc = NPLC_DEFAULT
        self.continuous = False
        self.last_reading: str | None = None

    def _push(self, code: int) -> None:
        """Queue an error (appendix B): 10 entries at most, the 11th turns the last one into -350."""
        if len(self.errors) < QUEUE_SIZE:
            self.errors.append((code, ERROR_MESSAGES[code]))
        else:
            self.errors[-1] = (-350, ERROR_MESSAGES[-350])
        if -199 <= code <= -100:
            self.esr |= _ESR_CME
        elif -299 <= code <= -200:
            self.esr |= _ESR_EXE
        elif -499 <= code <= -400:
            self.esr |= _ESR_QYE
        else:
            self.esr |= _ESR_DDE

    # --- common commands --------------------------------------------------------------------------------------------

    def _identify(self, params: list[str]) -> str:
        self._none(params)
        return f"KEITHLEY INSTRUMENTS INC.,MODEL 2000,{self.serial},{self.firmware}"

    def _reset(self, params: list[str]) -> None:
        self._none(params)
        self._power_on()

    def _clear_status(self, params: list[str]) -> None:
        self._none(params)
        self.errors.clear()
        self.esr = 0

    def _set_opc(self, params: list[str]) -> None:
        self._none(params)
        self.esr |= _ESR_OPC  # every operation here completes at once

    def _read_esr(self, params: list[str]) -> str:
        self._none(params)
        value, self.esr = self.esr, 0
        return str(value)

    # --- SYSTem, STATus, FORMat -------------------------------------------------------------------------------------

    def _next_error(self, params: list[str]) -> str:
        self._none(params)
        code, message = self.errors.pop(0) if self.errors else (0, "No error")
        return f'{code},"{message}"'

    def _clear_queue(self, params: list[str]) -> None:
        self._none(params)
        self.errors.clear()

    def _remote(self, params: list[str]) -> None:
        self._none(params)
        self.remote = True

    def _local(self, params: list[str]) -> None:
        self._none(params)
        self.remote = False

    def _preset(self, params: list[str]) -> None:
        self._none(params)
        self._power_on()
        self.continuous = True

    def _set_elements(self, params: list[str]) -> None:
        if not params or not all(params):
            raise ScpiError(-109)
        chosen = []
        for item in params:
            name = _ELEMENT_NAMES.get(item.upper())
            if name is None:
                raise ScpiError(-141)
            chosen.append(name)
        self.elements = chosen

    def _set_format(self, params: list[str]) -> None:
        kind = self._one(params).upper()
        if kind in ("ASC", "ASCII"):
            return
        if kind in ("SRE", "SREAL", "DRE", "DREAL"):
            raise ScpiError(-221)  # binary readings are not modelled: this twin stays in ASCII
        raise ScpiError(-141)

    # --- SENSe and CONFigure ------------------------------------------------------------------------------------------

    def _configure(self, params: list[str]) -> None:
        """:CONF:VOLT:DC: DC volts with its *RST settings, one-shot triggering (continuous initiation off)."""
        self._none(params)
        self.function = DCV
        self.autorange, self.nplc, self.continuous = True, NPLC_DEFAULT, False
        self.last_reading = None

    def _configure_fres(self, params: list[str]) -> None:
        """:CONF:FRES: four-wire ohms with its *RST settings (autorange, 1 PLC), one-shot triggering."""
        self._none(params)
        self.function = FRES
        self.fres_autorange, self.fres_nplc, self.continuous = True, NPLC_DEFAULT, False
        self.last_reading = None

    def _set_fres_range(self, params: list[str]) -> None:
        expected = self._numeric(params, 0.0, RANGE_MAX_OHM, RANGE_MAX_OHM)
        self.fres_range_ohm = next(r for r in RANGES_OHM if expected <= r or r == RANGES_OHM[-1])
        self.fres_autorange = False
        self.last_reading = None

    def _set_fres_autorange(self, params: list[str]) -> None:
        self.fres_autorange = self._boolean(params)
        self.last_reading = None

    def _set_fres_nplc(self, params: list[str]) -> None:
        self.fres_nplc = self._numeric(params, NPLC_MIN, NPLC_MAX, NPLC_DEFAULT)
        self.last_reading = None

    def _set_function(self, params: list[str]) -> None:
        text = self._one(params)
        if len(text) < 2 or text[0] not in "'\"" or text[-1] != text[0]:
            raise ScpiError(-104)
        name = text[1:-1].strip().upper()
        if name in _DCV_NAMES:
            self.function = DCV
        elif name in _FRES_NAMES:
            self.function = FRES
        else:
            raise ScpiError(-224)
        self.last_reading = None

    def _set_range(self, params: list[str]) -> None:
        expected = self._numeric(params, 0.0, RANGE_MAX_V, RANGE_MAX_V)
        self.range_v = next(r for r in RANGES_V if expected <= r or r == RANGES_V[-1])
        self.autorange = False  # a fixed range turns autorange off
        self.last_reading = None

    def _set_autorange(self, params: list[str]) -> None:
        self.autorange = self._boolean(params)
        self.last_reading = None

    def _set_nplc(self, params: list[str]) -> None:
        self.nplc = self._numeric(params, NPLC_MIN, NPLC_MAX, NPLC_DEFAULT)
        self.last_reading = None

    # --- triggering and readings --------------------------------------------------------------------------------------

    def _set_continuous(self, params: list[str]) -> None:
        self.continuous = self._boolean(params)

    def _abort(self, params: list[str]) -> None:
        self._none(params)

    def _initiate(self, params: list[str]) -> None:
        self._none(params)
        if self.continuous:
            raise ScpiError(-213)
        self.last_reading = self._take_reading()

    def _read(self, params: list[str]) -> str:
        """:READ? = :ABORt, :INITiate, :FETCh?. With continuous initiation on, :INITiate fails with -213 but the
        meter is measuring anyway, so the latest reading still comes back."""
        self._none(params)
        self.last_reading = self._take_reading()
        if self.continuous:
            self._push(-213)
        return self.last_reading

    def _fetch(self, params: list[str]) -> str | None:
        self._none(params)
        if self.continuous:
            self.last_reading = self._take_reading()
        if self.last_reading is None:
            raise ScpiError(-230)
        return self.last_reading

    def _measure(self, params: list[str]) -> str:
        self._configure(params)
        return self._read([])

    def _measure_fres(self, params: list[str]) -> str:
        self._configure_fres(params)
        return self._read([])

    def _take_reading(self) -> str:
        """One conversion of the selected function, formatted per :FORMat:ELEMents."""
        if self.function == FRES:
            return self._take_fres_reading()
        with self.bench.lock:
            self.bench.sync()
            vessel = self.bench.vessel_at(self.instrument)
            absorbance = vessel.absorbance if vessel is not None else 0.0
            noise = self.bench.noise(self.noise_sd_v / math.sqrt(self.nplc))
        self.bench.sleep(self.nplc / self.line_hz)
        volts = self.dark_v + self.blank_v * 10 ** (-absorbance) + noise
        if self.autorange:
            self.range_v = next((r for r in RANGES_V if abs(volts) <= _full_scale(r)), RANGES_V[-1])
        if abs(volts) > _full_scale(self.range_v):
            return OVERFLOW
        return self._format(volts, self.range_v, self.nplc, "VDC")

    def _take_fres_reading(self) -> str:
        """One four-wire reading of the probe on the sample at this instrument (an overflow with none there)."""
        with self.bench.lock:
            self.bench.sync()
            vessel = self.bench.vessel_at(self.instrument)
            ohms = self.resistance(vessel) if vessel is not None else math.inf
            noise = self.bench.noise(self.fres_noise_ppm * 1e-6 / math.sqrt(self.fres_nplc))
        self.bench.sleep(self.fres_nplc / self.line_hz)
        if not math.isfinite(ohms):
            if self.fres_autorange:
                self.fres_range_ohm = RANGES_OHM[-1]
            return OVERFLOW
        ohms *= 1.0 + noise
        if self.fres_autorange:
            self.fres_range_ohm = next((r for r in RANGES_OHM if abs(ohms) <= 1.2 * r), RANGES_OHM[-1])
        if abs(ohms) > 1.2 * self.fres_range_ohm:
            return OVERFLOW
        return self._format(ohms, self.fres_range_ohm, self.fres_nplc, "OHM4W")

    def _format(self, value: float, range_: float, nplc: float, unit: str) -> str:
        """A reading rounded to the resolution its range and integration time give, with the selected elements."""
        digits = 6 if nplc >= 1 else 5 if nplc >= 0.1 else 4  # 6½, 5½, 4½ digits
        resolution = range_ * 10.0**-digits
        parts = []
        if "READ" in self.elements:
            parts.append(_nr3(round(value / resolution) * resolution) + (unit if "UNIT" in self.elements else ""))
        if "CHAN" in self.elements:
            parts.append("0" + ("INTCHAN" if "UNIT" in self.elements else ""))
        return ",".join(parts)


def bench_resistance_ohm(vessel: Vessel) -> float:
    """The resistance a film left on the sample (by the sputter twin); infinite when nothing conducts."""
    return vessel.resistance_ohm


def _full_scale(range_v: float) -> float:
    """The largest reading a range shows: 120 % of it, 1010 V on the 1000 V range."""
    return RANGE_MAX_V if range_v >= RANGES_V[-1] else 1.2 * range_v
