"""Ocean Optics (Ocean Insight) miniature spectrometer on RS-232: the USB2000 / Flame family's serial command set,
in its ASCII data mode.

Implemented from Ocean Optics, "Flame Miniature Spectrometer User Manual", 225-00000-000-11-201604, chapter 8
("Firmware and Advanced Communications", RS-232 instruction set), which carries the command set of the S2000 /
SAD500 / USB2000 lineage:
- every command is one ASCII letter followed by its data; every command is answered ACK (ASCII 6) when accepted
  or NAK (ASCII 21) when not (a value out of range);
- `aA` switches to ASCII data mode and must be sent without CR or LF (binary mode is the power-up default): in
  ASCII mode data values are decimal and end with CR, and the device echoes the command and data values;
- `I{ms}` integration time in milliseconds, `A{n}` scans to add (accumulate), `J{0|1}` lamp enable line,
  `P3` then x, y, n: transmit pixels x through y, every n-th (pixel mode 3), `v` version number (1000 = 1.00.0);
- `S` acquires a spectrum: STX, then the words 0xFFFF (start), data size flag (0 WORDs, 1 DWORDs when scans are
  accumulated), scans accumulated, integration time in ms, FPGA baseline MSW and LSW, pixel mode (and the pixel
  mode's parameters when it is not 0), the spectral data, then 0xFFFD (end).
- `?x{i}` reads configuration entry i: 0 the serial number, 1-4 the wavelength calibration coefficients of order
  0-3 (wavelength of pixel p = c0 + c1 p + c2 p^2 + c3 p^3, in nm), as the USB2000's configuration index lists.

What the manual leaves unstated, and this driver assumes (check it against your unit before relying on it): in
ASCII mode each line the device sends (an echo, ACK or NAK, a value, each word of a spectrum in decimal) ends with
CR LF, and the ACK/NAK byte comes on a line of its own after the echo; the driver ends every command and value it
sends with CR, and `aA` with nothing. The twin (`simulators.twins.ocean_optics`) speaks exactly this.
"""

from __future__ import annotations

from typing import Any

from instruments.arrays import ArrayData, Axis
from instruments.contract import Action, Argument, Driver
from instruments.errors import DeviceError, ProtocolError
from instruments.transport import SerialSettings

ACK = "\x06"
NAK = "\x15"
STX = "\x02"
START_WORD = 0xFFFF
END_WORD = 0xFFFD
PIXELS = 2048  # the ILX511 detector of a USB2000


def parse_word(line: str) -> int:
    """One decimal value of ASCII mode (a WORD or, for accumulated scans, a DWORD)."""
    text = line.strip()
    if not text.isdigit() or len(text) > 10:
        raise ProtocolError("not a decimal value", received=line)
    return int(text)


def parse_number(line: str) -> float:
    """A configuration value (a calibration coefficient, written as a decimal number)."""
    try:
        value = float(line.strip())
    except ValueError:
        raise ProtocolError("not a number", received=line) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ProtocolError("not a finite number", received=line)
    return value


def parse_spectrum_words(words: list[int]) -> dict[str, Any]:
    """The words after STX, 0xFFFF to 0xFFFD: header fields and the pixel values; ProtocolError when malformed."""
    if len(words) < 8 or words[0] != START_WORD or words[-1] != END_WORD:
        raise ProtocolError("spectrum not framed by 0xFFFF ... 0xFFFD", received=" ".join(map(str, words[:8])))
    size_flag, scans, integration_ms, baseline_msw, baseline_lsw, mode = words[1:7]
    if size_flag not in (0, 1):
        raise ProtocolError(f"data size flag {size_flag}", received=str(size_flag))
    parameters = {0: 0, 3: 3}.get(mode)
    if parameters is None:
        raise ProtocolError(f"pixel mode {mode} is not one this driver sets", received=str(mode))
    pixel_parameters = words[7 : 7 + parameters]
    values = words[7 + parameters : -1]
    if mode == 0:
        pixels = list(range(PIXELS))
    else:
        first, last, every = pixel_parameters
        pixels = list(range(first, last + 1, max(every, 1)))
    if len(values) != len(pixels):
        raise ProtocolError(f"{len(values)} pixel values for {len(pixels)} pixels", received=str(len(values)))
    return {
        "scans": scans,
        "integration_ms": integration_ms,
        "baseline": baseline_msw * 65536 + baseline_lsw,
        "pixels": pixels,
        "values": values,
    }


