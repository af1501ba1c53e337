"""Keithley Model 2000 digital multimeter over RS-232 in its SCPI language, measuring DC volts (a photodetector) or
four-wire resistance (a four-point probe on a film).

Implemented from Keithley Instruments, "Model 2000 Multimeter User's Manual", document 2000-900-01 Rev. J
(August 2010):
- section 4, Remote Operation: "RS-232 operation" (p. 4-6: 8 data bits, 1 stop bit, no parity; baud rate chosen
  on the front panel from 300 to 19.2k, factory 4800; flow control NONE or XonXoff; terminator LF, CR or LFCR),
  "Programming syntax" (p. 4-32: long and short forms, `;` between commands of one message, queries end in `?`),
  "Common commands" (p. 4-39: `*IDN?`, `*RST`, `*CLS`, `*OPC?`);
- section 5, SCPI Command Reference: the signal oriented measurement commands (p. 5-3: `:CONFigure:VOLTage:DC`,
  `:READ?` = `:ABORt` + `:INITiate` + `:FETCh?`, `:MEASure:VOLTage:DC?`); the :FORMat subsystem (p. 5-28,
  Figure 5-1: an ASCII reading is `±1.23456789E±00` with the UNITs and CHANnel elements appended when selected,
  and an overflow reads `+9.9E37` with no units; `:FORMat:ELEMents READing`); the [SENSe[1]] subsystem (p. 5-37:
  `:FUNCtion 'VOLTage:DC'`, `:VOLTage:DC:RANGe <0 to 1010>`, `:RANGe:AUTO <b>`, `:NPLCycles <0.01 to 10>`, and the
  same for four-wire ohms: `:CONFigure:FRESistance`, `:MEASure:FRESistance?`, `:FUNCtion 'FRESistance'`,
  `:FRESistance:RANGe <n>` (ranges 100 Ω to 100 MΩ), `:FRESistance:RANGe:AUTO <b>`, `:FRESistance:NPLCycles <n>`;
  each function keeps its own range and integration time);
  the SYSTem subsystem (`:SYSTem:ERRor?` reads the FIFO error queue of 10 entries, `0,"No error"` when empty,
  `-350,"Queue overflow"` in the last place when it filled; `:SYSTem:REMote` / `:LOCal`, RS-232 only);
  `:INITiate:CONTinuous OFF` (with continuous initiation on, the `:INITiate` inside `:READ?` fails with
  -213 "Init ignored");
- appendix B, Status and Error Messages: the SCPI error codes (-113 undefined header, -222 parameter data out of
  range, -230 data corrupt or stale, -350 queue overflow, ...).

Line settings used here (set them on the 2000's front panel, SHIFT RS232): 9600 baud, 8N1, flow control NONE,
terminator LF. The 2000 ends what it sends with LF, and this driver ends what it sends with LF too (the
IEEE 488.2 program message terminator). A station whose meter is left at the factory 4800 baud overrides
`serial: {baudrate: 4800}`.

SCPI setting commands are not answered, so after every setting (and after every measurement) the driver reads the
error queue with `:SYSTem:ERRor?` until it says `0,"No error"`; any entry found is a DeviceError with the SCPI code
(the oldest entry's, all of them in the message). `:SYSTem:ERRor?` removes the entry it reports, so it is never
re-sent after a lost answer (an error would be lost with it): a lost answer there fails the action, which re-runs
whole (every action is idempotent). A query the 2000 cannot answer is answered with nothing and an entry in the
queue; after such a timeout the driver reads the queue and reports the entry as a DeviceError. An overflow reading
is a DeviceError with code `+9.9E37` (in four-wire ohms: an open probe, or a sample that does not conduct within
100 MΩ).

Each measurement reads the function it is named after: the driver keeps the function it last set and confirmed,
and a measurement of the other one selects its own first with `:SENSe:FUNCtion` (which keeps that function's range
and integration time, unlike :CONFigure), read back; so a photometer reading is never taken in ohms.

At connect the driver clears the queue (`*CLS`), takes the front panel (`:SYSTem:REMote`), selects DC volts, turns
continuous initiation off and asks for the reading element only (`:FORMat:ELEMents READ`), whatever a previous
program or the front panel left behind, and reads these settings back (a setting lost on the line raises no error
of its own; `configure_dc_voltage` reads its settings back for the same reason); `close()` gives the front panel
back (`:SYSTem:LOCal`).
"""

