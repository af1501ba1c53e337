"""Campaign files for the station tests: the example reaction station on twins, with knobs for the tests."""

from __future__ import annotations

from pathlib import Path

from orchestrator.campaign.spec import CampaignSpec, parse_spec
from tests.conftest import EXAMPLES

EXAMPLE = EXAMPLES / "reaction_station.yaml"


def station_yaml(
    *,
    name: str = "station_test",
    experiments: int = 6,
    batch_size: int = 3,
    time_scale: float = 6000,
    fault_rate: float = 0.0,
    transport: str = "pty",
    max_retries: int = 2,
    planner: str = "random",
    seed: int = 0,
) -> str:
    """The example station with a faster clock, a random planner and a smaller budget (same protocol and limits)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("name: reaction_station", f"name: {name}")
    text = text.replace(
        "budget: {experiments: 12, batch_size: 3, max_retries: 2}",
        f"budget: {{experiments: {experiments}, batch_size: {batch_size}, max_retries: {max_retries}}}",
    )
    text = text.replace("planner: {kind: bayesian, seed: 0}", f"planner: {{kind: {planner}, seed: {seed}}}")
    text = text.replace(
        "twins: {time_scale: 600, seed: 0}",
        f"twins: {{time_scale: {time_scale}, seed: {seed}, transport: {transport}, faults: {{rate: {fault_rate}}}}}",
    )
    return text


def station_spec(**knobs: object) -> CampaignSpec:
    return parse_spec(station_yaml(**knobs), base_dir=Path(EXAMPLE).parent)  # type: ignore[arg-type]
