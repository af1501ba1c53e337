"""The database schema: every campaign's state lives here, and nowhere else.

Tables (one class each): Campaign, Cycle, Experiment, Measurement, Hypothesis, HypothesisCredence, HypothesisTest,
Decision, Event, Artifact, Dispatch, PersonRequest.
`Event` is append-only (enforced in the database by triggers created in the first migration) and records every
state change; the other tables hold the current state that the events explain.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JsonData = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JsonData, list[Any]: JsonData, datetime: DateTime(timezone=True)}


class CampaignStatus:
    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"  # a person asked it to stop; the runner stops at the next safe point
    STOPPED = "stopped"
    # Its runner has gone, leaving work with people: experiments waiting for approval or for results entered by
    # hand. No process holds it; `peirce resume` (or a flow) continues once the people have answered.
    WAITING = "waiting"
    COMPLETED = "completed"  # budget spent or a stop criterion met
    FAILED = "failed"


class ExperimentState:
    PLANNED = "planned"
    APPROVED = "approved"
    REJECTED = "rejected"  # a person said no: never sent to the lab, never fed to the model, not proposed again
    DISPATCHED = "dispatched"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABANDONED = "abandoned"
    INFEASIBLE = "infeasible"

    IN_DOUBT = frozenset({DISPATCHED, RUNNING})
    # States whose experiment has used the lab and so counts against the budget.
    SPENT = frozenset({COMPLETED, FAILED, INFEASIBLE})

    ALLOWED: ClassVar[dict[str, frozenset[str]]] = {
        PLANNED: frozenset({APPROVED, REJECTED, ABANDONED}),
        APPROVED: frozenset({DISPATCHED, ABANDONED}),
        DISPATCHED: frozenset({RUNNING, COMPLETED, FAILED, INFEASIBLE, ABANDONED}),
        RUNNING: frozenset({COMPLETED, FAILED, INFEASIBLE, ABANDONED}),
        FAILED: frozenset({DISPATCHED, ABANDONED}),  # a retry goes out again under the same idempotency key
        COMPLETED: frozenset(),
        REJECTED: frozenset(),
        ABANDONED: frozenset(),
        INFEASIBLE: frozenset(),
    }


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    goal: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.CREATED)
    spec: Mapped[dict[str, Any]]
    spec_text: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64))
    stop_reason: Mapped[str | None] = mapped_column(Text)
    # Which process runs the campaign now ("host:pid") and when it last said so; a second runner is refused.
    runner: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None]
    active_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    cycles: Mapped[list[Cycle]] = relationship(back_populates="campaign", order_by="Cycle.index")
    experiments: Mapped[list[Experiment]] = relationship(back_populates="campaign", order_by="Experiment.seq")


class Cycle(Base):
    __tablename__ = "cycles"
    __table_args__ = (UniqueConstraint("campaign_id", "index", name="uq_cycle_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    index: Mapped[int] = mapped_column(Integer)
    # abducing -> deducing -> running -> inducing -> done
    stage: Mapped[str] = mapped_column(String(16), default="abducing")
    best: Mapped[dict[str, Any] | None]  # objective -> {value, experiment}: best so far after this cycle
    improved: Mapped[bool | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    campaign: Mapped[Campaign] = relationship(back_populates="cycles")
    experiments: Mapped[list[Experiment]] = relationship(back_populates="cycle", order_by="Experiment.seq")


class Decision(Base):
    """One planning act: what was proposed, by which planner and configuration, from which data."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id"))
    stage: Mapped[str] = mapped_column(String(16))  # abduce | deduce
    planner: Mapped[str] = mapped_column(String(64))
    planner_config: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(Integer)
    data_hash: Mapped[str] = mapped_column(String(64))
    observation_ids: Mapped[list[Any]]  # experiment ids of the observations the planner saw, in order
    pending_ids: Mapped[list[Any]]  # experiment ids still pending when it planned
    proposals: Mapped[list[Any]]  # [{parameters, predicted: {objective: {mean, std}}, rationale}]
    versions: Mapped[dict[str, Any]]  # library versions and device
    # The planner's fitted state (hyper-parameters, encoding, acquisition, timings); the next cycle warm-starts from it.
    model_state: Mapped[dict[str, Any] | None]
    warnings: Mapped[list[Any] | None]  # what a person should know about this decision, in plain words
    # Abduction by an LLM: the exact prompt, the answer, token counts, attempts and timings (never the key).
    exchange: Mapped[dict[str, Any] | None]
    # Content hashes of the artifacts this record points to ({"model_state": sha256}); see store/artifacts.py.
    artifacts: Mapped[dict[str, Any] | None]
    wall_time_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    """The bytes of a content-addressed artifact (a decision's fitted model state), named by their SHA-256.

    In the database rather than in a folder, so every host and working folder that reaches the database finds them.
    Written once and never changed: the same content has the same name (see store/artifacts.py).
    """

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        UniqueConstraint("campaign_id", "seq", name="uq_experiment_seq"),
        Index("ix_experiments_campaign_state", "campaign_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id"))
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ... across the campaign
    # Sent with the experiment to the lab, so a lab (or a retry) can recognise the same experiment.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    parameters: Mapped[dict[str, Any]]
    # What the planner proposed, kept when a person edited the parameters before the experiment ran (None: unedited).
    original_parameters: Mapped[dict[str, Any] | None]
    predicted: Mapped[dict[str, Any] | None]  # objective -> {mean, std}, as the planner predicted
    state: Mapped[str] = mapped_column(String(16), default=ExperimentState.PLANNED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    campaign: Mapped[Campaign] = relationship(back_populates="experiments")
    cycle: Mapped[Cycle] = relationship(back_populates="experiments")
    measurements: Mapped[list[Measurement]] = relationship(back_populates="experiment", order_by="Measurement.id")


class Measurement(Base):
    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32), default="")
    attempt: Mapped[int] = mapped_column(Integer)
    # What the planner predicted for this value when it proposed the experiment: calibration is read from here.
    predicted_mean: Mapped[float | None] = mapped_column(Float)
    predicted_std: Mapped[float | None] = mapped_column(Float)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    experiment: Mapped[Experiment] = relationship(back_populates="measurements")


