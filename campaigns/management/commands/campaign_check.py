"""`manage.py campaign_check --campaign ID`: does Mokugift accept the campaign's credentials?"""

from django.core.management.base import BaseCommand, CommandError

from campaigns.selectors import campaign_by_reference
from campaigns.services import campaign_check


class Command(BaseCommand):
    help = (
        "Check a campaign's ID and passcode with Mokugift (a create call with no recipient, "
        "which makes nothing) and record the outcome. Exit status 0 when Mokugift accepts "
        "them, 1 with the reason when it refuses them or cannot be asked."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--campaign", required=True, help="Mokugift campaign ID (or our campaign number)."
        )

    def handle(self, *args, **options):
        try:
            campaign = campaign_by_reference(ref=options["campaign"])
        except LookupError as error:
            raise CommandError(str(error)) from None
        outcome = campaign_check(campaign=campaign, actor=None)
        words = f"{campaign}: {outcome.verdict.lower()}: {outcome.message}"
        if outcome.ok:
            self.stdout.write(self.style.SUCCESS(words))
            return
        # CommandError: the words on standard error, and exit status 1.
        raise CommandError(words)
