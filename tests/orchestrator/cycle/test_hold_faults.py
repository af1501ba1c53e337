"""Which failures of the Prefect server a hold waits out (it answers again soon) and which it does not (it refused).

A lab's server under sixteen campaigns answered `503 Service Unavailable` to a slot request, which Prefect's client
wraps in an error of its own: the hold must still see a server that could not answer, and wait, rather than fail
the campaign."""

from __future__ import annotations

import httpx
import pytest
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError

from orchestrator.cycle.holds import _unreachable

URL = "http://127.0.0.1:4200/api/v2/concurrency_limits/increment-with-lease"


def _status(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", URL)
    return httpx.HTTPStatusError(f"{code}", request=request, response=httpx.Response(code, request=request))


def _wrapped(cause: BaseException) -> ConcurrencySlotAcquisitionError:
    try:
        raise ConcurrencySlotAcquisitionError("Unable to acquire concurrency slots") from cause
    except ConcurrencySlotAcquisitionError as exc:
        return exc


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_a_server_error_wrapped_by_prefect_is_waited_out(code: int) -> None:
    assert _unreachable(_wrapped(_status(code)))
    assert _unreachable(_status(code))


def test_a_server_that_cannot_be_reached_is_waited_out() -> None:
    assert _unreachable(httpx.ConnectError("All connection attempts failed"))
    assert _unreachable(_wrapped(httpx.ReadTimeout("timed out")))


@pytest.mark.parametrize("code", [401, 404, 409, 422])
def test_a_refusal_is_not_waited_out(code: int) -> None:
    assert not _unreachable(_wrapped(_status(code)))


def test_other_errors_are_not_waited_out() -> None:
    assert not _unreachable(ValueError("not a server's answer"))
    assert not _unreachable(_wrapped(ValueError("not a server's answer")))
