"""A sputter-deposition controller over RS-232, in a generic line protocol documented here.

Sputter systems are driven by their makers' own controllers and protocols, mostly not public; this driver speaks a
small generic protocol that states what such a controller must offer a closed loop (load a recipe, start one run,
follow it, stop it), so that a lab can put a converter (or a subclass of this driver speaking its controller's
commands) in front of its chamber. It is peirce's own, not any vendor's.

Line: 9600 baud, 8N1, no flow control; requests and answers end in CR LF; every request is answered with one line.
- `*IDN?` -> `<maker>,<model>,<serial>,<firmware>`
- `RCP <ar_sccm>,<o2_sccm>,<power_w>,<substrate_c>,<time_min>` -> `OK`: load the recipe of the next run (argon
  and oxygen flows, RF power, substrate setpoint, deposition minutes), kept to two decimals. Loading it twice is
  loading it once. `RCP?` -> `RCP <the five values>`.
- `RUN` -> `OK <run>`: start a run with the loaded recipe (heat the substrate, deposit for the recipe's minutes,
  cool to venting temperature); `<run>` counts the runs started since power-on. It moves matter: never re-sent.
- `STAT?` -> `STAT <state>,<runs>,<substrate_c>,<thickness_nm>`, state one of IDLE HEATING DEPOSITING COOLING
  DONE ABORTED; runs as `RUN` counts them (after a lost answer to `RUN`, this says whether it started);
  thickness from the quartz-crystal monitor, of the current or last run.
- `STOP` -> `OK`: plasma, gas and heater off at once (the safe state; harmless when nothing runs).
- errors: `ERR <code>`: 1 unknown command, 2 a recipe value malformed or out of the controller's range, 3 busy (a
  run is under way), 4 no recipe loaded, 5 interlock (vacuum, cooling water, door): the request was not acted on.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from instruments.contract import Action, Argument, Driver
from instruments.drivers.generic_line import LineAnswers
from instruments.errors import DeviceError, InstrumentTimeout, ProtocolError
from instruments.transport import SerialSettings

STATES = ("IDLE", "HEATING", "DEPOSITING", "COOLING", "DONE", "ABORTED")
RUNNING = ("HEATING", "DEPOSITING", "COOLING")
ERRORS = {
    "1": "unknown command",
    "2": "recipe value malformed or out of range",
    "3": "busy: a run is under way",
    "4": "no recipe loaded",
    "5": "interlock (vacuum, cooling water or door): not acted on",
}
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_STAT = re.compile(rf"STAT ({'|'.join(STATES)}),([0-9]{{1,9}}),({_NUMBER}),({_NUMBER})")
_RECIPE = re.compile(rf"RCP ({_NUMBER}),({_NUMBER}),({_NUMBER}),({_NUMBER}),({_NUMBER})")
_OK_RUN = re.compile(r"OK ([0-9]{1,9})")
RECIPE = ("ar_sccm", "o2_sccm", "power_w", "substrate_c", "time_min")


_ANSWERS = LineAnswers("controller", ERRORS)
parse_ok = _ANSWERS.ok
parse_identity = _ANSWERS.identity


def parse_run(line: str) -> int:
    """`OK <run>` to RUN: the number of the run started."""
    text = _ANSWERS.text(line)
    match = _OK_RUN.fullmatch(text)
    if match is None:
        raise ProtocolError("answer to RUN is not OK <run>", received=text)
    return int(match.group(1))


def parse_status(line: str) -> dict[str, Any]:
    """`STAT <state>,<runs>,<substrate_c>,<thickness_nm>`."""
    text = _ANSWERS.text(line)
    match = _STAT.fullmatch(text)
    if match is None:
        raise ProtocolError("answer to STAT? is not STAT <state>,<runs>,<substrate_c>,<thickness_nm>", received=text)
    return {
        "state": match.group(1),
        "runs": int(match.group(2)),
        "substrate_c": float(match.group(3)),
        "thickness_nm": float(match.group(4)),
    }


def parse_recipe(line: str) -> tuple[float, ...]:
    """`RCP <ar>,<o2>,<power>,<substrate>,<minutes>`."""
    text = _ANSWERS.text(line)
    match = _RECIPE.fullmatch(text)
    if match is None:
        raise ProtocolError("answer to RCP? is not RCP <five numbers>", received=text)
    return tuple(float(value) for value in match.groups())


class SputterController(Driver):
    """A sputter chamber's controller: recipe, run, status, stop."""

    name = "generic-sputter"
    title = "Sputter-deposition controller (generic line protocol)"
    manual = "peirce generic sputter-controller protocol (instruments/drivers/sputter.py module documentation)"
    serial = SerialSettings(
        baudrate=9600, bytesize=8, parity="N", stopbits=1, write_terminator=b"\r\n", read_terminator=b"\r\n"
    )
    poll_s: ClassVar[float] = 0.5  # wall seconds between status polls while a run goes on
    actions: ClassVar[tuple[Action, ...]] = (
        Action(
            "load_recipe",
            "Load the next run's recipe (RCP) and read it back (RCP?).",
            arguments=(
                Argument("ar_sccm", unit="sccm", minimum=0.0, maximum=100.0, description="Argon flow."),
                Argument("o2_sccm", unit="sccm", minimum=0.0, maximum=10.0, description="Oxygen flow."),
                Argument("power_w", unit="W", minimum=0.0, maximum=300.0, description="RF power on the target."),
                Argument("substrate_c", unit="degC", minimum=0.0, maximum=600.0, description="Substrate setpoint."),
                Argument("time_min", unit="min", minimum=0.1, maximum=600.0, description="Deposition time."),
            ),
        ),
        Action(
            "start_run",
            "Start one run with the loaded recipe (RUN, sent once: it grows a film); returns its run number.",
            returns={"run": ""},
            idempotent=False,
        ),
        Action(
            "wait_until_done",
            "Follow the run (STAT?) until it is DONE: heated, deposited and cooled to venting temperature; returns "
            "the quartz monitor's thickness. An aborted run, or none, is a device error.",
            arguments=(Argument("timeout_min", unit="min", minimum=1.0, maximum=1440.0, default=600.0),),
            returns={"thickness_nm": "nm", "run": "", "substrate_c": "degC"},
        ),
        Action(
            "read_run",
            "The controller's state, runs started, substrate temperature and monitor thickness (STAT?).",
            returns={"state": "", "runs": "", "substrate_c": "degC", "thickness_nm": "nm"},
        ),
    )

    # --- the contract ---------------------------------------------------------------------------------------------

    def identify(self) -> dict[str, str]:
        return self.query("*IDN?", parse=parse_identity)

    def read_status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.query("STAT?", parse=parse_status)
        return status

    def safe_state(self) -> None:
        """STOP: plasma, gas and heater off. Idempotent, so it may be retried."""
        self.query("STOP", parse=parse_ok)

    # --- actions --------------------------------------------------------------------------------------------------

    def do_load_recipe(self, **recipe: float) -> dict[str, Any]:
        values = [recipe[name] for name in RECIPE]
        self.query("RCP " + ",".join(f"{value:.2f}" for value in values), parse=parse_ok)
        loaded = self.query("RCP?", parse=parse_recipe)
        wanted = tuple(round(value, 2) for value in values)
        if any(abs(a - b) > 0.006 for a, b in zip(loaded, wanted, strict=True)):
            raise ProtocolError("the controller did not take the recipe", received=str(loaded), command="RCP")
        return {}

    def do_start_run(self) -> dict[str, Any]:
        # Never re-sent: after a lost answer, STAT? (runs) tells whether it started; the station raises meanwhile.
        run = self.query("RUN", idempotent=False, parse=parse_run)
        return {"run": run}

    def do_wait_until_done(self, timeout_min: float) -> dict[str, Any]:
        deadline = self.clock.now() + timeout_min * 60.0
        while True:
            status = self.read_status()
            if status["state"] == "DONE":
                return {
                    "thickness_nm": status["thickness_nm"],
                    "run": status["runs"],
                    "substrate_c": status["substrate_c"],
                }
            if status["state"] not in RUNNING:
                raise DeviceError(f"no run under way (the controller is {status['state']})", code=status["state"])
            if self.clock.now() >= deadline:
                raise InstrumentTimeout(
                    f"the run was not done within {timeout_min:g} min (it is {status['state']})", command="STAT?"
                )
            self.clock.sleep(self.poll_s)

    def do_read_run(self) -> dict[str, Any]:
        return self.read_status()