from __future__ import annotations

import contextlib
import math
import re
import statistics
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from instruments.contract import Action, Argument, Driver
from instruments.errors import DeviceError, InstrumentError, InstrumentTimeout, ProtocolError
from instruments.transport import SerialSettings

T = TypeVar("T")

# The reading the 2000 sends when the input is past the range (Figure 5-1 note): "+9.9E37", on the wire in the
# reading's own format, +9.90000000E+37. SCPI uses 9.9E37 for infinity and 9.91E37 for not-a-number.
OVERFLOW_CODE = "+9.9E37"
OVERFLOW_V = 9.9e37
# The error queue holds 10 entries (SYSTem:ERRor?), so 11 reads reach "0,No error"; one more for a race.
ERROR_QUEUE_SIZE = 10
# The integration times :NPLCycles accepts (p. 5-37).
NPLC_MIN, NPLC_MAX = 0.01, 10.0
# The four-wire ohms ranges (100 Ω to 100 MΩ in decades) and the readings a function name may come back as.
FRES_RANGE_MIN_OHM, FRES_RANGE_MAX_OHM = 1.0, 1.0e8
DCV, FRES = "VOLT:DC", "FRES"
_FUNCTION_NAMES = {"VOLT:DC": DCV, "VOLTAGE:DC": DCV, "FRES": FRES, "FRESISTANCE": FRES}
# Power line frequency assumed for timing (the slower of 50 and 60 Hz); a reading takes about three integrations
# with autozero on (signal, reference and zero).
_LINE_HZ = 50.0
_CONVERSIONS = 3.0

# NR3 (IEEE 488.2 section 8.7.4 / 7.7.2): mantissa with an explicit point, then an exponent. The 2000 always sends
# a sign, one digit, eight decimals and a two-digit exponent; any NR3 is accepted, nothing else.
_NR3 = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)[Ee][+-]?[0-9]{1,3}")
# A number in the answer to a setting query: NR1, NR2 or NR3.
_NRF = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[Ee][+-]?[0-9]{1,3})?")
# The reading followed by elements this driver did not ask for (units VDC..., a channel number).
_NR3_WITH_ELEMENTS = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)[Ee][+-]?[0-9]{1,3}(?:[A-Za-z]+|,).*")
# An error queue entry: <code>,"<message>" (a quote inside the message is doubled).
_ERROR_ENTRY = re.compile(r'([+-]?[0-9]{1,4}),"((?:[^"]|"")*)"')
_QUOTED = re.compile(r'"((?:[^"]|"")*)"|\'((?:[^\']|\'\')*)\'')


# --- parsers: pure functions of one answer line, raising only typed instrument errors --------------------------------


def _text(line: object) -> str:
    if not isinstance(line, str):
        raise ProtocolError("answer is not text", received=repr(line))
    return line.strip()


def parse_reading(line: str) -> float:
    """A reading from `:READ?`, `:FETCh?` or `:MEASure:VOLTage:DC?` with `:FORMat:ELEMents READ`: one NR3 number.

    The overflow reading (+9.9E37, either sign) raises DeviceError with code `+9.9E37`; units or a channel after
    the number (other elements selected) and anything else raise ProtocolError.
    """
    text = _text(line)
    if not _NR3.fullmatch(text):
        if _NR3_WITH_ELEMENTS.fullmatch(text):
            raise ProtocolError(
                "reading carries more than the reading element (is :FORMat:ELEMents READ?)", received=text
            )
        raise ProtocolError("reading is not an NR3 number", received=text)
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError("reading out of range", received=text)
    if abs(value) >= OVERFLOW_V:
        raise DeviceError("overflow: the input is beyond the selected range (+9.9E37)", code=OVERFLOW_CODE)
    return value


