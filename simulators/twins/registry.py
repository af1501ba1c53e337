"""Which twin speaks which driver's protocol: peirce's own, plus any registered by other packages under the
`peirce.twins` entry-point group (same name as the driver's entry point)."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

BUILT_IN = {
    "mettler-sics": "simulators.twins.mettler_sics:MettlerSicsTwin",
    "ika-namur": "simulators.twins.ika_namur:IkaNamurTwin",
    "newera-pump": "simulators.twins.newera_pump:NewEraPumpTwin",
    "keithley-2000": "simulators.twins.keithley2000:Keithley2000Twin",
    "ocean-optics": "simulators.twins.ocean_optics:OceanOpticsTwin",
    "generic-sputter": "simulators.twins.sputter:SputterTwin",
    "generic-xrd": "simulators.twins.xrd:XrdTwin",
    "generic-powder-prep": "simulators.twins.powder_prep:PowderPrepTwin",
    "eurotherm-modbus": "simulators.twins.eurotherm:EurothermFurnaceTwin",
    "ika-eurostar": "simulators.twins.ika_eurostar:IkaEurostarTwin",
}
GROUP = "peirce.twins"


def twin_names() -> list[str]:
    return sorted(set(BUILT_IN) | {ep.name for ep in entry_points(group=GROUP)})


def load_twin(driver: str) -> Any:
    """The twin class for a driver name; KeyError naming the drivers that have twins."""
    for ep in entry_points(group=GROUP):
        if ep.name == driver:
            return ep.load()
    if driver not in BUILT_IN:
        raise KeyError(f"no device twin for driver '{driver}' (twins exist for: {', '.join(twin_names())})")
    module, _, name = BUILT_IN[driver].partition(":")
    return getattr(import_module(module), name)
