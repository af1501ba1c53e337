"""Points of a space as tensors: the search representation the optimiser moves in, and the model's features.

Search representation, one column per parameter (in the space's declared order):
    continuous            u = (x - lower) / (upper - lower), any value in [0, 1]
    integer, discrete     the same scaling, restricted to the scaled allowed values (a "discrete dim")
    categorical, molecule the level's index 0 .. k-1 (a "categorical dim")

Model features, made from the search representation by `FeatureMap` (a BoTorch input transform, so the model is
fitted and evaluated on features while every optimiser works in the compact search representation):
    numeric parameters    u itself
    categorical           one-hot over the levels
    molecule              per `molecule_encoding`: PCA of RDKit descriptors, Morgan count fingerprints (compared by
                          a Tanimoto kernel), or one-hot
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from botorch.models.transforms.input import InputTransform
from torch import Tensor

from planners.molecules import descriptor_features, fingerprint_features
from planners.space import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    LinearConstraint,
    MoleculeParameter,
    Point,
    Space,
)

MoleculeEncoding = Literal["descriptors", "fingerprints", "onehot"]


@dataclass
class FeatureLayout:
    """Which feature columns each kernel part reads: one stationary kernel over `continuous_dims`, and one Tanimoto
    kernel per fingerprint block (start, stop). `numeric_dims` are the continuous columns that are the space's own
    numeric parameters (the rest of `continuous_dims` are one-hot or descriptor columns of its levels)."""

    continuous_dims: list[int] = field(default_factory=list)
    numeric_dims: list[int] = field(default_factory=list)
    tanimoto_blocks: list[tuple[int, int]] = field(default_factory=list)
    width: int = 0


class FeatureMap(InputTransform, torch.nn.Module):
    """Search representation (`... x d`) -> model features (`... x F`): numeric columns pass, level indices become
    rows of a per-parameter table (one-hot, descriptors or fingerprints)."""

    def __init__(self, numeric_dims: Sequence[int], tables: Sequence[tuple[int, Tensor]]) -> None:
        super().__init__()
        self.transform_on_train = True
        self.transform_on_eval = True
        self.transform_on_fantasize = True
        self.numeric_dims = list(numeric_dims)
        self.table_dims = [dim for dim, _ in tables]
        for i, (_, table) in enumerate(tables):
            self.register_buffer(f"table_{i}", table)

    def transform(self, X: Tensor) -> Tensor:
        parts = [X[..., self.numeric_dims]] if self.numeric_dims else []
        for i, dim in enumerate(self.table_dims):
            table = getattr(self, f"table_{i}")
            index = X[..., dim].round().long().clamp(0, table.shape[0] - 1)
            parts.append(table[index])
        return torch.cat(parts, dim=-1)


class SpaceEncoding:
    """Encodes and decodes points of one space on one device."""

    def __init__(
        self,
        space: Space,
        molecule_encoding: MoleculeEncoding = "descriptors",
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.space = space
        self.device = device or torch.device("cpu")
        self.dtype = dtype
        self.molecule_encoding = molecule_encoding
        self.parameters = list(space.parameters)
        self.discrete_dims: dict[int, list[float]] = {}
        self.cat_dims: dict[int, list[float]] = {}
        self.continuous_dims: list[int] = []
        self._scales: dict[int, tuple[float, float]] = {}
        self._levels: dict[int, dict[str, float]] = {}
        numeric_dims: list[int] = []
        tables: list[tuple[int, Tensor]] = []
        layout = FeatureLayout()
        for i, p in enumerate(self.parameters):
            if isinstance(p, CategoricalParameter | MoleculeParameter):
                self.cat_dims[i] = [float(k) for k in range(len(p.values))]
                # A dict, not `values.index`: encoding a library of thousands of molecules is then linear, not
                # quadratic, in its size.
                self._levels[i] = {value: float(k) for k, value in enumerate(p.values)}
                continue
            numeric_dims.append(i)
            if isinstance(p, ContinuousParameter):
                self._scales[i] = (float(p.bounds[0]), float(p.bounds[1]))
                self.continuous_dims.append(i)
            else:
                values = [float(v) for v in p.values]
                self._scales[i] = (min(values), max(values))
                self.discrete_dims[i] = sorted(self._scale(i, v) for v in values)
        layout.continuous_dims.extend(range(len(numeric_dims)))
        layout.numeric_dims.extend(range(len(numeric_dims)))
        width = len(numeric_dims)
        for i, p in enumerate(self.parameters):
            if i not in self.cat_dims:
                continue
            table, tanimoto = self._table(p)
            tables.append((i, torch.as_tensor(table, dtype=dtype, device=self.device)))
            if tanimoto:
                layout.tanimoto_blocks.append((width, width + table.shape[1]))
            else:
                layout.continuous_dims.extend(range(width, width + table.shape[1]))
            width += table.shape[1]
        layout.width = width
        self.layout = layout
        self.feature_map = FeatureMap(numeric_dims, tables).to(device=self.device, dtype=dtype)

    # --- points <-> search representation ------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return len(self.parameters)

    @property
    def bounds(self) -> Tensor:
        """`2 x d`: [0, 1] for numeric columns, [0, k-1] for level indices."""
        upper = [float(len(self.cat_dims[i]) - 1) if i in self.cat_dims else 1.0 for i in range(self.dim)]
        return torch.tensor([[0.0] * self.dim, upper], dtype=self.dtype, device=self.device)

    def encode(self, points: Sequence[Mapping[str, Any]]) -> Tensor:
        """`n x d` search representation of `points`."""
        rows = [[self._encode_value(i, p, point[p.name]) for i, p in enumerate(self.parameters)] for point in points]
        return torch.tensor(rows, dtype=self.dtype, device=self.device).reshape(len(rows), self.dim)

    def decode(self, X: Tensor) -> list[Point]:
        """Points for the rows of `X` (`n x d`), snapped to the nearest allowed value of each parameter."""
        host = X.detach().to("cpu", torch.float64).numpy()
        points = [{p.name: self._decode_value(i, p, row[i]) for i, p in enumerate(self.parameters)} for row in host]
        # The optimiser meets a mixture's equality to about 1e-6; an experiment's fractions sum to the total.
        return [self.space.snap(point) for point in points] if self.space.mixtures else points

    def _scale(self, i: int, value: float) -> float:
        low, high = self._scales[i]
        return (float(value) - low) / (high - low)

    def _encode_value(self, i: int, p: Any, value: Any) -> float:
        if i in self.cat_dims:
            if value not in self._levels[i]:
                raise ValueError(f"{value!r} is not a level of '{p.name}'")  # as `values.index` said
            return self._levels[i][value]
        return self._scale(i, value)

    def _decode_value(self, i: int, p: Any, u: float) -> Any:
        if i in self.cat_dims:
            return p.values[int(np.clip(round(u), 0, len(p.values) - 1))]
        low, high = self._scales[i]
        if isinstance(p, ContinuousParameter):
            return float(np.clip(low + u * (high - low), low, high))
        allowed = p.values
        nearest = min(allowed, key=lambda v: abs(self._scale(i, v) - u))
        return int(nearest) if isinstance(p, IntegerParameter) else float(nearest)

    # --- constraints and mixtures --------------------------------------------------------------------------

    def inequality_constraints(self) -> list[tuple[Tensor, Tensor, float]]:
        """The space's linear constraints in BoTorch's form `sum(coefficients * X[indices]) >= rhs`, in the search
        representation (x = low + (high - low) * u)."""
        return [self._constraint(c) for c in self.space.constraints]

    def equality_constraints(self) -> list[tuple[Tensor, Tensor, float]]:
        """Each mixture in BoTorch's form `sum(coefficients * X[indices]) = rhs`, in the search representation:
        sum(low_i + (high_i - low_i) u_i) = total."""
        equalities = []
        for mixture in self.space.mixtures:
            indices = [self.space.names.index(name) for name in mixture.parameters]
            spans = [self._scales[i][1] - self._scales[i][0] for i in indices]
            offset = sum(self._scales[i][0] for i in indices)
            equalities.append(
                (
                    torch.tensor(indices, dtype=torch.long, device=self.device),
                    torch.tensor(spans, dtype=self.dtype, device=self.device),
                    mixture.total - offset,
                )
            )
        return equalities

    def _constraint(self, constraint: LinearConstraint) -> tuple[Tensor, Tensor, float]:
        sign = 1.0 if constraint.operator == ">=" else -1.0
        indices, coefficients, offset = [], [], 0.0
        for name, c in constraint.coefficients.items():
            i = self.space.names.index(name)
            low, high = self._scales[i]
            indices.append(i)
            coefficients.append(sign * c * (high - low))
            offset += c * low
        return (
            torch.tensor(indices, dtype=torch.long, device=self.device),
            torch.tensor(coefficients, dtype=self.dtype, device=self.device),
            sign * (constraint.rhs - offset),
        )

    # --- feature tables ----------------------------------------------------------------------------------

    def _table(self, p: Any) -> tuple[np.ndarray, bool]:
        """Feature rows for a categorical or molecule parameter, and whether a Tanimoto kernel should compare them."""
        if isinstance(p, MoleculeParameter) and self.molecule_encoding != "onehot":
            named = list(p.smiles.items())
            if self.molecule_encoding == "fingerprints":
                return fingerprint_features(named), True
            return descriptor_features(named), False
        return np.eye(len(p.values)), False

    def describe(self) -> dict[str, Any]:
        """The encoding as recorded with a decision."""
        return {
            "molecule_encoding": self.molecule_encoding,
            "feature_width": self.layout.width,
            "continuous_features": len(self.layout.continuous_dims),
            "tanimoto_blocks": [list(b) for b in self.layout.tanimoto_blocks],
        }
