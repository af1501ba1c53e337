"""ACME TM-2 thermometer driver (example protocol, ASCII, 9600 8N1, CR LF both ways).

Wire protocol (the example "manual", section 3):
- `*IDN?` → `ACME,TM-2,<serial>,<firmware>`
- `TEMP?` → `TEMP <value> C`           (a reading of the probe, in °C)
- `UNITS C` → `OK`                      (set the unit; only C is offered here)
- any error → `ERR <code>`             (1 unknown command, 2 probe open circuit)
"""

from __future__ import annotations

from instruments.contract import Action, Argument, Driver
from instruments.errors import DeviceError, ProtocolError
from instruments.transport import SerialSettings


def parse_temperature(line: str) -> float:
    """`TEMP 23.41 C` → 23.41; `ERR n` → DeviceError; anything else → ProtocolError."""
    if line.startswith("ERR "):
        raise DeviceError(f"thermometer error {line[4:]}", code=line[4:])
    parts = line.split()
    if len(parts) != 3 or parts[0] != "TEMP" or parts[2] != "C":
        raise ProtocolError("not a temperature reading", received=line)
    try:
        return float(parts[1])
    except ValueError:
        raise ProtocolError("unreadable temperature", received=line) from None


class AcmeThermometer(Driver):
    name = "acme-thermometer"
    title = "ACME TM-2 thermometer"
    manual = "ACME TM-2 user manual, section 3 (serial commands)"
    serial = SerialSettings(baudrate=9600)
    actions = (
        Action(
            "read_temperature",
            "Read the probe temperature.",
            arguments=(Argument("samples", "integer", minimum=1, maximum=20, default=1, description="Readings."),),
            returns={"temperature_c": "°C"},
        ),
    )

    def identify(self) -> dict[str, str]:
        fields = self.query("*IDN?").split(",")
        if len(fields) != 4:
            raise ProtocolError("not an identification", received=",".join(fields))
        return dict(zip(("manufacturer", "model", "serial", "firmware"), fields, strict=True))

    def read_status(self) -> dict[str, float]:
        return {"temperature_c": parse_temperature(self.query("TEMP?"))}

    def safe_state(self) -> None:
        """A thermometer moves nothing: its safe state is the state it is in."""

    def do_read_temperature(self, samples: int) -> dict[str, float]:
        readings = [parse_temperature(self.query("TEMP?")) for _ in range(samples)]
        return {"temperature_c": sum(readings) / len(readings)}
