"""Finding drivers: through the `peirce.instruments` entry-point group, so a separate package adds a driver
without changing peirce. peirce's own drivers are registered the same way, in its pyproject.toml:

    [project.entry-points."peirce.instruments"]
    mettler-sics = "instruments.drivers.mettler_sics:MettlerSicsBalance"
"""

from __future__ import annotations

from importlib.metadata import entry_points

from instruments.contract import Driver
from instruments.errors import InvalidAction

GROUP = "peirce.instruments"


def driver_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def load_driver(name: str) -> type[Driver]:
    """The driver class registered under `name`; InvalidAction naming the installed ones if there is none."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        installed = ", ".join(driver_names()) or "none"
        raise InvalidAction(f"no instrument driver '{name}' is installed (installed: {installed})")
    try:
        cls = found[0].load()
    except Exception as exc:  # a broken plug-in must be named, not crash the command that lists drivers
        raise InvalidAction(
            f"driver '{name}' ({found[0].value}) cannot be loaded: {type(exc).__name__}: {exc}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise InvalidAction(f"entry point '{name}' ({found[0].value}) is not an instruments.contract.Driver")
    return cls


def all_drivers() -> dict[str, type[Driver]]:
    return {name: load_driver(name) for name in driver_names()}
