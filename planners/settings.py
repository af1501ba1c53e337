"""Planner settings as they appear in a campaign file: plain pydantic models that import nothing heavy, so reading
or checking a campaign file never loads torch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# The Gaussian process's length-scale priors (`planners.bo.surrogate.make_kernel` builds each).
LengthScalePrior = Literal["dimension-scaled", "gamma", "split"]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = Field(default=0, ge=0, description="Base seed; each cycle's planning seed is derived from it.")


class RandomSettings(_Settings):
    kind: Literal["random"]


class SobolSettings(_Settings):
    kind: Literal["sobol"]
    scramble: bool = True


class BayesianSettings(BaseModel):
    """The `planner:` block of a campaign with `kind: bayesian`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["bayesian"]
    seed: int = Field(default=0, ge=0, description="Base seed; each cycle's planning seed is derived from it.")
    molecule_encoding: Literal["descriptors", "fingerprints", "onehot"] = Field(
        default="descriptors", description="How molecules become model features (see docs/planner.md)."
    )
    min_observations: int = Field(
        default=2, ge=1, description="Results needed before the model plans; before that, a space-filling design."
    )
    mc_samples: int = Field(default=128, ge=16, le=4096, description="Quasi-Monte Carlo samples of the acquisition.")
    num_restarts: int = Field(default=8, ge=1, description="Starting points of the acquisition's local optimiser.")
    raw_samples: int = Field(default=256, ge=16, description="Quasi-random samples the starting points are drawn from.")
    # Measured (benchmarks/RESULTS.md): a cold exact fit costs 7 s at 300 results and two minutes at 1,000 on two
    # shared cores, growing as n^3; a fit on 300 of 1,000 takes about 3 s and the proposals lose no regret.
    max_fit_points: int = Field(
        default=300,
        ge=50,
        description="Past this many results, hyper-parameters are fitted on a subset (inference still uses all).",
    )
    length_scale_prior: LengthScalePrior = Field(
        default="dimension-scaled",
        description="Prior of the kernel's length-scales: BoTorch's, scaled with the dimension; the Gamma(3, 6) "
        "of EDBO and BayBE; or split: Gamma for numeric parameters, BoTorch's for the levels' descriptor or one-hot "
        "columns (see docs/planner.md).",
    )
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto: CUDA when present.")


PlannerSettings = Annotated[RandomSettings | SobolSettings | BayesianSettings, Field(discriminator="kind")]
