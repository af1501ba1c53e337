"""Device twin of the ACME TM-2: answers the protocol with the temperature of the vessel at the instrument."""

from __future__ import annotations

from simulators.twins.bench import Bench
from simulators.twins.server import TwinProtocol


class AcmeThermometerTwin(TwinProtocol):
    def __init__(self, bench: Bench, instrument: str = "thermometer", serial: str = "TM2-0001") -> None:
        self.bench = bench
        self.instrument = instrument
        self.serial = serial

    def handle(self, request: str) -> list[str]:
        if request == "*IDN?":
            return [f"ACME,TM-2,{self.serial},1.0"]
        if request == "TEMP?":
            self.bench.sync()
            vessel = self.bench.vessel_at(self.instrument)
            temperature = vessel.temperature_c if vessel is not None else self.bench.ambient_c
            return [f"TEMP {temperature + self.bench.noise(0.01):.2f} C"]
        if request == "UNITS C":
            return ["OK"]
        return ["ERR 1"]

    def error_reply(self, request: str) -> list[str]:
        return ["ERR 2"]
