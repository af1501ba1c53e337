"""The plug-in package's own conformance test: peirce's kit run against the package's twin."""

from __future__ import annotations

import pytest
from acme_thermometer.driver import AcmeThermometer
from acme_thermometer.twin import AcmeThermometerTwin

from instruments.conformance import DriverConformance
from simulators.twins.bench import Bench
from simulators.twins.server import TwinServer


class TestAcmeThermometer(DriverConformance):
    driver_class = AcmeThermometer
    examples = (("read_temperature", {"samples": 2}),)
    query_action = ("read_temperature", {})

    @pytest.fixture
    def twin(self):
        with TwinServer(AcmeThermometerTwin(Bench(seed=1))) as server:
            server.start_pty()
            yield server
