"""Campaigns as Prefect deployments: the campaign flow registered in a process work pool (`deploy`), and a flow run
of it for one campaign (`submit`), run by a plain `prefect worker start --pool NAME` beside the instruments.

The deployment names the installed flow by its module path (`orchestrator.cycle.flow.campaign_flow`), so a worker
runs the code of the peirce it has installed, with no copy of source in Prefect's storage. One deployment per pool,
named after the pool: `peirce-campaign/POOL`. Its only parameter is the campaign's id: the database URL reaches a
worker's flow runs through the worker's environment ($PEIRCE_DB_URL), never through Prefect, so no password lands
in Prefect's records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import FlowRun
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings
from prefect.types.entrypoint import EntrypointType
from prefect.workers.process import ProcessWorker

from orchestrator.cycle.flow import campaign_flow
from orchestrator.errors import PeirceError, SpecError

FLOW_NAME = "peirce-campaign"
POOL_TYPE = "process"


class ServerUnreachable(PeirceError):
    """No Prefect server to register with or submit to."""

    exit_code = 2


@dataclass(frozen=True)
class Deployed:
    deployment_id: UUID
    name: str  # `peirce-campaign/POOL`
    pool_created: bool
    leases_forgotten_on_restart: bool = False  # the server keeps its leases (the lab's holds) in memory


@dataclass(frozen=True)
class Submitted:
    flow_run_id: UUID
    flow_run_name: str
    ui_url: str | None  # the run's page in Prefect's UI (None when the server has no UI address)


def server_url() -> str:
    """The Prefect server's API address (PREFECT_API_URL, from the environment or Prefect's profile)."""
    # The environment first: Prefect reads its settings once, at import, and a process (a test, a notebook) may
    # have set the variable since.
    url = os.environ["PREFECT_API_URL"] if "PREFECT_API_URL" in os.environ else PREFECT_API_URL.value()
    if not url:
        raise ServerUnreachable(
            "PREFECT_API_URL: not set; deployments need a Prefect server "
            "(start one with `prefect server start`, then export PREFECT_API_URL=http://127.0.0.1:4200/api)"
        )
    return str(url)


def deployment_name(pool: str) -> str:
    return f"{FLOW_NAME}/{pool}"


def deploy(pool: str) -> Deployed:
    """Register the campaign flow as the deployment `peirce-campaign/POOL` in the process work pool `pool`, creating
    the pool if it is missing. Idempotent: registering again updates the same deployment."""
    url = server_url()
    check_pool_name(pool)
    with _answering(url):
        created = _ensure_pool(pool)
        # Prefect's sync/async dispatch types both answers; called outside an event loop, these are the sync ones.
        deployment = cast(
            RunnerDeployment,
            campaign_flow.to_deployment(
                name=pool,
                entrypoint_type=EntrypointType.MODULE_PATH,
                description=(
                    "A peirce campaign, run to its budget or stop criterion. Its workers read the database URL from "
                    "their own environment ($PEIRCE_DB_URL); submit with `peirce submit CAMPAIGN.yaml --pool "
                    f"{pool}`."
                ),
            ),
        )
        deployment_id = cast(UUID, deployment.apply(work_pool_name=pool))
        in_memory = _leases_in_memory()
    return Deployed(deployment_id, deployment_name(pool), created, in_memory)


# Where a Prefect server keeps its leases unless told otherwise: a restart forgets them, and a hold on an instrument
# taken before it then never lapses (docs/deploy.md, "A hold left taken").
LEASES_IN_MEMORY = "prefect.server.concurrency.lease_storage.memory"


def _leases_in_memory() -> bool:
    """Whether the server keeps its concurrency leases in memory, from its own settings (`/admin/settings`); False
    when it does not say."""
    with get_client(sync_client=True) as client:
        try:
            settings = client.request("GET", "/admin/settings").json()
        except (PrefectHTTPStatusError, ValueError):
            return False
    storage = ((settings.get("server") or {}).get("concurrency") or {}).get("lease_storage")
    return storage == LEASES_IN_MEMORY


def check_deployed(pool: str) -> UUID:
    """The id of the deployment `peirce-campaign/POOL`; a one-line error naming --pool when there is none."""
    url = server_url()
    check_pool_name(pool)
    with _answering(url), get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(deployment_name(pool))
        except ObjectNotFound:
            raise SpecError(
                "--pool",
                f"no peirce deployment in pool '{pool}' on {url}; register it with: peirce deploy --pool {pool}",
            ) from None
        return deployment.id


def submit(deployment_id: UUID, campaign_id: int, campaign_name: str) -> Submitted:
    """Create a flow run of the deployment for the campaign, named after it; a worker of the pool picks it up."""
    with _answering(server_url()), get_client(sync_client=True) as client:
        run: FlowRun = client.create_flow_run_from_deployment(
            deployment_id, parameters={"campaign_id": campaign_id}, name=campaign_name
        )
        ui = PREFECT_UI_URL.value()
    return Submitted(run.id, run.name, f"{ui}/runs/flow-run/{run.id}" if ui else None)


def check_pool_name(pool: str) -> None:
    # Prefect's names refuse these; said here in one line rather than as the server's HTTP 422.
    if not pool.strip() or any(c in pool for c in "/%&><"):
        raise SpecError("--pool", f"'{pool}' is not a work pool name (no '/', '%', '&', '<' or '>')")


def _ensure_pool(pool: str) -> bool:
    """Create the process work pool `pool` unless it exists; True when it was created here."""
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(pool)
        except ObjectNotFound:
            pass
        else:
            if existing.type != POOL_TYPE:
                raise SpecError("--pool", f"work pool '{pool}' is of type {existing.type}, not {POOL_TYPE}")
            return False
        template: dict[str, Any] = ProcessWorker.get_default_base_job_template()
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type=POOL_TYPE, base_job_template=template))
        except ObjectAlreadyExists:  # created by another `peirce deploy` at the same moment
            return False
        return True


class _answering:
    """Turns a server that does not answer, or answers with an error, into one line naming its address."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._settings = temporary_settings(updates={PREFECT_API_URL: url})  # the clients inside talk to `url`

    def __enter__(self) -> None:
        self._settings.__enter__()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._settings.__exit__(kind, exc, tb)
        if isinstance(exc, httpx.TransportError | RuntimeError) and not isinstance(exc, PeirceError):
            raise ServerUnreachable(
                f"PREFECT_API_URL: the Prefect server at {self.url} does not answer ({exc})"
            ) from exc
        if isinstance(exc, PrefectHTTPStatusError):
            detail = exc.response.text.replace("\n", " ")[:300]
            raise PeirceError(
                f"the Prefect server at {self.url} refused: HTTP {exc.response.status_code} {detail}"
            ) from exc
