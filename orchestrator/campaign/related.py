"""A campaign's related campaigns (`related:` in the campaign file), checked against the database it runs in.

A related campaign's results are given to the planner as another task of the same problem (`planners.bo.transfer`),
so it must be there, over the same parameters (a value this campaign does not offer is left out by the planner,
but a parameter of another kind, or one missing on either side, would make its points meaningless here), and
measure every objective of this one (by name). The file alone cannot say: the check runs when the campaign is
created or reopened, in the transaction that would write it, so a refused campaign leaves the database as it was.
A campaign from another database is brought in first with `peirce archive import`; it is then a campaign of this
one like any other.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.campaign.spec import CampaignSpec
from orchestrator.errors import SpecError
from orchestrator.store.models import Campaign


def related_campaign(session: Session, spec: CampaignSpec, index: int) -> Campaign:
    """The row of `spec.related[index]`; a SpecError naming the field when this database has no such campaign."""
    name = spec.related[index].campaign
    row = session.scalar(select(Campaign).where(Campaign.name == name))
    if row is None:
        raise SpecError(
            f"related[{index}].campaign",
            f"no campaign '{name}' in this database (one from an archive: `peirce archive import` it first)",
        )
    return row


def check_related(session: Session, spec: CampaignSpec) -> None:
    """Refuse, naming `related[i].campaign`, a related campaign that is not in the database, whose parameters are
    not this campaign's (same names, same kinds: numeric, categorical or molecule) or that lacks an objective."""
    own = {p.name: p for p in spec.space}
    for i in range(len(spec.related)):
        row = related_campaign(session, spec, i)
        field = f"related[{i}].campaign"
        try:
            other = CampaignSpec.model_validate(row.spec)
        except ValueError:
            raise SpecError(field, f"campaign '{row.name}' was stored by an incompatible peirce; upgrade it") from None
        theirs = {p.name: p for p in other.space}
        for name in theirs:
            if name not in own:
                raise SpecError(field, f"campaign '{row.name}' varies '{name}', which this campaign's space lacks")
        for name, parameter in own.items():
            if name not in theirs:
                raise SpecError(field, f"campaign '{row.name}' does not vary '{name}' (its space: {', '.join(theirs)})")
            if _kind(parameter) != _kind(theirs[name]):
                raise SpecError(
                    field,
                    f"'{name}' is {_kind(parameter)} here but {_kind(theirs[name])} in campaign '{row.name}'",
                )
        measured = {o.name for o in other.objectives}
        for objective in spec.objectives:
            if objective.name not in measured:
                raise SpecError(
                    field,
                    f"campaign '{row.name}' does not measure objective '{objective.name}' "
                    f"(its objectives: {', '.join(sorted(measured))})",
                )


def _kind(parameter: object) -> str:
    """What a value of the parameter is: a number (continuous, integer, discrete), a level, or a molecule."""
    if getattr(parameter, "is_numeric", False):
        return "numeric"
    return str(getattr(parameter, "type", "categorical"))
