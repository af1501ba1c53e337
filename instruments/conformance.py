"""The conformance kit: the pytest test classes every driver runs, against its device twin and on its parsers.

A driver author subclasses `DriverConformance` in a test module, names the driver, gives example actions, and
provides a `twin` fixture: a running twin (any object with `url`, `faults.script`, `log` and `injected`, such as
`simulators.twins.server.TwinServer` on a real pty or TCP port; a twin that also has `open_link` and `clock`, such
as `simulators.twins.loopback.LoopbackTwin`, is reached in-process through those). The kit then checks the
contract: declared skills, identification, status, every example action, refusal before sending (device range,
safety limits, unknown actions), recovery of idempotent queries from each injected fault, typed errors for the
rest, and that a command which moves matter is never re-sent after a lost answer.

    class TestMyPump(DriverConformance):
        driver_class = MyPumpDriver
        examples = [("set_rate", {"rate_ml_min": 1.0}), ("dispense", {"volume_ml": 0.5, "rate_ml_min": 5.0})]
        query_action = ("status_query", {})       # idempotent: must survive every fault kind
        moving_action = ("dispense", {"volume_ml": 0.5, "rate_ml_min": 5.0})
        never_resent = ("RUN",)                   # wire commands that must reach the device at most once

        @pytest.fixture
        def twin(self):
            with TwinServer(MyPumpTwin(Bench())) as server:
                server.start_pty()
                yield server

`ParserConformance` is the other half: given a driver's answer parsers and examples of valid answers, it checks
(with hypothesis, seeded) that whatever arrives on the line, random text, random bytes, a valid answer cut short or
with noise inserted, a parser either parses it or raises a typed `InstrumentError`, never anything else.

    class TestMyPumpParsers(ParserConformance):
        parsers = (parse_rate, lambda line: parse_reply(line, 0))
        valid_answers = ("5.000MM", "\x0200S")
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instruments.arrays import ArrayData
from instruments.contract import ARGUMENT_TYPES, Driver
from instruments.errors import InstrumentError, InvalidAction, LimitViolation
from instruments.limits import SafetyLimits

# Short timeouts so that a fault costs a fraction of a second in a test (and nothing on a manual clock).
FAST_SETTINGS: dict[str, Any] = {"timeout_s": 0.3, "grace_s": 0.4, "backoff_s": 0.01, "retries": 2}


def link_options(twin: Any) -> dict[str, Any]:
    """How a driver reaches this twin: by its URL through a real port (no options), or in-process through the
    twin's own link opener and on the twin's clock (a loopback twin)."""
    opener = getattr(twin, "open_link", None)
    return {} if opener is None else {"opener": opener, "clock": twin.clock}


class DriverConformance:
    driver_class: ClassVar[type[Driver]]
    examples: ClassVar[Sequence[tuple[str, dict[str, Any]]]] = ()  # run in order on a fresh connection
    query_action: ClassVar[tuple[str, dict[str, Any]]]  # an idempotent action with a reply
    moving_action: ClassVar[tuple[str, dict[str, Any]] | None] = None  # a non-idempotent action
    never_resent: ClassVar[tuple[str, ...]] = ()  # prefixes of wire requests the moving action must send once
    settings: ClassVar[dict[str, Any]] = FAST_SETTINGS
    late_s: ClassVar[float] = 0.5  # how late the twin's late answers come (past the fast timeout)

    @pytest.fixture
    def twin(self) -> Any:  # pragma: no cover - every subclass provides its own
        raise NotImplementedError("a conformance test class provides a `twin` fixture")

    @pytest.fixture
    def driver(self, twin: Any) -> Any:
        twin.faults.late_s = self.late_s
        driver = self.driver_class(twin.url, instrument="dut", settings=self.settings, **link_options(twin))
        driver.connect()
        yield driver
        driver.close()

    # --- declared skills -----------------------------------------------------------------------------------------

    def test_declares_its_skills(self) -> None:
        cls = self.driver_class
        assert cls.name and cls.title and cls.manual, "name, title and manual are declared"
        names = [a.name for a in cls.actions]
        assert len(names) == len(set(names)), "action names are unique"
        for action in cls.actions:
            assert action.description, f"{action.name} has a description"
            assert callable(getattr(cls, f"do_{action.name}", None)), f"do_{action.name} is implemented"
            for argument in action.arguments:
                assert argument.type in ARGUMENT_TYPES
                if argument.type in ("number", "integer"):
                    assert argument.unit or argument.type == "integer", f"{action.name}.{argument.name} has a unit"
        assert any(not a.idempotent for a in cls.actions) == (self.moving_action is not None)

    def test_examples_cover_every_action(self) -> None:
        assert {name for name, _ in self.examples} == {a.name for a in self.driver_class.actions}

    # --- normal operation ----------------------------------------------------------------------------------------

    def test_identifies_itself(self, driver: Driver) -> None:
        assert driver.identity and all(isinstance(v, str) and v for v in driver.identity.values())

    def test_reports_status(self, driver: Driver) -> None:
        status = driver.status()
        assert isinstance(status, dict) and status

    def test_every_action_runs_and_returns_what_it_declares(self, driver: Driver) -> None:
        for name, arguments in self.examples:
            result = driver.execute(name, arguments)
            declared = driver.action(name).returns
            assert set(result) == set(declared), f"{name} returns {sorted(result)}, declares {sorted(declared)}"
            for key, value in result.items():
                if key in driver.action(name).arrays:
                    assert isinstance(value, ArrayData), f"{name}.{key} is declared an array"
                    continue
                assert isinstance(value, int | float | str) and not isinstance(value, bool), f"{name}.{key}"

    # --- refusal before sending ----------------------------------------------------------------------------------

    def test_out_of_range_arguments_are_refused_before_sending(self, driver: Driver, twin: Any) -> None:
        checked = 0
        for action in self.driver_class.actions:
            for argument in action.arguments:
                if argument.maximum is None:
                    continue
                arguments = dict(next((a for n, a in self.examples if n == action.name), {}))
                arguments[argument.name] = argument.maximum * 2 + 1
                sent = len(twin.log)
                with pytest.raises(LimitViolation, match=f"{action.name}.{argument.name}"):
                    driver.execute(action.name, arguments)
                assert len(twin.log) == sent, "nothing reached the device"
                checked += 1
        ranged = any(a.maximum is not None for action in self.driver_class.actions for a in action.arguments)
        assert checked or not ranged

    def test_safety_limits_are_refused_by_name_before_sending(self, twin: Any) -> None:
        for action in self.driver_class.actions:
            numeric = [a for a in action.arguments if a.type == "number"]
            if not numeric:
                continue
            argument = numeric[0]
            arguments = dict(next((a for n, a in self.examples if n == action.name), {}))
            value = float(arguments.get(argument.name, argument.minimum or 1.0))
            limits = SafetyLimits.from_mapping({argument.name: {"max": value - abs(value) * 0.5 - 1e-6}})
            driver = self.driver_class(
                twin.url, instrument="dut", limits=limits, settings=self.settings, **link_options(twin)
            )
            driver.connect()
            try:
                sent = len(twin.log)
                with pytest.raises(LimitViolation, match=rf"dut\.limits\.{argument.name}\.max"):
                    driver.execute(action.name, arguments)
                assert len(twin.log) == sent, "nothing reached the device"
            finally:
                driver.close()

    def test_unknown_actions_and_arguments_are_refused(self, driver: Driver, twin: Any) -> None:
        sent = len(twin.log)
        with pytest.raises(InvalidAction, match="no action"):
            driver.execute("self_destruct", {})
        name, arguments = self.query_action
        with pytest.raises(InvalidAction, match="unknown argument"):
            driver.execute(name, {**arguments, "bogus": 1})
        assert len(twin.log) == sent

    # --- faults --------------------------------------------------------------------------------------------------

    @pytest.mark.parametrize("fault", ["no_answer", "late_answer", "garbled", "disconnect"])
    def test_idempotent_queries_recover_from_a_fault(self, driver: Driver, twin: Any, fault: str) -> None:
        name, arguments = self.query_action
        twin.faults.script[:] = [fault]
        result = driver.execute(name, arguments)
        assert set(result) == set(driver.action(name).returns)
        assert [f.kind for f in twin.injected] == [fault]
        notes = [e.data for e in driver.transport.transcript.entries if e.direction == "note"]
        assert any(n.startswith("retry") for n in notes), "the retry is in the transcript"

    def test_device_errors_are_typed(self, driver: Driver, twin: Any) -> None:
        name, arguments = self.query_action
        twin.faults.script[:] = ["device_error"] * 10
        with pytest.raises(InstrumentError) as caught:
            driver.execute(name, arguments)
        assert caught.value.kind in ("device", "protocol")
        twin.faults.script.clear()
        driver.execute(name, arguments)  # and the driver is usable afterwards

    def test_a_moving_command_is_never_resent_after_a_fault(self, driver: Driver, twin: Any) -> None:
        if self.moving_action is None:
            pytest.skip("this driver has no non-idempotent action")
        name, arguments = self.moving_action
        start = len(twin.log)
        driver.execute(name, arguments)
        clean_requests = len(twin.log) - start
        assert clean_requests > 0
        for kind in ("no_answer", "late_answer", "garbled", "disconnect", "device_error"):
            for position in range(clean_requests):
                driver.abort()
                start = len(twin.log)
                twin.faults.script[:] = [None] * position + [kind]
                try:
                    driver.execute(name, arguments)
                except InstrumentError:
                    pass  # a typed error is an allowed outcome; anything else fails the test
                finally:
                    twin.faults.script.clear()
                sent = twin.log[start:]
                for prefix in self.never_resent:
                    copies = [r for r in sent if r.startswith(prefix)]
                    assert len(copies) <= 1, f"{prefix!r} sent {len(copies)} times after {kind} at request {position}"


# --- parsers -------------------------------------------------------------------------------------------------------

Parser = Callable[[str], object]
# Seeded (derandomized) and without a time limit: on a loaded machine a timing health check would make the
# outcome depend on the load, not on the parsers. Each driver's subclass runs the same methods on purpose (hypothesis
# calls that "differing executors"); with no example database nothing is replayed from one driver to another.
_PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
)


def assert_only_typed_errors(parsers: Sequence[Parser], line: str) -> None:
    """Every parser parses `line` or raises an InstrumentError; any other exception propagates (and fails)."""
    for parse in parsers:
        with contextlib.suppress(InstrumentError):
            parse(line)


class ParserConformance:
    """Parsers raise only typed errors, whatever arrives. Subclasses set `parsers` and `valid_answers`.

    `prefixes` are put before random text as well (a framing byte such as STX, so that the random part reaches
    the parser's inner checks instead of failing at the first byte).
    """

    parsers: ClassVar[Sequence[Parser]]
    valid_answers: ClassVar[Sequence[str]]
    prefixes: ClassVar[Sequence[str]] = ("",)

    def check(self, line: str) -> None:
        for prefix in self.prefixes:
            assert_only_typed_errors(self.parsers, prefix + line)

    def test_the_kit_has_parsers_and_answers(self) -> None:
        assert self.parsers and self.valid_answers

    @_PROPERTY
    @given(st.text(max_size=80))
    def test_random_text(self, line: str) -> None:
        self.check(line)

    @_PROPERTY
    @given(st.binary(max_size=80))
    def test_random_bytes(self, data: bytes) -> None:
        self.check(data.decode("ascii", "backslashreplace"))

    def test_every_truncation_of_a_valid_answer(self) -> None:
        for answer in self.valid_answers:
            for end in range(len(answer) + 1):
                assert_only_typed_errors(self.parsers, answer[:end])

    @_PROPERTY
    @given(st.data())
    def test_valid_answers_with_noise_inserted(self, data: st.DataObject) -> None:
        answer = data.draw(st.sampled_from(list(self.valid_answers)))
        at = data.draw(st.integers(0, len(answer)))
        noise = data.draw(st.text(min_size=1, max_size=3))
        assert_only_typed_errors(self.parsers, answer[:at] + noise + answer[at:])
