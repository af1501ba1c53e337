"""Planner settings as they appear in a campaign file, and the factory that builds a planner from them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from planners.base import Planner
from planners.baselines import RandomPlanner, SobolPlanner
from planners.bayesian import BayesianPlanner, BayesianSettings


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = Field(default=0, ge=0, description="Base seed; each cycle's planning seed is derived from it.")


class RandomSettings(_Settings):
    kind: Literal["random"]


class SobolSettings(_Settings):
    kind: Literal["sobol"]
    scramble: bool = True


PlannerSettings = Annotated[RandomSettings | SobolSettings | BayesianSettings, Field(discriminator="kind")]


def build_planner(settings: RandomSettings | SobolSettings | BayesianSettings) -> Planner:
    if isinstance(settings, RandomSettings):
        return RandomPlanner(seed=settings.seed)
    if isinstance(settings, SobolSettings):
        return SobolPlanner(seed=settings.seed, scramble=settings.scramble)
    if isinstance(settings, BayesianSettings):
        return BayesianPlanner(settings)
    raise TypeError(f"no planner for settings {settings!r}")  # unreachable: the union is closed
