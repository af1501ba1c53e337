"""The lab file: instruments declared once for the lab, shared by the campaigns that name it.

lab: bench_lab                      # the lab's name: an experiment's hold on `pump` is `instrument:bench_lab:pump`
holds: {timeout_s: 600}             # how long an experiment waits for an instrument another campaign holds
instruments:
  pump: {driver: newera-pump, port: /dev/ttyUSB0, limits: {volume_ml: {max: 3, per_experiment: 3}}}
  hotplate: {driver: ika-namur, port: "socket://10.0.0.7:4001", limits: {temperature_c: {max: 140}}}
twins: {time_scale: 600}            # optional: a lab on device twins

A station campaign refers to it with `lab_file:` and names the instruments it uses, as a list or as a mapping
whose entries may narrow the lab's limits (a campaign may narrow a limit, never widen it):

lab:
  station: reaction_bench
  lab_file: lab.yaml
  instruments: {pump: {limits: {volume_ml: {max: 2}}}, hotplate: {}}

`resolve_station` turns that into the inline form the rest of peirce reads (each instrument in full, the limits
the tighter of the two, the lab's twins unless the campaign gives its own) plus `shared:` naming the lab, so the
stored spec stands on its own: resuming or replaying a campaign never reads the lab file again. (Running the campaign
file again after an instrument moved to another port updates the stored places: `runs.create_or_reopen`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from orchestrator.campaign.station import InstrumentSpec, LimitSpec, TwinSettings
from orchestrator.campaign.yaml_file import load_yaml
from orchestrator.errors import SpecError
from orchestrator.records.base import StrictModel as _Strict
from planners.space import Identifier


class HoldSettings(_Strict):
    timeout_s: float = Field(
        default=600.0, gt=0, description="Longest wait for an instrument held by another experiment, in seconds."
    )


class LabFile(_Strict):
    lab: Identifier = Field(description="The lab's name; holds on its instruments are named after it.")
    instruments: dict[Identifier, InstrumentSpec] = Field(min_length=1)
    twins: TwinSettings | None = Field(default=None, description="The lab runs on device twins.")
    holds: HoldSettings = Field(default_factory=HoldSettings)


class InstrumentUse(_Strict):
    """How a campaign uses one of the lab's instruments: optionally with narrower limits."""

    limits: dict[Identifier, LimitSpec] = Field(default_factory=dict)


def load_lab_file(path: Path) -> LabFile:
    """Read and check a lab file; a fault is one SpecError naming the file and the field
    (`lab.yaml: instruments.pump.port`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("lab.lab_file", f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError("lab.lab_file", f"cannot read {path}: {exc}") from None
    # The campaign file's loader: a repeated key or runaway nesting is refused here too, by line.
    data = load_yaml(text, path.name)
    if not isinstance(data, dict):
        raise SpecError(path.name, "a lab file is a mapping with lab, instruments (and optionally twins, holds)")
    try:
        return LabFile.model_validate(data)
    except ValidationError as exc:
        raise _error(path.name, exc) from None


def _error(prefix: str, exc: ValidationError) -> SpecError:
    error = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")[0]
    field = ".".join(str(part) for part in error["loc"] if part != "[key]")
    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "required field is missing"
    return SpecError(f"{prefix}: {field}" if field else prefix, message)


def resolve_station(lab: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The `lab:` mapping of a campaign file that names a lab file, in the inline form (see the module's doc)."""
    if "shared" in lab:
        raise SpecError("lab.shared", "set from the lab file; name the file with lab_file instead")
    path = Path(str(lab["lab_file"]))
    path = (base_dir / path).resolve() if not path.is_absolute() else path
    lab_file = load_lab_file(path)
    uses = _uses(lab.get("instruments"))
    instruments = {}
    for name, use in uses.items():
        declared = lab_file.instruments.get(name)
        if declared is None:
            raise SpecError(
                f"lab.instruments.{name}",
                f"the lab {lab_file.lab} ({path.name}) has no instrument '{name}' "
                f"(it has: {', '.join(lab_file.instruments)})",
            )
        limits = narrowed(name, declared.limits, use.limits, path.name)
        instruments[name] = declared.model_copy(update={"limits": limits}).model_dump(mode="json", exclude_unset=True)
        instruments[name]["limits"] = {k: v.model_dump(exclude_none=True) for k, v in limits.items()}
    resolved = {**lab, "lab_file": str(path), "instruments": instruments}
    resolved["shared"] = {"lab": lab_file.lab, "hold_timeout_s": lab_file.holds.timeout_s}
    if "twins" not in lab and lab_file.twins is not None:
        resolved["twins"] = lab_file.twins.model_dump(mode="json")
    return resolved


def _uses(value: Any) -> dict[str, InstrumentUse]:
    if isinstance(value, list):
        names: dict[str, InstrumentUse] = {}
        for i, name in enumerate(value):
            if not isinstance(name, str):
                raise SpecError(f"lab.instruments[{i}]", "an instrument's name in the lab file")
            if name in names:
                raise SpecError(f"lab.instruments[{i}]", f"'{name}' is named twice")
            names[name] = InstrumentUse()
        if not names:
            raise SpecError("lab.instruments", "name at least one of the lab's instruments")
        return names
    if isinstance(value, dict) and value:
        uses = {}
        for name, use in value.items():
            try:
                uses[str(name)] = InstrumentUse.model_validate(use or {})
            except ValidationError as exc:
                raise _error(f"lab.instruments.{name}", exc) from None
        return uses
    raise SpecError(
        "lab.instruments",
        "with lab_file: a list of the lab's instruments, or a mapping of them to narrower limits ({limits: ...})",
    )


def narrowed(
    instrument: str, lab: dict[str, LimitSpec], campaign: dict[str, LimitSpec], lab_file: str
) -> dict[str, LimitSpec]:
    """The lab's limits, tightened by the campaign's; a campaign limit wider than the lab's is refused by name."""
    merged = dict(lab)
    for argument, limit in campaign.items():
        own = lab.get(argument)
        where = f"lab.instruments.{instrument}.limits.{argument}"
        if own is not None:
            if limit.max is not None and own.max is not None and limit.max > own.max:
                raise SpecError(
                    f"{where}.max", f"{limit.max:g} is wider than the lab's {own.max:g} ({lab_file}); only narrower"
                )
            if limit.min is not None and own.min is not None and limit.min < own.min:
                raise SpecError(
                    f"{where}.min", f"{limit.min:g} is wider than the lab's {own.min:g} ({lab_file}); only narrower"
                )
            wider = (limit.per_experiment or 0) > (own.per_experiment or float("inf"))
            if limit.per_experiment is not None and wider:
                raise SpecError(
                    f"{where}.per_experiment",
                    f"{limit.per_experiment:g} is wider than the lab's {own.per_experiment:g} ({lab_file}); "
                    "only narrower",
                )
            try:
                merged[argument] = LimitSpec(
                    min=limit.min if limit.min is not None else own.min,
                    max=limit.max if limit.max is not None else own.max,
                    per_experiment=limit.per_experiment if limit.per_experiment is not None else own.per_experiment,
                )
            except ValidationError as exc:
                raise SpecError(where, str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
        else:
            merged[argument] = limit
    return merged
