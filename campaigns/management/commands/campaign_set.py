"""`manage.py campaign_set --campaign ID [--approval ...] [--monthly-budget ...]
[--budget-per-person ...]`: a campaign's spending controls, from a shell.

    --approval never|always|above:N   a second person approves every batch, or those of more
                                      than N rewards (never: nobody needs to)
    --monthly-budget N|none           rewards per calendar month (UTC); none: no limit
    --budget-per-person N|none        rewards each person may send per month; none: no limit

Through `campaigns.services.campaign_update`, as the campaign page, so the change is in the
campaign's history (the audit trail), made by the command line (no person).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Approval, Campaign
from campaigns.selectors import campaign_by_reference
from campaigns.services import CONTROL_FIELDS, campaign_update

NO_LIMIT = "none"


def _count(*, option: str, value: str) -> int:
    """A whole number of rewards, 0 or more, or a CommandError naming the option."""
    if not value.isascii() or not value.isdigit():
        raise CommandError(f"{option} takes a whole number of rewards (0 or more), not {value!r}.")
    return int(value)


def approval_parse(value: str) -> dict[str, object]:
    """--approval's words as the campaign's fields: never, always or above:N."""
    word, _, number = value.strip().lower().partition(":")
    if word in (Approval.NEVER, Approval.ALWAYS) and not number:
        return {"approval": word, "approval_above": None}
    if word == Approval.ABOVE and number:
        return {
            "approval": word,
            "approval_above": _count(option="--approval above:N", value=number),
        }
    raise CommandError(
        f"--approval takes never, always or above:N (e.g. above:100), not {value!r}."
    )


def limit_parse(*, option: str, value: str) -> int | None:
    """A budget: a number of rewards, or none for no limit."""
    if value.strip().lower() == NO_LIMIT:
        return None
    return _count(option=option, value=value.strip())


def controls_words(campaign: Campaign) -> str:
    def limit(value: int | None) -> str:
        return "no limit" if value is None else f"{value} rewards"

    return (
        f"approval: {campaign.approval_words.lower()}; "
        f"monthly budget: {limit(campaign.monthly_budget)}; "
        f"per person: {limit(campaign.monthly_budget_per_person)}"
    )


class Command(BaseCommand):
    help = (
        "Set a campaign's spending controls: approval by a second person, the monthly budget "
        "and the monthly budget per person. The change is recorded in the campaign's history."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--campaign", required=True, help="Mokugift campaign ID (or our campaign number)."
        )
        parser.add_argument(
            "--approval", help="never, always, or above:N (batches of more than N rewards)."
        )
        parser.add_argument(
            "--monthly-budget", help="Rewards per calendar month (UTC), or none for no limit."
        )
        parser.add_argument(
            "--budget-per-person", help="Rewards each person may send per month, or none."
        )

    def handle(self, *args, **options):
        changes: dict[str, object] = {}
        if options["approval"] is not None:
            changes.update(approval_parse(options["approval"]))
        if options["monthly_budget"] is not None:
            changes["monthly_budget"] = limit_parse(
                option="--monthly-budget", value=options["monthly_budget"]
            )
        if options["budget_per_person"] is not None:
            changes["monthly_budget_per_person"] = limit_parse(
                option="--budget-per-person", value=options["budget_per_person"]
            )
        if not changes:
            raise CommandError(
                "Nothing to set: give --approval, --monthly-budget or --budget-per-person."
            )
        # Found before the options are checked against it: a disabled campaign may be set too.
        try:
            campaign = campaign_by_reference(ref=options["campaign"])
        except LookupError as error:
            raise CommandError(str(error)) from None
        before = [getattr(campaign, field) for field in CONTROL_FIELDS]
        try:
            campaign = campaign_update(campaign=campaign, actor=None, **changes)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        if [getattr(campaign, field) for field in CONTROL_FIELDS] == before:
            self.stdout.write(f"{campaign}: no change ({controls_words(campaign)}).")
            return
        self.stdout.write(self.style.SUCCESS(f"{campaign}: {controls_words(campaign)}."))
