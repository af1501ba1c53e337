"""A powder-preparation station over RS-232 (gravimetric dosing of precursors into a vial, then milling), in a
generic line protocol documented here.

Self-driving solid-state labs prepare each sample in such a station: the A-Lab's (Szymanski et al., Nature 624, 86
(2023)) doses precursor powders by weight from its hoppers into a vial, adds milling media and shakes it, and a
robot arm then moves the powder to a crucible and a box furnace. Those stations are driven by their integrators'
software; this driver speaks a small generic protocol that states what one must offer a closed loop, so that a
lab can put a converter (or a subclass speaking its station's commands) in front of its own. It is peirce's own, a
stand-in, not any vendor's.

Line: 9600 baud, 8N1, no flow control; requests and answers end in CR LF; every request is answered with one line.
- `*IDN?` -> `<maker>,<model>,<serial>,<firmware>`
- `NEW` -> `OK <vial>`: take a fresh, tared vial under the dosing head; `<vial>` counts the vials since power-on.
- `DOSE <formula>,<mg>` -> `OK <mg dosed>`: dose that many milligrams of the precursor from its hopper into the
  vial (to 0.1 mg; the balance's reading of what landed, within a fraction of a per cent of what was asked). It
  moves matter: never re-sent.
- `MILL <minutes>` -> `OK`: start shaking the vial with its milling media for that long (0.1-120 min).
- `STAT?` -> `STAT <vial>,<doses>,<mg in the vial>,<state>`: the current vial, how many doses it holds and their
  mass (after a lost answer to `DOSE`, this says whether it landed), and IDLE or MILLING.
- `STOP` -> `OK`: dosing head closed, mill stopped (the safe state; harmless when idle).
- errors: `ERR <code>`: 1 unknown command, 2 a value malformed or out of range, 3 no hopper holds that precursor,
  4 no vial (send NEW), 5 interlock (door open), 6 busy (milling): the request was not acted on.

The driver turns a recipe (precursors named by formula, joined by '+', and an amount of target) into masses the way
a synthesis planner does: the amounts that carry the target's cations (`instruments.powder.balance`; oxygen and
carbon come and go with the furnace's air), times each precursor's molar mass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from instruments.contract import Action, Argument, Driver
from instruments.drivers.generic_line import LineAnswers
from instruments.errors import InstrumentTimeout, InvalidAction, ProtocolError
from instruments.powder import balance, molar_mass
from instruments.transport import SerialSettings

ERRORS = {
    "1": "unknown command",
    "2": "value malformed or out of range",
    "3": "no hopper holds that precursor",
    "4": "no vial: send NEW",
    "5": "interlock (door open): not acted on",
    "6": "busy: the mill is running",
}
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_STAT = re.compile(rf"STAT ([0-9]{{1,9}}),([0-9]{{1,4}}),({_NUMBER}),(IDLE|MILLING)")
_OK_NUMBER = re.compile(rf"OK ({_NUMBER})")
MAX_MG = 10000.0  # what one dose may ask of a hopper


_ANSWERS = LineAnswers("preparation station", ERRORS)
parse_ok = _ANSWERS.ok
parse_identity = _ANSWERS.identity


def parse_ok_number(line: str) -> float:
    """`OK <number>` (the vial taken by NEW, the milligrams a DOSE landed)."""
    text = _ANSWERS.text(line)
    match = _OK_NUMBER.fullmatch(text)
    if match is None:
        raise ProtocolError("answer is not OK <number>", received=text)
    return float(match.group(1))


def parse_status(line: str) -> dict[str, Any]:
    """`STAT <vial>,<doses>,<mg>,<state>`."""
    text = _ANSWERS.text(line)
    match = _STAT.fullmatch(text)
    if match is None:
        raise ProtocolError("answer to STAT? is not STAT <vial>,<doses>,<mg>,<state>", received=text)
    return {
        "vial": int(match.group(1)),
        "doses": int(match.group(2)),
        "vial_mg": float(match.group(3)),
        "state": match.group(4),
    }


def recipe_masses(precursors: str, target: str, target_mmol: float) -> dict[str, float]:
    """Milligrams of each precursor ('Y2O3+BaO2+CuO') for `target_mmol` of the target; InvalidAction naming what
    is wrong with the recipe."""
    names = [name.strip() for name in precursors.split("+")]
    if not all(names) or len(set(names)) != len(names):
        raise InvalidAction(f"prepare.precursors: {precursors!r} is not formulas joined by '+', each once")
    try:
        amounts = balance(names, target, target_mmol)
        return {name: amounts[name] * molar_mass(name) for name in names}
    except ValueError as exc:
        raise InvalidAction(f"prepare.precursors: {exc}") from None


class PowderPrepStation(Driver):
    """A preparation station: a fresh vial, precursors dosed into it by weight, milled."""

    name = "generic-powder-prep"
    title = "Powder-preparation station: gravimetric dosing and milling (generic line protocol)"
    manual = "peirce generic powder-preparation protocol (instruments/drivers/powder_prep.py module documentation)"
    serial = SerialSettings(
        baudrate=9600, bytesize=8, parity="N", stopbits=1, write_terminator=b"\r\n", read_terminator=b"\r\n"
    )
    poll_s: ClassVar[float] = 0.2  # seconds between status polls while the mill runs
    actions: ClassVar[tuple[Action, ...]] = (
        Action(
            "prepare",
            "Take a fresh vial (NEW), dose each precursor (DOSE, each sent once) in the amounts that carry the "
            "target's cations for `target_mmol` of it, and mill the vial (MILL, then STAT? until the mill stops); "
            "returns what was dosed.",
            arguments=(
                Argument("precursors", "text", description="Formulas joined by '+', e.g. Y2O3+BaO2+CuO."),
                Argument("target", "text", description="The target's formula, e.g. YBa2Cu3O6.5."),
                Argument("target_mmol", unit="mmol", minimum=0.01, maximum=10.0, default=1.0),
                Argument("mill_min", unit="min", minimum=0.1, maximum=120.0, default=30.0),
            ),
            returns={"dosed_mg": "mg", "worst_dose_error_pct": "%", "vial": ""},
            idempotent=False,
        ),
        Action(
            "read_vial",
            "The current vial, how many doses it holds, their mass in mg, and whether it is milling (STAT?).",
            returns={"vial": "", "doses": "", "vial_mg": "mg", "state": ""},
        ),
    )

    # --- the contract ---------------------------------------------------------------------------------------------

    def identify(self) -> dict[str, str]:
        return self.query("*IDN?", parse=parse_identity)

    def read_status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.query("STAT?", parse=parse_status)
        return status

    def safe_state(self) -> None:
        """STOP: dosing head closed, mill stopped. Idempotent, so it may be retried."""
        self.query("STOP", parse=parse_ok)

    @classmethod
    def check_arguments(cls, action: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """As the base class, and a recipe must balance onto its target within what a hopper gives."""
        bound = super().check_arguments(action, arguments)
        if action == "prepare":
            masses = recipe_masses(bound["precursors"], bound["target"], bound["target_mmol"])
            too_much = [name for name, mg in masses.items() if mg > MAX_MG]
            if too_much:
                raise InvalidAction(f"prepare.target_mmol: {', '.join(too_much)} would need more than {MAX_MG:g} mg")
        return bound

    # --- actions --------------------------------------------------------------------------------------------------

    def do_prepare(self, precursors: str, target: str, target_mmol: float, mill_min: float) -> dict[str, Any]:
        masses = recipe_masses(precursors, target, target_mmol)  # checked by check_arguments before this
        # Each of these moves matter: never re-sent; after a lost answer, STAT? tells what the vial holds.
        vial = int(self.query("NEW", idempotent=False, parse=parse_ok_number))
        dosed, worst = 0.0, 0.0
        for name, mg in masses.items():
            if mg <= 0:
                continue
            got = self.query(f"DOSE {name},{mg:.1f}", idempotent=False, parse=parse_ok_number)
            dosed += got
            worst = max(worst, abs(got - round(mg, 1)) / mg * 100)
        self.query(f"MILL {mill_min:.1f}", idempotent=False, parse=parse_ok)
        # The mill's minutes pass on the station's time (scaled with twins); the deadline leaves it a minute more.
        deadline = self.clock.now() + mill_min * 60.0 + 60.0
        while self.read_status()["state"] == "MILLING":
            if self.clock.now() >= deadline:
                raise InstrumentTimeout(f"the mill did not stop within {mill_min:g} min", command="STAT?")
            self.clock.sleep(self.poll_s)
        return {"dosed_mg": round(dosed, 1), "worst_dose_error_pct": round(worst, 3), "vial": vial}

    def do_read_vial(self) -> dict[str, Any]:
        return self.read_status()
