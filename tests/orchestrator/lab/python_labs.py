"""Python functions that serve as labs in the tests (`lab: {python: "tests.orchestrator.lab.python_labs:measure"}`)
and as the "measurement" a scientist makes between `ask` and `tell`: known functions, so a test checks exactly what
was recorded."""

from __future__ import annotations

from typing import Any

CALLS: list[dict[str, Any]] = []


def bowl(x1: float, x2: float) -> float:
    """A smooth bowl with its minimum 0 at (0.3, 0.7)."""
    return (x1 - 0.3) ** 2 + (x2 - 0.7) ** 2


def measure(parameters: dict[str, Any]) -> dict[str, float]:
    """The bowl as a lab: {parameter: value} in, {outcome: value} out; every call is kept in CALLS."""
    CALLS.append(dict(parameters))
    return {"y": bowl(parameters["x1"], parameters["x2"])}


def broken(parameters: dict[str, Any]) -> dict[str, float]:
    """A lab whose instrument is always off line."""
    raise ConnectionError(f"the furnace did not answer at x1={parameters['x1']:.3f}")


def wrong_answer(parameters: dict[str, Any]) -> dict[str, float]:
    return {"y": float("nan")}


NOT_A_FUNCTION = 42


def scaled(parameters: dict[str, Any], *, scale: float = 1.0, key: str = "", journal: Any = None) -> dict[str, float]:
    """The bowl times `scale` (a lab option); takes the experiment's key and journal, and uses both."""
    CALLS.append({"parameters": dict(parameters), "scale": scale, "key": key})
    if journal is not None:
        journal("action-done", {"instrument": "bowl", "action": "measure", "key": key})
    return {"y": scale * bowl(parameters["x1"], parameters["x2"])}


def anything(parameters: dict[str, Any], **given: Any) -> dict[str, float]:
    """A lab that takes any keyword argument (`**given`): every option, the key and the journal are passed."""
    CALLS.append({"parameters": dict(parameters), "given": sorted(given)})
    return {"y": bowl(parameters["x1"], parameters["x2"])}


def fails_first(parameters: dict[str, Any], *, attempt: int = 1) -> dict[str, float]:
    """A lab whose first attempt at each experiment fails and whose retry succeeds: it knows which attempt it is
    only from the `attempt` the platform passes (the key is the same for both)."""
    if attempt == 1:
        raise ConnectionError("the furnace did not answer on the first attempt")
    return {"y": bowl(parameters["x1"], parameters["x2"])}


def make(parameters: dict[str, Any], *, smiles: dict[str, str]) -> Any:
    """A synthesis lab for a molecule parameter `m`: a molecule with a nitrogen cannot be made (infeasible, with the
    reason), any other gives `y`, the number of letters of its SMILES; every SMILES it was given is kept in CALLS."""
    from simulators.base import SimulationResult

    CALLS.append({"parameters": dict(parameters), "smiles": dict(smiles)})
    made = smiles["m"]
    if "N" in made.upper().replace("NA", ""):
        return SimulationResult(infeasible=True, reason=f"no product from {parameters['m']}")
    return SimulationResult(values={"y": float(sum(c.isalpha() for c in made))})


def chatty(parameters: dict[str, Any], *, journal: Any) -> dict[str, float]:
    """A lab that journals an action with a key no action has (`molecule`, where `args` belongs)."""
    journal("action-done", {"instrument": "bowl", "action": "measure", "molecule": "x"})
    return {"y": bowl(parameters["x1"], parameters["x2"])}
