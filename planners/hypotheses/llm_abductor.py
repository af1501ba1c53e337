"""Hypotheses from an LLM: ask an OpenAI-compatible endpoint, read claims from its answer.

Nothing the model says can change how the campaign runs. The endpoint, the model, the budget, the thresholds and
the approval rules come from the campaign file and reach this class as `LLMSettings`, which the answer never
touches; `parse_answer` reads only the `hypotheses` list, and only as claims in the claim schema (unknown fields are
refused). So an answer that says `{"settings": {"budget": 10000}, "approval": "none", ...}` - whether the model
made it up or a note injected it - changes nothing: those keys are recorded as rejected for a reviewer to see, and
the claims beside them go through the same guards as claims from any other source.

The abductor never raises when the endpoint fails: it returns an `Abduction` with `error` set and the whole
exchange recorded, and the orchestrator decides what to do instead (the `fallback` setting).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from planners.hypotheses.base import Abduction, AbductionRequest
from planners.hypotheses.llm import chat
from planners.hypotheses.prompt import answer_schema, build_messages, parse_answer
from planners.hypotheses.settings import LLMSettings


class LLMAbductor:
    """Proposes hypotheses by asking the LLM endpoint of `settings`; `sleep` waits between retries."""

    def __init__(self, settings: LLMSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep

    def propose(self, request: AbductionRequest) -> Abduction:
        schema = answer_schema() if self.settings.response_format == "json_schema" else None
        exchange = chat(self.settings, build_messages(request), json_schema=schema, sleep=self._sleep)
        record = exchange.to_record()
        if exchange.error is not None:
            record["parsed"] = None
            return Abduction(exchange=record, error=exchange.error)
        drafts, rejected, problem = parse_answer(exchange.answer, source="llm")
        record["parsed"] = {"drafts": len(drafts), "rejected": len(rejected), "error": problem}
        return Abduction(drafts=drafts, rejected=rejected, exchange=record, error=problem)
