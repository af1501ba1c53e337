"""A surrogate of iPSC-to-RPE differentiation on a robot, after the LabDroid Maholo campaign of Kanda et al.
("Robotic search for optimal cell culture in regenerative medicine", eLife 11:e77007, 2022).

It is not the real biology. It stands in for it with a smooth response whose shape and numbers are chosen from
what that paper reports: a culture of about forty days, read out as a pigmentation score from plate images, and an
optimum about 88% better than the pre-optimised protocol. Five factors count:
- `sb431542_um`, `cki7_um`: the two small molecules of the robotised protocol (Kamao et al. 2014 give 5 µM
  SB431542 and 3 µM CKI-7);
- `inhibitor_days`: how long they are given (18 days in that protocol);
- `ksr_step_day`: the day the serum replacement is first lowered (after 4 days there);
- `seeding_density`: cells seeded, 10^4 per cm².

The score (0 to 1, the pigmented fraction of the well) is a bell around `OPTIMUM`, cut down where the two
inhibitors together turn toxic. On top of it, a shared factor per plate (the batch effect: wells seeded together
share a plate, a medium lot, an incubator shelf) and a small per-well noise. A well is contaminated at a seeded
rate: the culture is lost on the day it is found, and `culture` raises `Contaminated` (the lab's failure, retried
by the campaign's policy in a new well).

`culture` is the robot twin's whole run for one well. It writes each protocol step (seeding, medium changes,
the serum step, the end of induction, imaging) to the `journal` it is given, as the actions of instrument `maholo`
with the day of the culture, and returns `{"pigmentation": score}`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Journal = Callable[[str, dict[str, Any]], None]

ROBOT = "maholo"  # the instrument the twin's protocol steps are journalled under
MATURATION_DAYS = 22  # days of culture after the inhibitors are withdrawn, before imaging
MEDIUM_EVERY_DAYS = 3  # how often the robot changes the medium

# Where the noiseless score peaks, and its value there (the surrogate's known optimum).
OPTIMUM: dict[str, float] = {
    "sb431542_um": 7.5,
    "cki7_um": 4.5,
    "inhibitor_days": 22.0,
    "ksr_step_day": 5.0,
    "seeding_density": 3.0,
}
BEST_SCORE = 0.85
# The protocol the paper started from, robotised (the score it gets here is BASELINE_SCORE, about 0.47).
BASELINE: dict[str, float] = {
    "sb431542_um": 5.0,
    "cki7_um": 3.0,
    "inhibitor_days": 18.0,
    "ksr_step_day": 4.0,
    "seeding_density": 1.5,
}
# Widths of the bell along each factor (seeding density on a log2 scale: doubling matters, not adding).
_WIDTH = {"sb431542_um": 5.0, "cki7_um": 3.0, "inhibitor_days": 8.0, "ksr_step_day": 4.0, "seeding_density": 1.6}
_TOXIC_LOAD = 2.6  # inhibitor load (each in units of its optimum) past which cells die
PLATE_SD = 0.08  # log-normal spread of the plate factor
WELL_SD = 0.02  # per-well noise of the image analysis


class Contaminated(Exception):
    """The well was contaminated and its culture lost: a failure of the lab, not a fact about the conditions."""


def duration_days(parameters: Mapping[str, Any]) -> float:
    """Days from seeding to imaging: the induction, then `MATURATION_DAYS` (the campaign's `lab.duration`)."""
    return float(parameters["inhibitor_days"]) + MATURATION_DAYS


def expected_score(parameters: Mapping[str, Any]) -> float:
    """The noiseless pigmentation score at `parameters` (plate factor 1, no well noise); BEST_SCORE at OPTIMUM."""
    z2 = 0.0
    for name, centre in OPTIMUM.items():
        value = float(parameters[name])
        if name == "seeding_density":
            z2 += (math.log2(value / centre) / _WIDTH[name]) ** 2
        else:
            z2 += ((value - centre) / _WIDTH[name]) ** 2
    score = BEST_SCORE * math.exp(-z2 / 2)
    load = float(parameters["sb431542_um"]) / OPTIMUM["sb431542_um"] + float(parameters["cki7_um"]) / OPTIMUM["cki7_um"]
    if load > _TOXIC_LOAD:
        score *= math.exp(-(((load - _TOXIC_LOAD) / 0.3) ** 2))
    return score


BASELINE_SCORE = expected_score(BASELINE)


def plate_factor(seed: int, plate: str) -> float:
    """The shared factor of every well on `plate` (the batch effect), fixed by the seed."""
    return float(np.exp(_rng(seed, "plate", plate).normal(0.0, PLATE_SD)))


def _rng(seed: int, *parts: object) -> np.random.Generator:
    # A stream per (seed, what it is for): the same well always draws the same numbers, in any process.
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _seq(key: str) -> int:
    """The experiment's number from its key (`campaign:seq`); a key of another form gets a stable number."""
    tail = key.rpartition(":")[2]
    return int(tail) if tail.isdigit() else int(hashlib.sha256(key.encode()).hexdigest()[:6], 16)


def culture(
    parameters: dict[str, Any],
    *,
    key: str = "",
    attempt: int = 1,
    journal: Journal | None = None,
    seed: int = 0,
    contamination_rate: float = 0.05,
    wells_per_plate: int = 6,
) -> dict[str, float]:
    """Run one well's differentiation on the twin and return its pigmentation score.

    The well sits on plate `(seq - 1) // wells_per_plate + 1` (a batch of the campaign fills a plate); a retry goes
    on a plate of its own (`attempt`, counted by the platform: a retry in a resumed process is still a new well).
    Raises `Contaminated` for a contaminated well (seeded by `seed`, the key and the attempt)."""
    if not 0 <= contamination_rate <= 1:
        raise ValueError(f"contamination_rate {contamination_rate} is not within [0, 1]")
    if wells_per_plate < 1:
        raise ValueError(f"wells_per_plate {wells_per_plate} is below 1")
    write: Journal = journal if journal is not None else (lambda kind, detail: None)
    seq = _seq(key)
    plate = f"P{(seq - 1) // wells_per_plate + 1}" + (f"-retry{attempt - 1}" if attempt > 1 else "")
    place = (seq - 1) % wells_per_plate
    well = f"{'ABCDEFGH'[place // 6 % 8]}{place % 6 + 1}"  # rows of six wells, as on a 6- or 24-well plate
    rng = _rng(seed, "well", key, attempt)
    days = duration_days(parameters)
    contaminated_on = float(rng.uniform(1, days)) if rng.random() < contamination_rate else None
    steps = _protocol(parameters, days, plate, well)
    for index, (day, action, args) in enumerate(steps):
        detail = {"step": index, "instrument": ROBOT, "action": action, "args": {"day": round(day, 2), **args}}
        write("action-started", detail)
        if contaminated_on is not None and day >= contaminated_on:
            message = f"well {well} of plate {plate} contaminated (seen on day {day:g} at {action})"
            write("action-failed", {**detail, "error": "contaminated", "message": message})
            raise Contaminated(message)
        result: Any = None
        if action == "image":
            score = float(
                np.clip(expected_score(parameters) * plate_factor(seed, plate) + rng.normal(0, WELL_SD), 0, 1)
            )
            result = {"pigmentation": round(score, 4), "plate": plate, "well": well}
        write("action-done", {**detail, "result": result})
    return {"pigmentation": result["pigmentation"]}


def _protocol(
    parameters: Mapping[str, Any], days: float, plate: str, well: str
) -> list[tuple[float, str, dict[str, Any]]]:
    """The robot's steps for one well, by day: what the journal shows and what a real robot's method would run."""
    induction = float(parameters["inhibitor_days"])
    steps: list[tuple[float, str, dict[str, Any]]] = [
        (0.0, "seed", {"plate": plate, "well": well, "cells_per_cm2": float(parameters["seeding_density"]) * 1e4}),
        (
            1.0,
            "start-induction",
            {"sb431542_um": float(parameters["sb431542_um"]), "cki7_um": float(parameters["cki7_um"])},
        ),
    ]
    events: list[tuple[float, str, dict[str, Any]]] = [
        (float(parameters["ksr_step_day"]), "lower-ksr", {"ksr_percent": 10}),
        (induction, "end-induction", {}),
    ]
    day = 1.0 + MEDIUM_EVERY_DAYS
    while day < days:
        events.append((day, "medium-change", {"with_inhibitors": day < induction}))
        day += MEDIUM_EVERY_DAYS
    steps += sorted(events, key=lambda step: step[0])
    steps.append((days, "image", {}))
    return steps
