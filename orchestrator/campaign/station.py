"""The `lab:` block of a campaign that runs on a station of instruments (pydantic models; see docs/instruments.md).

lab:
  station: reaction_bench
  instruments:
    pump: {driver: newera-pump, port: /dev/ttyUSB0, limits: {volume_ml: {max: 3, per_experiment: 3}}}
    hotplate: {driver: ika-namur, port: "socket://10.0.0.7:4001", limits: {temperature_c: {max: 130}}}
  protocol:
    - {instrument: pump, action: dispense, args: {volume_ml: "{volume}", rate_ml_min: 10}}
    - {wait: "{time}", unit: min}
    - {manual: "Weigh the precipitate", outcome: mass_mg, unit: mg}   # a person does it and enters the number
    - {analyse: peak, input: {spectrum: trace}, args: {low: 400, high: 600}, save: {height: peak}}  # arrays -> numbers
  outcomes: {yield: "100 * conversion"}
  twins: {time_scale: 600}        # run on device twins instead of hardware (ports are then not needed)

Or, with the instruments declared once for the lab (orchestrator/campaign/lab_file.py):

lab:
  station: reaction_bench
  lab_file: lab.yaml                # relative to the campaign file
  instruments: [pump, hotplate]     # or {pump: {limits: {volume_ml: {max: 2}}}}: narrower limits, never wider
  protocol: ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Discriminator, Field, FiniteFloat, Tag, model_validator

from orchestrator.records.base import StrictModel as _Strict
from planners.space import Identifier


class LimitSpec(_Strict):
    # Finite numbers only: a limit of nan compares false with every value, so it would let any value through.
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None
    per_experiment: FiniteFloat | None = Field(
        default=None, gt=0, description="Most of this quantity in one experiment."
    )

    @model_validator(mode="after")
    def _ordered(self) -> LimitSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} > max {self.max:g}")
        if self.min is None and self.max is None and self.per_experiment is None:
            raise ValueError("a limit needs min, max or per_experiment")
        return self


class InstrumentSpec(_Strict):
    driver: str = Field(description="Driver name, as `peirce instruments` lists it (an entry point).")
    port: str | None = Field(
        default=None, description="Serial URL: /dev/ttyUSB0, socket://host:port, rfc2217://… (not needed with twins)."
    )
    limits: dict[Identifier, LimitSpec] = Field(
        default_factory=dict, description="Safety limits per argument name, checked before anything is sent."
    )
    serial: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the driver's line settings (baudrate, timeout_s, …)."
    )
    twin: dict[str, Any] = Field(default_factory=dict, description="Options of this instrument's device twin.")


class ActionStepSpec(_Strict):
    instrument: Identifier
    action: Identifier
    args: dict[Identifier, FiniteFloat | int | bool | str] = Field(
        default_factory=dict, description="Arguments; '{parameter}' is replaced by the experiment's value."
    )
    save: dict[Identifier, Identifier] = Field(
        default_factory=dict, description="Returned measurement -> name used in the outcome formulas."
    )


class WaitStepSpec(_Strict):
    wait: Annotated[FiniteFloat, Field(ge=0)] | str = Field(description="How long: a number or '{parameter}'.")
    unit: Literal["s", "min", "h"] = "s"


class ManualStepSpec(_Strict):
    """A step a person does (`{manual: "Weigh the precipitate", outcome: mass_mg, unit: mg}`): the runner waits for
    the number they enter (`peirce tell CAMPAIGN SEQ mass_mg=12.3 --by NAME`), saved under `outcome`."""

    manual: str = Field(min_length=1, description="What the person does; '{parameter}' is replaced by its value.")
    outcome: Identifier = Field(description="Name of the number entered, for the outcome formulas.")
    unit: str = Field(default="", description="Unit of the number entered (shown to the person).")


class AnalysisStepSpec(_Strict):
    """Arrays saved by earlier steps turned into numbers by a registered analysis (`instruments.analysis`):
    `{analyse: absorbance_at_peak, input: {sample: film, reference: blank, dark: dark}, args: {...},
    save: {absorbance: a_peak}}`."""

    analyse: Identifier = Field(description="The analysis's name (instruments.analysis, or a package's entry point).")
    input: dict[Identifier, Identifier] = Field(
        min_length=1, description="The analysis's array arguments -> names earlier steps saved arrays under."
    )
    args: dict[Identifier, FiniteFloat] = Field(default_factory=dict, description="The analysis's numbers.")
    save: dict[Identifier, Identifier] = Field(
        default_factory=dict, description="Returned number -> name used in the outcome formulas."
    )


def _step_kind(value: Any) -> str:
    if isinstance(value, dict):
        if "manual" in value:
            return "manual-step"
        if "analyse" in value:
            return "analysis-step"
        return "wait-step" if "wait" in value else "action-step"
    if isinstance(value, ManualStepSpec):
        return "manual-step"
    if isinstance(value, AnalysisStepSpec):
        return "analysis-step"
    return "wait-step" if isinstance(value, WaitStepSpec) else "action-step"


StepSpec = Annotated[
    Annotated[ActionStepSpec, Tag("action-step")]
    | Annotated[WaitStepSpec, Tag("wait-step")]
    | Annotated[ManualStepSpec, Tag("manual-step")]
    | Annotated[AnalysisStepSpec, Tag("analysis-step")],
    Discriminator(_step_kind),
]


FaultKind = Literal["no_answer", "late_answer", "garbled", "device_error", "disconnect"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)


class FaultSpec(_Strict):
    rate: float = Field(default=0.0, ge=0, le=1, description="Probability that a request meets a fault.")
    kinds: list[FaultKind] = Field(default_factory=lambda: list(FAULT_KINDS))


class TwinSettings(_Strict):
    time_scale: float = Field(default=1.0, gt=0, description="Simulated seconds per wall-clock second.")
    seed: int = Field(default=0, ge=0)
    transport: Literal["pty", "tcp"] = Field(default="pty", description="How twins are served: a pty or TCP.")
    faults: FaultSpec = Field(default_factory=FaultSpec)


class SharedInstruments(_Strict):
    """Filled in from the lab file when the campaign file names one (never written by hand): the instruments are the
    lab's, shared with its other campaigns, and each experiment holds one before it uses it."""

    lab: Identifier = Field(description="The lab's name (the lab file's `lab:`); holds are named after it.")
    hold_timeout_s: float = Field(gt=0, description="How long an experiment waits for an instrument another holds.")


class StationLab(_Strict):
    """A station of real instruments (or their twins) and the protocol one experiment follows on it."""

    station: Identifier = Field(description="The station's name.")
    lab_file: Path | None = Field(
        default=None,
        description="The lab's instruments file (relative to the campaign file); `instruments` then names them.",
    )
    shared: SharedInstruments | None = Field(
        default=None, description="Set from the lab file: the lab whose instruments these are (not written by hand)."
    )
    instruments: dict[Identifier, InstrumentSpec] = Field(min_length=1)
    protocol: list[StepSpec] = Field(min_length=1)
    outcomes: dict[Identifier, str] = Field(
        min_length=1, description="Objective -> formula over saved measurements and numeric parameters."
    )
    twins: TwinSettings | None = Field(default=None, description="Run on device twins instead of instruments.")
    max_concurrency: int = Field(default=4, ge=1, description="Experiments under way at once (reservations apply).")


STATION_MODELS: tuple[type[BaseModel], ...] = (
    StationLab,
    InstrumentSpec,
    LimitSpec,
    ActionStepSpec,
    WaitStepSpec,
    ManualStepSpec,
    AnalysisStepSpec,
    TwinSettings,
    FaultSpec,
    SharedInstruments,
)
