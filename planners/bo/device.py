"""Torch device and dtype, chosen once per process: CUDA when present (or asked for), else CPU; always float64.

float64 because GP hyper-parameter fitting and Cholesky factorisations of kernel matrices lose accuracy (and then
jitter, and then reproducibility) in float32. Every tensor the planner makes is created on this device directly,
so there are no silent host-device copies; results come back to the host once, explicitly, at the end.
"""

from __future__ import annotations

import os
from functools import cache

import torch

DTYPE = torch.float64
DEVICE_ENV = "PEIRCE_DEVICE"


@cache
def default_device() -> torch.device:
    """`$PEIRCE_DEVICE` (cpu, cuda, cuda:1, ...) when set, else CUDA when available, else CPU."""
    wanted = os.environ.get(DEVICE_ENV, "").strip()
    if wanted:
        device = torch.device(wanted)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"${DEVICE_ENV}={wanted} but torch sees no CUDA device")
        return device
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_device(setting: str) -> torch.device:
    """The device for a planner's `device` setting: 'auto' defers to `default_device()`."""
    if setting == "auto":
        return default_device()
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"planner.device is '{setting}' but torch sees no CUDA device")
    return device


def describe(device: torch.device) -> str:
    """A device's name for the decision record, e.g. 'cpu' or 'cuda:0 (NVIDIA H100 80GB HBM3)'."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return "cpu"