class HypothesisStatus:
    OPEN = "open"
    SUPPORTED = "supported"
    REFUTED = "refuted"
    RETIRED = "retired"  # withdrawn by a person; kept, never deleted
    REJECTED = "rejected"  # refused by the guards when proposed; kept with the reason


class Hypothesis(Base):
    __tablename__ = "hypotheses"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("cycles.id"))
    kind: Mapped[str] = mapped_column(String(32))  # effect | contrast | region | attainability
    statement: Mapped[str] = mapped_column(Text)
    claim: Mapped[dict[str, Any]]  # the typed fields the statement is generated from
    source: Mapped[str] = mapped_column(String(16))  # llm | model | person
    rationale: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # see HypothesisStatus
    credence: Mapped[float | None] = mapped_column(Float)
    # The abduction decision that proposed it (none for a person's or an imported hypothesis).
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    reason: Mapped[str | None] = mapped_column(Text)  # why it was rejected, settled or retired
    evidence: Mapped[int] = mapped_column(Integer, default=0)  # completed experiments that bore on it
    predicted: Mapped[dict[str, Any] | None]  # its outcome under the latest model: {quantity, mean, std, credence}
    origin: Mapped[dict[str, Any] | None]  # imported knowledge: the campaign, status and credence it came with
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HypothesisCredence(Base):
    """A hypothesis's credence after one cycle's induction: its history, for plots and for review."""

    __tablename__ = "hypothesis_credences"
    __table_args__ = (Index("ix_hypothesis_credences_hypothesis", "hypothesis_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hypothesis_id: Mapped[int] = mapped_column(ForeignKey("hypotheses.id"))
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id"))
    credence: Mapped[float] = mapped_column(Float)
    evidence: Mapped[int] = mapped_column(Integer)
    observations: Mapped[int] = mapped_column(Integer)  # results the model was fitted on
    predicted: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HypothesisTest(Base):
    """An experiment that bears on a hypothesis: chosen to test it, or planned for another reason but informative."""

    __tablename__ = "hypothesis_tests"
    __table_args__ = (
        UniqueConstraint("hypothesis_id", "experiment_id", name="uq_hypothesis_test"),
        Index("ix_hypothesis_tests_experiment", "experiment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    hypothesis_id: Mapped[int] = mapped_column(ForeignKey("hypotheses.id"))
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"))
    chosen: Mapped[bool] = mapped_column(Boolean)  # true: this experiment was planned to test the hypothesis
    information_bits: Mapped[float] = mapped_column(Float)  # expected reduction of the claim's entropy
    # What the hypothesis predicted for this experiment: the objective's mean and std there, and the claim's
    # credence when it was planned.
    predicted: Mapped[dict[str, Any]]


class Event(Base):
    """Append-only log of every state change, in the order it was written."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_campaign", "campaign_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    entity: Mapped[str] = mapped_column(String(16))  # campaign | cycle | experiment | decision | hypothesis
    entity_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # e.g. state, created, measured, stop-requested
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[dict[str, Any] | None]


class Dispatch(Base):
    """One attempt at an experiment sent to the lab, written in the transaction that moves it to `dispatched`.

    The unique pair (experiment, attempt) is the schema's own guard against a second runner: even if two processes
    held the lease at once, the second dispatch of the same attempt fails in the database before the lab hears it.
    """

    __tablename__ = "dispatches"
    __table_args__ = (UniqueConstraint("experiment_id", "attempt", name="uq_dispatch_attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    runner: Mapped[str | None] = mapped_column(String(128))  # the process that sent it ("host:pid")
    dispatched_at: Mapped[datetime] = mapped_column(default=utcnow)


class RequestKind:
    APPROVAL = "approval"  # a planned experiment waits for a person to approve, edit or reject it
    RESULT = "result"  # an experiment handed to a person (a manual lab) waits for its results
    STEP = "step"  # one manual step of a station protocol waits for its entry


class PersonRequest(Base):
    """Something the campaign waits for a person to do: approve an experiment, enter its results, do a step.

    Opened in the transaction that puts the experiment in front of people; answered once, by a named person, with a
    conditional update (`resolved_at IS NULL`), so two people answering at once cannot both win. What the answer did
    is in the events; this row says what waits, why (the rules that caught it, the instructions) and who answered.
    """

    __tablename__ = "person_requests"
    __table_args__ = (Index("ix_person_requests_open", "campaign_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"))
    kind: Mapped[str] = mapped_column(String(16))  # see RequestKind
    # Why a person is asked: the rules that caught the proposal, the instructions of the work, the step's outcome.
    detail: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution: Mapped[str | None] = mapped_column(String(16))  # approved | rejected | entered | not-run | withdrawn
    note: Mapped[str | None] = mapped_column(Text)
