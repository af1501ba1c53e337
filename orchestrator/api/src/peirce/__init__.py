"""peirce from Python: drive a campaign from a notebook or a script.

    import peirce

    campaign = peirce.Campaign.create("campaign.yaml", db="screen.db")
    batch = campaign.ask()                       # the experiments to run now (a pandas DataFrame)
    batch["yield"] = [...]                       # measured, one value per row
    campaign.tell(batch, by="Ada Lovelace")      # recorded under your name; the cycle is induced when complete
    campaign.best(); campaign.hypotheses(); campaign.status()

The records are those of the `peirce` command line (`peirce status`, `replay`, `report` and `resume` work on a
campaign driven from here). The implementation lives in `orchestrator.api`; this package only names it.
"""

from orchestrator import __version__
from orchestrator.api.campaign import Campaign, CampaignState, PeopleWaiting, TellReport
from orchestrator.errors import CampaignConflict, CampaignNotFound, PeirceError, SpecError

__all__ = [
    "Campaign",
    "CampaignConflict",
    "CampaignNotFound",
    "CampaignState",
    "PeirceError",
    "PeopleWaiting",
    "SpecError",
    "TellReport",
    "__version__",
]
