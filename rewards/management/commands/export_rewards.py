"""python manage.py export_rewards [--campaign ID] [--month M --year Y] [--format csv|xlsx]
[--output FILE] [--report]"""

from __future__ import annotations

import datetime as dt
import sys

from django.core.management.base import BaseCommand, CommandError

from campaigns.selectors import campaign_by_reference
from rewards.selectors import mirror as selectors
from rewards.services import export, sync


class Command(BaseCommand):
    help = (
        "Write the mirrored rewards (of a campaign and/or a month) as CSV or XLSX: the same file "
        "the rewards page downloads. With --report, the monthly report of --year instead."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--campaign", help="Mokugift campaign ID (or the campaign's number on the dashboard)."
        )
        parser.add_argument("--month", type=int)
        parser.add_argument("--year", type=int)
        parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
        parser.add_argument("--output", help="File to write (default: standard output, CSV only).")
        parser.add_argument("--report", action="store_true", help="The monthly report of --year.")

    def handle(self, *args, campaign=None, month=None, year=None, report=False, **options):
        fmt, output = options["format"], options["output"]
        if campaign is not None:
            try:
                campaign = campaign_by_reference(ref=campaign).pk
            except LookupError as error:
                raise CommandError(str(error)) from None
        if fmt == "xlsx" and not output:
            raise CommandError("XLSX needs --output FILE.")
        campaign_ids = (campaign,) if campaign else ()
        # The command line has no person: the trail says the system, with the filter.
        export.export_record(
            actor=None,
            what="report" if report else "rewards",
            fmt=fmt,
            filters={"campaign": campaign, "month": month, "year": year},
            allowed=("campaign", "month", "year"),
        )
        if report:
            if year is None or month is not None:
                raise CommandError("--report takes --year (and no --month).")
            data = selectors.report_for_year(year=year, campaign_ids=campaign_ids)
            if fmt == "xlsx":
                with open(output, "wb") as out:
                    export.report_xlsx(report=data, out=out)
            else:
                self._write_text(export.report_csv(report=data), output)
            return
        if (month is None) != (year is None):
            raise CommandError("--month and --year go together.")
        date_from = date_to = None
        if month is not None:
            if not 1 <= month <= 12:
                raise CommandError("--month is 1-12.")
            start, end = sync.month_bounds(year=year, month=month)
            date_from, date_to = start.date(), (end - dt.timedelta(days=1)).date()
        rewards = selectors.rewards_filter(
            filters=selectors.RewardFilters(
                campaign_ids=campaign_ids, date_from=date_from, date_to=date_to
            )
        )
        if fmt == "xlsx":
            with open(output, "wb") as out:
                export.rewards_xlsx(rewards=rewards, out=out)
        else:
            self._write_bytes(export.rewards_csv(rewards=rewards), output)

    def _write_text(self, pieces, output: str | None) -> None:
        if output:
            with open(output, "w", encoding="utf-8", newline="") as out:
                out.writelines(pieces)
        else:
            sys.stdout.writelines(pieces)

    def _write_bytes(self, pieces, output: str | None) -> None:
        # The rewards' CSV comes as bytes (COPY's, on PostgreSQL): written as they are.
        if output:
            with open(output, "wb") as out:
                out.writelines(pieces)
        else:
            sys.stdout.flush()
            sys.stdout.buffer.writelines(pieces)
            sys.stdout.buffer.flush()
