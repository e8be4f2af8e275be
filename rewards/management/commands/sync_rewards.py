"""python manage.py sync_rewards [--campaign ID] (--month M --year Y | --all) [--wait]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Campaign
from campaigns.selectors import campaign_by_reference
from rewards.services import sync


class Command(BaseCommand):
    help = (
        "Mirror Mokugift's rewards of one month, or all of them, for one campaign or every "
        "enabled one. Without --wait the syncs are queued for the worker; with --wait they run "
        "here and their counts are printed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--campaign", help="Mokugift campaign ID (or the campaign's number on the dashboard)."
        )
        parser.add_argument("--month", type=int)
        parser.add_argument("--year", type=int)
        parser.add_argument("--all", action="store_true", help="Everything (all_rewards).")
        parser.add_argument("--wait", action="store_true", help="Run now, print the counts.")

    def handle(self, *args, campaign=None, month=None, year=None, all=False, wait=False, **kw):
        if all == (month is not None or year is not None):
            raise CommandError("Give either --month M --year Y, or --all.")
        if not all and (month is None or year is None or not 1 <= month <= 12):
            raise CommandError("--month (1-12) and --year go together.")
        campaigns = Campaign.objects.filter(enabled=True)
        if campaign is not None:
            try:
                campaigns = Campaign.objects.filter(pk=campaign_by_reference(ref=campaign).pk)
            except LookupError as error:
                raise CommandError(str(error)) from None
        period = "everything" if all else f"{year}-{month:02d}"
        if not wait:
            ids = list(campaigns.values_list("pk", flat=True))
            sync.sync_enqueue(campaign_ids=ids, year=year, month=month)
            self.stdout.write(f"Queued a sync of {period} for {len(ids)} campaign(s).")
            return
        failed = False
        for one in campaigns:
            if all:
                run = sync.rewards_sync_all(campaign=one)
            else:
                run = sync.rewards_sync_month(campaign=one, year=year, month=month)
            self.stdout.write(
                f"{one.name} ({one.campaign_id}) {period}: {run.outcome}, read {run.rewards_read},"
                f" created {run.created}, changed {run.changed},"
                f" flagged missing {run.flagged_missing}"
                + (f"; error: {run.error}" if run.error else "")
            )
            failed = failed or run.outcome == run.Outcome.FAILED
        if failed:
            raise CommandError("Some syncs failed (see above).")
