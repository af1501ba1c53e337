"""The `hypotheses:` block of a campaign file. Plain pydantic, imports nothing heavy (reading a spec loads no torch).

Defaults were chosen so that a settled hypothesis is usually right (see `benchmarks/RESULTS.md`, hypothesis
precision): a claim is `supported` once its credence stays at or above 0.95 (`refuted`: at or below 0.05) for two
consecutive cycles, and only once results bearing on it have come back, so a claim is never settled on the
model's prior alone, nor on one cycle's jump.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMSettings(_Strict):
    """Any OpenAI-compatible chat-completions endpoint: a hosted API, vLLM, Ollama, a llama.cpp server."""

    base_url: str = Field(
        pattern=r"^https?://", description="Endpoint root, e.g. https://api.openai.com/v1 or http://localhost:11434/v1."
    )
    model: str = Field(min_length=1, description="Model name as the endpoint knows it.")
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable that holds the key (the key itself is never stored); "
        "null for endpoints without one.",
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Seconds to wait for one answer.")
    max_retries: int = Field(default=3, ge=0, le=10, description="Retries after a timeout, 429 or 5xx answer.")
    backoff_s: float = Field(default=2.0, ge=0, description="First wait before a retry; doubled each time.")
    temperature: float = Field(default=0.2, ge=0, le=2)
    max_tokens: int = Field(default=2000, ge=64, description="Longest answer requested.")
    response_format: Literal["json_object", "json_schema", "none"] = Field(
        default="json_object",
        description="How JSON is requested: json_object (most servers), json_schema (strict servers), none.",
    )


class HypothesisSettings(_Strict):
    """Where hypotheses come from and when a claim counts as settled."""

    source: Literal["none", "model", "llm"] = Field(
        default="none", description="model: from the fitted surrogate (offline); llm: from `llm:`; none: off."
    )
    llm: LLMSettings | None = None
    fallback: Literal["model", "none"] = Field(
        default="model", description="When the LLM cannot be reached or answers nothing usable this cycle."
    )
    notes: list[Path] = Field(
        default_factory=list,
        description="Literature notes (text files): the claims of their front matter enter the ledger as open "
        "hypotheses when the campaign is created; an LLM also reads their text with the data.",
    )
    knowledge: list[Path] = Field(
        default_factory=list, description="Knowledge files exported from earlier campaigns; imported as open claims."
    )
    test_share: float = Field(
        default=0.4, ge=0, le=1, description="Share of each batch chosen to test open hypotheses; the rest optimises."
    )
    max_open: int = Field(default=6, ge=1, description="Open hypotheses at most; abduction pauses at this number.")
    max_new_per_cycle: int = Field(default=2, ge=1, description="New hypotheses accepted per cycle at most.")
    support_threshold: float = Field(default=0.95, gt=0.5, lt=1, description="Credence at or above: supported.")
    refute_threshold: float = Field(default=0.05, gt=0, lt=0.5, description="Credence at or below: refuted.")
    min_evidence: int = Field(
        default=2, ge=0, description="Completed experiments that tested a claim before it can be settled."
    )
    confirm_cycles: int = Field(
        default=2, ge=1, description="Consecutive cycles the credence must stay past a threshold to settle a claim."
    )
    contradiction_threshold: float = Field(
        default=0.02, ge=0, lt=0.5, description="A new claim the data gives at most this credence is rejected."
    )
    posterior_samples: int = Field(default=512, ge=64, le=8192, description="Joint posterior samples per credence.")
    min_observations: int = Field(default=5, ge=2, description="Results needed before hypotheses are abduced.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `hypotheses: none` / `hypotheses: model` are accepted as shorthand for the source alone.
        if data is None:
            return {}
        if isinstance(data, str):
            return {"source": data}
        return data

    @model_validator(mode="after")
    def _llm_needs_endpoint(self) -> HypothesisSettings:
        if self.source == "llm" and self.llm is None:
            raise ValueError("source 'llm' needs an `llm:` block (base_url, model, api_key_env)")
        return self

    @property
    def enabled(self) -> bool:
        return self.source != "none"
