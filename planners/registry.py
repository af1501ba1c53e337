"""The factory that builds a planner from its settings (`planners.settings`)."""

from __future__ import annotations

from planners.base import Planner
from planners.baselines import RandomPlanner, SobolPlanner
from planners.settings import BayesianSettings, PlannerSettings, RandomSettings, SobolSettings

__all__ = ["PlannerSettings", "build_planner"]


def build_planner(settings: RandomSettings | SobolSettings | BayesianSettings) -> Planner:
    if isinstance(settings, RandomSettings):
        return RandomPlanner(seed=settings.seed)
    if isinstance(settings, SobolSettings):
        return SobolPlanner(seed=settings.seed, scramble=settings.scramble)
    if isinstance(settings, BayesianSettings):
        # Imported here, not at the top: torch and BoTorch load only when a Bayesian planner is built.
        from planners.bo.planner import BayesianPlanner

        return BayesianPlanner(settings)
    raise TypeError(f"no planner for settings {settings!r}")  # unreachable: the union is closed
