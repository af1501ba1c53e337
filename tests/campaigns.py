"""Small campaign specs for tests, built in code so each test states what it varies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.campaign.spec import CampaignSpec, parse_spec


def hartmann_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "h6",
        "goal": "test",
        "space": [{"name": f"x{i}", "type": "continuous", "bounds": [0, 1]} for i in range(1, 7)],
        "objectives": [{"name": "y", "direction": "minimize"}],
        "budget": {"experiments": 12, "batch_size": 4},
        "planner": {"kind": "random", "seed": 3},
        "lab": {"simulator": "hartmann6", "noise_std": 0.01, "seed": 1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def to_spec(data: dict[str, Any], base_dir: Path = Path(".")) -> tuple[CampaignSpec, str]:
    text = yaml.safe_dump(data, sort_keys=False)
    return parse_spec(text, base_dir=base_dir), text


def write_spec(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
