"""send_rewards: the send form for automation, through the same ledger and Celery tasks.

    python manage.py send_rewards --campaign ID --mode email|link|link-id \\
        (--csv FILE | --to RECIPIENT [--name NAME]) [--wait]

A worker must be running (`celery -A mokudash worker`): this command only writes the batch and
enqueues it, like the web page. With --wait it follows the batch in the database and exits 0
only when every row ended sent.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Campaign
from campaigns.selectors import campaign_by_reference
from rewards.models import Batch, Send
from rewards.models.ledger import Mode
from rewards.selectors.sending import batch_progress
from rewards.services.sending import RecipientRow, batch_create

POLL_SECONDS = 0.5
MODES = {"email": Mode.EMAIL, "link": Mode.LINK, "link-id": Mode.LINK_ID}


def campaign_find(*, ref: str) -> Campaign:
    try:
        campaign = campaign_by_reference(ref=ref)
    except LookupError as error:
        raise CommandError(str(error)) from None
    if not campaign.enabled:
        raise CommandError(f"The campaign {campaign} is disabled.")
    return campaign


class Command(BaseCommand):
    help = "Send one reward (--to) or a CSV of recipients (--csv) through the ledger and Celery."

    def add_arguments(self, parser):
        parser.add_argument(
            "--campaign", required=True, help="Mokugift campaign ID (or our campaign number)."
        )
        parser.add_argument("--mode", required=True, choices=list(MODES))
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--csv", type=Path, help="A CSV file of recipients.")
        source.add_argument("--to", help="One recipient: an email address, or an ID (link-id).")
        parser.add_argument("--name", default="", help="The recipient's name (with --to).")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Follow the batch until every row has ended; exit 0 only if all were sent.",
        )
        parser.add_argument(
            "--timeout", type=float, default=None, help="With --wait: give up after N seconds."
        )
        parser.add_argument(
            "--key", default=None, help="An idempotency key: running again with it sends nothing."
        )

    def handle(self, *args, **options):
        from rewards.services import csv_import

        campaign = campaign_find(ref=options["campaign"])
        mode = MODES[options["mode"]]
        if options["csv"]:
            rows = self._rows_from_csv(path=options["csv"], mode=mode, campaign=campaign)
            source, filename = Batch.Source.COMMAND, options["csv"].name
        else:
            recipient, name = options["to"].strip(), options["name"].strip()
            problems = [
                p
                for p in (
                    csv_import.recipient_problem(mode=mode, recipient=recipient),
                    csv_import.name_problem(name=name),
                )
                if p
            ]
            if problems:
                raise CommandError(" ".join(message for _kind, message in problems))
            rows = [RecipientRow(row_number=1, recipient=recipient, name=name)]
            source, filename = Batch.Source.COMMAND, ""
        try:
            batch = batch_create(
                campaign=campaign,
                mode=mode,
                rows=rows,
                source=source,
                idempotency_key=options["key"],
                filename=filename,
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(
            f"Batch {batch.pk}: {len(rows)} reward(s) to send with {campaign.name} ({mode})."
        )
        if not options["wait"]:
            self.stdout.write("Queued. Follow it on the batch page, or run again with --wait.")
            return
        self._wait(batch=batch, timeout=options["timeout"])

    def _rows_from_csv(self, *, path: Path, mode: str, campaign) -> list[RecipientRow]:
        from rewards.services.csv_import import recipients_parse_csv

        try:
            data = path.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}.") from None
        result = recipients_parse_csv(data=data, mode=mode, campaign=campaign)
        if not result.ok:
            raise CommandError(f"{path.name}: {result.error}")
        if result.problems:
            for problem in result.problems:
                self.stderr.write(f"row {problem.row}, column {problem.column}: {problem.message}")
            raise CommandError(
                f"{path.name} has {len(result.problems)} problem(s), listed above. "
                "Nothing was sent: fix the file and run again."
            )
        return list(result.rows)

    def _wait(self, *, batch: Batch, timeout: float | None) -> None:
        started = time.monotonic()
        last = None
        while True:
            progress = batch_progress(batch=batch)
            counts = progress.counts
            line = (
                f"{progress.percent:3d} %  "
                + "  ".join(f"{state} {counts[state]}" for state in Send.State.values)
                + (f"  about {progress.eta_seconds:.0f} s left" if progress.eta_seconds else "")
            )
            if line != last:
                self.stdout.write(line)
                last = line
            batch.refresh_from_db(fields=["state", "paused_reason"])
            open_rows = counts["waiting"] + counts["sending"] + counts["unknown"]
            if not open_rows:
                break
            if batch.state == Batch.State.PAUSED:
                raise CommandError(f"Batch {batch.pk} is paused: {batch.paused_reason}")
            if timeout is not None and time.monotonic() - started > timeout:
                raise CommandError(f"Batch {batch.pk} had not finished after {timeout:.0f} s.")
            time.sleep(POLL_SECONDS)
        not_sent = progress.total - counts["sent"]
        if not_sent:
            for send in batch.sends.exclude(state=Send.State.SENT).order_by("row_number")[:50]:
                self.stderr.write(f"row {send.row_number} {send.recipient}: {send.error_message}")
            raise CommandError(f"Batch {batch.pk}: {not_sent} row(s) did not end sent.")
        self.stdout.write(self.style.SUCCESS(f"Batch {batch.pk}: all {progress.total} sent."))
