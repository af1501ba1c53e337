"""Acquisition functions are built from PyTorch alone: nothing is compiled on first use, nothing waits on a lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BUILD_A_HYPERVOLUME_ACQUISITION = """
import torch
from botorch.models import SingleTaskGP
from botorch.models.model_list_gp_regression import ModelListGP
from planners.bo.acquisition import build_acquisition

torch.manual_seed(0)
X = torch.rand(6, 2, dtype=torch.float64)
Y = torch.stack([X.sum(-1), -X.prod(-1)], dim=-1)
model = ModelListGP(*(SingleTaskGP(X, Y[:, i : i + 1]) for i in range(2)))
acqf, name = build_acquisition(model, X, 2, [], None, 16, seed=0, Y_baseline=Y)
print(name, acqf(X[:2].unsqueeze(1)).shape)
"""


def test_hypervolume_acquisition_neither_compiles_nor_waits_on_a_left_lock(tmp_path: Path) -> None:
    # A compile killed half-way leaves this lock; BoTorch's JIT loader then waits for it forever.
    left = tmp_path / "extensions" / "logei_fused_ext"
    left.mkdir(parents=True)
    (left / "lock").touch()
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "extensions")}
    done = subprocess.run(
        [sys.executable, "-c", BUILD_A_HYPERVOLUME_ACQUISITION], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "qLogNEHVI"
    assert sorted(os.listdir(left)) == ["lock"]  # no build was started