def parse_number(line: str) -> float:
    """The answer to a numeric setting query (`:RANGe?`, `:NPLCycles?`): an NR1, NR2 or NR3 number."""
    text = _text(line)
    if not _NRF.fullmatch(text):
        raise ProtocolError("answer is not a number", received=text)
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError("number out of range", received=text)
    return value


def parse_boolean(line: str) -> bool:
    """The answer to a boolean query (`:RANGe:AUTO?`, `:INITiate:CONTinuous?`): `1` or `0`."""
    text = _text(line)
    if text not in ("0", "1"):
        raise ProtocolError("answer is not a boolean 0 or 1", received=text)
    return text == "1"


def parse_quoted(line: str) -> str:
    """A string response (`:FUNCtion?` answers `"VOLT:DC"`): the text between the quotes, doubled quotes undone."""
    text = _text(line)
    match = _QUOTED.fullmatch(text)
    if match is None:
        raise ProtocolError("answer is not a quoted string", received=text)
    if match.group(1) is not None:
        return match.group(1).replace('""', '"')
    return match.group(2).replace("''", "'")


def parse_opc(line: str) -> None:
    """The answer to `*OPC?`: `1` once every pending operation is complete."""
    if _text(line) != "1":
        raise ProtocolError("*OPC? answer is not 1", received=str(line))


def parse_elements(line: str) -> tuple[str, ...]:
    """The answer to `:FORMat:ELEMents?`: the selected elements, e.g. `READ` or `READ,UNIT`, upper case."""
    text = _text(line)
    items = tuple(item.strip().upper() for item in text.split(","))
    if not text or any(not re.fullmatch(r"[A-Z]+", item) for item in items):
        raise ProtocolError("answer is not a list of data elements", received=text)
    return items


def parse_error_entry(line: str) -> tuple[int, str]:
    """An entry of the error queue (`:SYSTem:ERRor?`): `0,"No error"` or e.g. `-113,"Undefined header"`."""
    text = _text(line)
    match = _ERROR_ENTRY.fullmatch(text)
    if match is None:
        raise ProtocolError('error queue entry is not <code>,"<message>"', received=text)
    return int(match.group(1)), match.group(2).replace('""', '"')


def parse_identity(line: str) -> dict[str, str]:
    """The answer to `*IDN?`: `KEITHLEY INSTRUMENTS INC.,MODEL 2000,<serial>,<firmware>` (common commands, p. 4-39).

    The firmware field is `<main>/<display>` revisions, padded with spaces; runs of spaces are closed up.
    """
    text = _text(line)
    fields = [" ".join(field.split()) for field in text.split(",")]
    if len(fields) != 4 or not all(fields):
        raise ProtocolError("*IDN? answer is not <manufacturer>,<model>,<serial>,<firmware>", received=text)
    manufacturer, model, serial_number, firmware = fields
    if not manufacturer.upper().startswith("KEITHLEY") or not model.upper().startswith("MODEL "):
        raise ProtocolError("not a Keithley multimeter", received=text)
    return {"manufacturer": manufacturer, "model": model, "serial": serial_number, "firmware": firmware}


def format_entries(entries: list[tuple[int, str]]) -> str:
    """Error queue entries as the 2000 reports them, `;`-separated: `-113,"Undefined header";-222,"..."`."""
    return ";".join(f'{code},"{message}"' for code, message in entries)


def _format_number(value: float) -> str:
    """A numeric parameter as SCPI <NRf>: up to 6 significant digits (the manual's parameter resolution)."""
    return f"{value:.6g}"