class OceanOpticsSpectrometer(Driver):
    name = "ocean-optics"
    title = "Ocean Optics USB2000 / Flame spectrometer (RS-232 command set, ASCII mode)"
    manual = "Flame Miniature Spectrometer User Manual 225-00000-000-11-201604, ch. 8 (RS-232 instruction set)"
    serial = SerialSettings(
        baudrate=9600,
        write_terminator=b"\r",
        read_terminator=b"\r\n",
        control_bytes="\t\x02\x03\x06\x15",
        timeout_s=3.0,
        max_line=64,
    )
    actions = (
        Action(
            "acquire_spectrum",
            "Set integration time, scans to add and pixels x..y every n-th (pixel mode 3), then acquire (S): the "
            "spectrum as counts against wavelength (the unit's own calibration).",
            arguments=(
                Argument("integration_ms", "integer", "ms", minimum=3, maximum=65535, default=100),
                Argument("scans", "integer", "", minimum=1, maximum=100, default=1),
                Argument("first_pixel", "integer", "", minimum=0, maximum=PIXELS - 1, default=0),
                Argument("last_pixel", "integer", "", minimum=0, maximum=PIXELS - 1, default=PIXELS - 1),
                Argument("every", "integer", "", minimum=1, maximum=PIXELS, default=1),
            ),
            returns={"spectrum": "counts", "peak_counts": "counts"},
            arrays=("spectrum",),
        ),
        Action(
            "set_lamp",
            "Switch the lamp enable line (J): the light source of the sample compartment on or off (off: a dark).",
            arguments=(Argument("on", "boolean"),),
            returns={},
        ),
    )

    def __init__(self, port: str, **options: Any) -> None:
        super().__init__(port, **options)
        # The unit's wavelength calibration, read at identify (or before the first spectrum, when a station runs a
        # driver it never connected): a spectrum is never labelled with pixel numbers as if they were nanometres.
        self.coefficients: tuple[float, ...] | None = None

    # --- exchanges ------------------------------------------------------------------------------------------------

    def _command(self, command: str, *, idempotent: bool = True, values: int = 0) -> list[str]:
        """Send `command`, read its echo and the ACK (NAK: DeviceError), then `values` more lines."""

        def read(first: str) -> list[str]:
            line = first
            for _ in range(2):  # the ACK of a preceding `aA` (sent bare, answered with this command) comes first
                if line != command and line in (ACK, "aA"):
                    line = self.transport.read_line(command=command)
            if line != command:
                raise ProtocolError(f"expected the echo of {command!r}", received=line)
            status = self.transport.read_line(command=command)
            if status == NAK:
                raise DeviceError(f"{command!r} refused (NAK)", code="NAK")
            if status != ACK:
                raise ProtocolError("expected ACK or NAK", received=status)
            return [self.transport.read_line(command=command) for _ in range(values)]

        result: list[str] = self.query(command, idempotent=idempotent, parse=read)
        return result

    def identify(self) -> dict[str, str]:
        self.transport.send_bare("aA")  # ASCII data mode; answered together with the next command
        (version,) = self._command("v", values=1)
        number = parse_word(version)
        (serial_number,) = self._command("?x0", values=1)
        self.coefficients = self._read_coefficients()
        return {
            "model": "Ocean Optics spectrometer (RS-232)",
            "firmware": f"{number // 1000}.{(number // 10) % 100:02d}.{number % 10}",
            "serial": serial_number.strip(),
        }

    def _read_coefficients(self) -> tuple[float, ...]:
        """`?x1`..`?x4`: the wavelength calibration's coefficients of order 0-3."""
        return tuple(parse_number(self._command(f"?x{i}", values=1)[0]) for i in range(1, 5))

    def read_status(self) -> dict[str, Any]:
        (version,) = self._command("v", values=1)
        return {"version": parse_word(version), "coefficients": list(self.coefficients or ())}

    def safe_state(self) -> None:
        self._command("J0")

    def wavelength(self, pixel: int) -> float:
        if self.coefficients is None:
            self.coefficients = self._read_coefficients()
        c0, c1, c2, c3 = self.coefficients
        return c0 + c1 * pixel + c2 * pixel**2 + c3 * pixel**3

    # --- actions --------------------------------------------------------------------------------------------------

    def do_set_lamp(self, on: bool) -> dict[str, Any]:
        self._command(f"J{1 if on else 0}")
        return {}

    def do_acquire_spectrum(
        self, integration_ms: int, scans: int, first_pixel: int, last_pixel: int, every: int
    ) -> dict[str, Any]:
        if last_pixel < first_pixel:
            raise DeviceError(f"last_pixel {last_pixel} is before first_pixel {first_pixel}", code="NAK")
        self._command(f"I{integration_ms}")
        self._command(f"A{scans}")
        # Pixel mode 3 takes its three values as lines of their own; each is echoed, the last one acknowledged.
        self._echo("P3")
        self._echo(str(first_pixel))
        self._echo(str(last_pixel))
        self._command(str(every), idempotent=False)
        words = self.query("S", parse=self._read_spectrum)
        pixels, values = words["pixels"], words["values"]
        # The dark baseline the FPGA established is part of every value; it is left in (a dark spectrum removes it).
        spectrum = ArrayData.of(
            [self.wavelength(p) for p in pixels], values, Axis("wavelength", "nm"), Axis("intensity", "counts")
        )
        return {"spectrum": spectrum, "peak_counts": float(max(values))}

    def _echo(self, text: str) -> None:
        def read(line: str) -> None:
            if line != text:
                raise ProtocolError(f"expected the echo of {text!r}", received=line)

        self.query(text, idempotent=False, parse=read)

    def _read_spectrum(self, first: str) -> dict[str, Any]:
        if first != "S":
            raise ProtocolError("expected the echo of 'S'", received=first)
        start = self.transport.read_line(command="S")
        if start == NAK:
            raise DeviceError("'S' refused (NAK)", code="NAK")
        if start != STX:
            raise ProtocolError("expected STX before the spectrum", received=start)

        # Counted from the header, not read up to 0xFFFD: an accumulated (DWORD) value may equal that word.
        def word() -> int:
            return parse_word(self.transport.read_line(command="S"))

        words = [word() for _ in range(7)]
        if words[0] != START_WORD:
            raise ProtocolError("spectrum does not start with 0xFFFF", received=str(words[0]))
        if words[6] == 3:
            words += [word() for _ in range(3)]
            low, high, step = words[7:10]
            count = len(range(low, high + 1, max(step, 1)))
        elif words[6] == 0:
            count = PIXELS
        else:
            raise ProtocolError(f"pixel mode {words[6]} is not one this driver sets", received=str(words[6]))
        words += [word() for _ in range(count + 1)]
        return parse_spectrum_words(words)