class Keithley2000(Driver):
    """A Keithley 2000 on RS-232 in SCPI, reading DC volts (the output of a photodiode amplifier) or four-wire ohms
    (a four-point probe)."""

    name = "keithley-2000"
    title = "Keithley 2000 multimeter (SCPI)"
    manual = (
        "Keithley Model 2000 Multimeter User's Manual, 2000-900-01 Rev. J (Aug 2010): section 4 Remote Operation "
        "(RS-232 operation, programming syntax, common commands *IDN? *RST *CLS *OPC?), section 5 SCPI Command "
        "Reference (:CONFigure/:READ?/:MEASure?, :FORMat:ELEMents, [:SENSe]:VOLTage:DC and :FRESistance "
        "RANGe/NPLCycles, "
        ":SYSTem:ERRor?/:REMote/:LOCal, :INITiate:CONTinuous), appendix B status and error messages"
    )
    serial = SerialSettings(
        baudrate=9600,
        bytesize=8,
        parity="N",
        stopbits=1,
        xonxoff=False,
        write_terminator=b"\n",
        read_terminator=b"\n",
        encoding="ascii",
    )
    actions: ClassVar[tuple[Action, ...]] = (
        Action(
            "configure_dc_voltage",
            "Select DC volts (:CONF:VOLT:DC), the range that holds range_v (or autoranging from it) and the "
            "integration time in power line cycles; returns the range and NPLC the meter reports.",
            arguments=(
                Argument(
                    "range_v",
                    unit="V",
                    minimum=0.1,
                    maximum=1000.0,
                    description="Largest reading expected; the 2000 picks the lowest of 0.1, 1, 10, 100, 1000 V "
                    "that holds it (with autorange on, the range it starts from).",
                ),
                Argument(
                    "nplc",
                    unit="PLC",
                    minimum=NPLC_MIN,
                    maximum=NPLC_MAX,
                    default=1.0,
                    description="Integration time in power line cycles: longer is quieter and slower.",
                ),
                Argument("autorange", "boolean", default=False, description="Let the 2000 choose the range."),
            ),
            returns={"range_v": "V", "nplc": "PLC"},
        ),
        Action(
            "measure_voltage",
            "Take `samples` readings (:READ? each) and return their mean and sample standard deviation.",
            arguments=(Argument("samples", "integer", minimum=1, maximum=100, default=1),),
            returns={"voltage_v": "V", "voltage_sd_v": "V"},
        ),
        Action(
            "configure_resistance_4w",
            "Select four-wire ohms (:CONF:FRES), the range that holds range_ohm (or autoranging from it) and the "
            "integration time in power line cycles; returns the range and NPLC the meter reports.",
            arguments=(
                Argument(
                    "range_ohm",
                    unit="ohm",
                    minimum=FRES_RANGE_MIN_OHM,
                    maximum=FRES_RANGE_MAX_OHM,
                    description="Largest resistance expected; the 2000 picks the lowest of 100 Ω … 100 MΩ (decades) "
                    "that holds it (with autorange on, the range it starts from).",
                ),
                Argument(
                    "nplc",
                    unit="PLC",
                    minimum=NPLC_MIN,
                    maximum=NPLC_MAX,
                    default=1.0,
                    description="Integration time in power line cycles: longer is quieter and slower.",
                ),
                Argument("autorange", "boolean", default=False, description="Let the 2000 choose the range."),
            ),
            returns={"range_ohm": "ohm", "nplc": "PLC"},
        ),
        Action(
            "measure_resistance_4w",
            "Take `samples` four-wire resistance readings (:READ? each) and return their mean and sample standard "
            "deviation; an open probe or a sample past 100 MΩ is an overflow (a device error).",
            arguments=(Argument("samples", "integer", minimum=1, maximum=100, default=1),),
            returns={"resistance_ohm": "ohm", "resistance_sd_ohm": "ohm"},
        ),
        Action(
            "reset",
            "Return the meter to its *RST defaults (DC volts, autorange, 1 PLC), clear the error queue and select "
            "the reading element only again.",
        ),
        Action(
            "read_errors",
            "Read and empty the error queue; errors lists the entries as code,\"message\" separated by ';' "
            "(empty when there are none).",
            returns={"errors": "", "count": ""},
        ),
    )

    def __init__(self, port: str, **options: Any) -> None:
        super().__init__(port, **options)
        # The integration time each function is set to (for the reading timeout), and the function last confirmed.
        self._nplc = 1.0
        self._fres_nplc = 1.0
        self._function = DCV

    # --- the contract ---------------------------------------------------------------------------------------------

    def connect(self) -> dict[str, str]:
        """Open the line, identify the meter, and put it in the state every action assumes (see module doc)."""
        identity = super().connect()
        self._function = ""  # confirmed by the read-back at the end
        self._setting("*CLS")  # errors from before this session would be blamed on its first action
        self._setting(":SYST:REM")
        self._setting(":SENS:FUNC 'VOLT:DC'")  # keeps the DCV range and NPLC, unlike :CONF
        self._setting(":INIT:CONT OFF")
        self._select_reading_element()
        self._verify_session()
        return identity

    def close(self) -> None:
        """Give the front panel back (`:SYSTem:LOCal`, RS-232 only) and close the line; a dead line is no error."""
        if self.transport.is_open:
            with contextlib.suppress(InstrumentError):
                self.send(":SYST:LOC")
        super().close()

    def identify(self) -> dict[str, str]:
        """`*IDN?` (common commands, p. 4-39) as manufacturer, model, serial and firmware."""
        return self._query_parsed("*IDN?", parse_identity)

    def read_status(self) -> dict[str, Any]:
        """The function (`:SENS:FUNC?`), DC volts range, autorange and NPLC (`[:SENSe]:VOLTage:DC:...?`, p. 5-37).

        With autorange on, the range is the one the last reading used.
        """
        function = self._query_parsed(":SENS:FUNC?", parse_quoted)
        range_v = self._query_parsed(":SENS:VOLT:DC:RANG?", parse_number)
        autorange = self._query_parsed(":SENS:VOLT:DC:RANG:AUTO?", parse_boolean)
        nplc = self._query_parsed(":SENS:VOLT:DC:NPLC?", parse_number)
        self._nplc = nplc
        return {"function": function, "range_v": range_v, "autorange": autorange, "nplc": nplc}

    def safe_state(self) -> None:
        """A voltmeter drives nothing and moves nothing, and a reset would lose the configuration of a measurement
        under way: nothing is sent."""

    # --- actions --------------------------------------------------------------------------------------------------

    def do_configure_dc_voltage(self, range_v: float, nplc: float, autorange: bool) -> dict[str, Any]:
        """`:CONF:VOLT:DC` (p. 5-3: DC volts, one-shot triggering, defaults), then `:SENS:VOLT:DC:RANG <n>`
        (the lowest range holding n; turns autorange off), `:SENS:VOLT:DC:RANG:AUTO ON` when asked, and
        `:SENS:VOLT:DC:NPLC <n>` (p. 5-37), each checked against the error queue.

        The settings are read back: a setting lost on the line (not answered, so not otherwise noticed) is a
        ProtocolError rather than a measurement under the wrong settings.
        """
        self._function = ""  # unknown until the settings are read back
        self._setting(":CONF:VOLT:DC")
        self._setting(f":SENS:VOLT:DC:RANG {_format_number(range_v)}")
        if autorange:
            self._setting(":SENS:VOLT:DC:RANG:AUTO ON")
        self._setting(f":SENS:VOLT:DC:NPLC {_format_number(nplc)}")
        status = self.read_status()
        wrong = []
        if str(status["function"]).upper() not in ("VOLT:DC", "VOLTAGE:DC"):
            wrong.append(f"function {status['function']}")
        if status["autorange"] != autorange:
            wrong.append(f"autorange {'on' if status['autorange'] else 'off'}")
        if not math.isclose(status["nplc"], nplc, rel_tol=1e-6, abs_tol=1e-9):
            wrong.append(f"NPLC {status['nplc']:g} (asked {nplc:g})")
        if not autorange and status["range_v"] < range_v * (1 - 1e-9):
            wrong.append(f"range {status['range_v']:g} V below the asked {range_v:g} V")
        if wrong:
            raise ProtocolError(f"the 2000 did not take the settings: {', '.join(wrong)}", command=":CONF:VOLT:DC")
        self._function = DCV
        return {"range_v": status["range_v"], "nplc": status["nplc"]}

    def do_measure_voltage(self, samples: int) -> dict[str, Any]:
        """`samples` times `:READ?` (p. 5-3: abort, initiate one reading, fetch it), then the error queue.

        Each reading may take a few integrations, so its timeout grows with the NPLC. An overflow reading is a
        DeviceError (+9.9E37): the mean of readings past the range would be meaningless.
        """
        self._select_function(DCV)
        mean, spread = self._readings(samples, self._nplc)
        return {"voltage_v": mean, "voltage_sd_v": spread}

    def do_configure_resistance_4w(self, range_ohm: float, nplc: float, autorange: bool) -> dict[str, Any]:
        """`:CONF:FRES` (four-wire ohms, one-shot triggering, defaults), `:SENS:FRES:RANG <n>` (the lowest range
        holding n; autorange off), `:SENS:FRES:RANG:AUTO ON` when asked and `:SENS:FRES:NPLC <n>`, each checked
        against the error queue, then read back (as `configure_dc_voltage` does, and for the same reason)."""
        self._setting(":CONF:FRES")
        self._setting(f":SENS:FRES:RANG {_format_number(range_ohm)}")
        if autorange:
            self._setting(":SENS:FRES:RANG:AUTO ON")
        self._setting(f":SENS:FRES:NPLC {_format_number(nplc)}")
        function = self._query_parsed(":SENS:FUNC?", parse_quoted)
        range_read = self._query_parsed(":SENS:FRES:RANG?", parse_number)
        autorange_read = self._query_parsed(":SENS:FRES:RANG:AUTO?", parse_boolean)
        nplc_read = self._query_parsed(":SENS:FRES:NPLC?", parse_number)
        self._fres_nplc = nplc_read
        wrong = []
        if _FUNCTION_NAMES.get(function.upper()) != FRES:
            wrong.append(f"function {function}")
        if autorange_read != autorange:
            wrong.append(f"autorange {'on' if autorange_read else 'off'}")
        if not math.isclose(nplc_read, nplc, rel_tol=1e-6, abs_tol=1e-9):
            wrong.append(f"NPLC {nplc_read:g} (asked {nplc:g})")
        if not autorange and range_read < range_ohm * (1 - 1e-9):
            wrong.append(f"range {range_read:g} ohm below the asked {range_ohm:g} ohm")
        if wrong:
            self._function = ""  # unknown: the next measurement selects its function again
            raise ProtocolError(f"the 2000 did not take the settings: {', '.join(wrong)}", command=":CONF:FRES")
        self._function = FRES
        return {"range_ohm": range_read, "nplc": nplc_read}

    def do_measure_resistance_4w(self, samples: int) -> dict[str, Any]:
        """`samples` times `:READ?` in four-wire ohms, then the error queue (as `measure_voltage`)."""
        self._select_function(FRES)
        mean, spread = self._readings(samples, self._fres_nplc)
        return {"resistance_ohm": mean, "resistance_sd_ohm": spread}

    def _readings(self, samples: int, nplc: float) -> tuple[float, float]:
        """`samples` readings (`:READ?`, the timeout grown by the integration time), their mean and spread."""
        timeout_s = self.transport.settings.timeout_s + _CONVERSIONS * nplc / _LINE_HZ
        readings = [self._query_parsed(":READ?", parse_reading, timeout_s=timeout_s) for _ in range(samples)]
        self._check_errors(":READ?")
        spread = statistics.stdev(readings) if len(readings) > 1 else 0.0
        return statistics.fmean(readings), spread

    def _select_function(self, function: str) -> None:
        """Make `function` the one measured, unless it is the one last confirmed; read back (a lost setting would
        otherwise read the other quantity). `:SENSe:FUNCtion` keeps the function's range and NPLC."""
        if self._function == function:
            return
        self._function = ""
        self._setting(f":SENS:FUNC '{function}'")
        found = self._query_parsed(":SENS:FUNC?", parse_quoted)
        if _FUNCTION_NAMES.get(found.upper()) != function:
            raise ProtocolError(f"the 2000 did not select {function}", received=found, command=":SENS:FUNC?")
        if function == FRES:
            self._fres_nplc = self._query_parsed(":SENS:FRES:NPLC?", parse_number)
        else:
            self._nplc = self._query_parsed(":SENS:VOLT:DC:NPLC?", parse_number)
        self._function = function

    def do_reset(self) -> dict[str, Any]:
        """`*RST` (defaults: DC volts, autorange, 1 PLC, continuous initiation off), `*CLS` (empties the error
        queue), `*OPC?` (waits for both), then `:FORMat:ELEMents READ` again (common commands, p. 4-39)."""
        self._function = ""  # confirmed by the read-back at the end
        self.send("*RST")
        self.send("*CLS")
        self._query_parsed("*OPC?", parse_opc, timeout_s=self.transport.settings.timeout_s + 1.0)
        self._setting(":INIT:CONT OFF")  # *RST turns it off already; said again so the state never depends on it
        self._select_reading_element()
        self._verify_session()
        return {}

    def do_read_errors(self) -> dict[str, Any]:
        """`:SYSTem:ERRor?` until `0,"No error"`: the entries, oldest first, as text, and how many there were."""
        entries = self._drain_errors()
        return {"errors": format_entries(entries), "count": len(entries)}

    # --- SCPI plumbing --------------------------------------------------------------------------------------------

    def _query_parsed(self, command: str, parse: Callable[[str], T], *, timeout_s: float | None = None) -> T:
        """Query (retried by the transport when the answer is lost) and parse; a query the 2000 did not answer
        because it failed is explained by the error queue (DeviceError with that code) where it says why."""
        try:
            line = self.query(command, timeout_s=timeout_s)
        except InstrumentTimeout as timeout:
            try:
                entries = self._drain_errors()
            except InstrumentError:
                raise timeout from None
            if entries:
                raise self._device_error(entries, command) from None
            raise
        try:
            return parse(line)
        except InstrumentError as exc:
            exc.command = exc.command or command
            raise

    def _setting(self, command: str) -> None:
        """Send a command the 2000 does not answer, then check the error queue for what it made of it."""
        self.send(command)
        self._check_errors(command)

    def _select_reading_element(self) -> None:
        """`:FORMat:ELEMents READ` (p. 5-28), read back: a reading with units would not parse as a number."""
        self._setting(":FORM:ELEM READ")
        elements = self._query_parsed(":FORM:ELEM?", parse_elements)
        if elements not in (("READ",), ("READING",)):
            raise ProtocolError("the 2000 did not take :FORMat:ELEMents READ", received=",".join(elements))

    def _verify_session(self) -> None:
        """Read back what connect and reset set up: settings are not answered, so one lost on the line would
        otherwise show only later, as -213 on every reading or readings of another function."""
        if self._query_parsed(":INIT:CONT?", parse_boolean):
            raise ProtocolError("the 2000 did not take :INITiate:CONTinuous OFF", command=":INIT:CONT OFF")
        function = self._query_parsed(":SENS:FUNC?", parse_quoted)
        if function.upper() not in ("VOLT:DC", "VOLTAGE:DC"):
            raise ProtocolError("the 2000 did not select DC volts", received=function, command=":SENS:FUNC?")
        self._nplc = self._query_parsed(":SENS:VOLT:DC:NPLC?", parse_number)
        self._function = DCV

    def _drain_errors(self) -> list[tuple[int, str]]:
        """Read the error queue until it is empty. Never re-sent after a lost answer: each read removes an entry."""
        entries: list[tuple[int, str]] = []
        for _ in range(ERROR_QUEUE_SIZE + 2):
            line = self.query(":SYST:ERR?", idempotent=False)
            try:
                code, message = parse_error_entry(line)
            except InstrumentError as exc:
                exc.command = ":SYST:ERR?"
                raise
            if code == 0:
                return entries
            entries.append((code, message))
        raise ProtocolError(
            f"the error queue did not empty after {ERROR_QUEUE_SIZE + 2} reads", received=format_entries(entries[-3:])
        )

    def _check_errors(self, after: str) -> None:
        """DeviceError with the oldest entry's code if the error queue holds anything (it is emptied)."""
        entries = self._drain_errors()
        if entries:
            raise self._device_error(entries, after)

    def _device_error(self, entries: list[tuple[int, str]], command: str) -> DeviceError:
        return DeviceError(
            f"the 2000 reported {format_entries(entries)}", code=str(entries[0][0]), command=command, instrument=""
        )
