"""send_rewards: the send form for automation, through the same ledger and Celery tasks.

    python manage.py send_rewards --campaign ID --mode email|link|link-id \\
        (--csv FILE [--sheet NAME] | --to RECIPIENT [--name NAME]) \\
        [--at "2026-12-24 09:00" [--tz ZONE]] [--wait]

--csv reads what the send page reads (rewards/services/recipient_files.py): CSV in UTF-8,
UTF-16 or Windows-1252 / Mac Roman, separated by commas, semicolons or tabs, or an Excel
workbook (.xlsx; its first sheet, or --sheet NAME).

A worker must be running (`celery -A mokudash worker`): this command only writes the batch and
enqueues it, like the web page. With --wait it follows the batch in the database and exits 0
only when every row ended sent.

The campaign's spending controls apply as on the page (rewards/services/controls.py): a batch
over a monthly budget is refused with the numbers; one that needs approval waits for a Manager
or Admin (with --wait, this command waits for the decision too: declined, it exits 1 with the
reason); with --at it goes out at that time (in --tz, by default TIME_ZONE), and --wait waits
for it to start.
"""

from __future__ import annotations

import time
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

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


def zone_find(*, name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(
            f"--tz: unknown time zone {name!r}; give an IANA name such as Europe/Berlin or UTC."
        ) from None


def send_at_parse(*, at: str, zone: tzinfo, now: datetime) -> datetime:
    """--at as a moment: "2026-12-24 09:00" in `zone` (an offset in the text wins). A time
    already past is refused: the batch would go out at once, which is not what was asked."""
    try:
        moment = datetime.fromisoformat(at.strip())
    except ValueError:
        raise CommandError(
            f'--at: {at!r} is not a date and time; give it as "2026-12-24 09:00".'
        ) from None
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=zone)
    if moment <= now:
        raise CommandError(
            f"--at: {when_words(moment, zone)} is in the past (it is {when_words(now, zone)}); "
            "give a time ahead, or leave --at out to send now."
        )
    return moment


def when_words(moment: datetime, zone: tzinfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M %Z} ({zone})"


class Command(BaseCommand):
    help = "Send one reward (--to) or a CSV of recipients (--csv) through the ledger and Celery."

    def add_arguments(self, parser):
        parser.add_argument(
            "--campaign", required=True, help="Mokugift campaign ID (or our campaign number)."
        )
        parser.add_argument("--mode", required=True, choices=list(MODES))
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--csv",
            type=Path,
            help="A file of recipients: CSV (as any spreadsheet saves it) or Excel (.xlsx).",
        )
        parser.add_argument(
            "--sheet", default="", help="With an .xlsx --csv: the sheet to read (default: first)."
        )
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
        parser.add_argument(
            "--at", default=None, help='When to send, e.g. "2026-12-24 09:00" (in --tz).'
        )
        parser.add_argument(
            "--tz", default=None, help="The time zone of --at (default: the TIME_ZONE setting)."
        )

    def handle(self, *args, **options):
        from rewards.services import csv_import

        zone = zone_find(name=options["tz"] or settings.TIME_ZONE)
        if options["tz"] and not options["at"]:
            raise CommandError("--tz is the time zone of --at: give --at too.")
        send_at = None
        if options["at"]:
            send_at = send_at_parse(at=options["at"], zone=zone, now=timezone.now())
        if options["sheet"] and not options["csv"]:
            raise CommandError("--sheet is the sheet of a workbook given with --csv.")
        campaign = campaign_find(ref=options["campaign"])
        mode = MODES[options["mode"]]
        if options["csv"]:
            rows = self._rows_from_csv(
                path=options["csv"], mode=mode, campaign=campaign, sheet=options["sheet"]
            )
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
                send_at=send_at,
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(
            f"Batch {batch.pk}: {len(rows)} reward(s) to send with {campaign.name} ({mode})."
        )
        deadline = None if options["timeout"] is None else time.monotonic() + options["timeout"]
        if batch.state == Batch.State.AWAITING_APPROVAL:
            self.stdout.write(
                f"Batch {batch.pk} awaits approval by a Manager or Admin of {campaign.name} "
                "(on the batch's page): nothing is sent until then"
                + (
                    f", and then not before {when_words(batch.send_at, zone)}."
                    if batch.send_at
                    else "."
                )
            )
        elif batch.state == Batch.State.SCHEDULED and batch.send_at:
            self.stdout.write(
                f"Batch {batch.pk} is scheduled: it starts at {when_words(batch.send_at, zone)}."
            )
        if not options["wait"]:
            self.stdout.write("Queued. Follow it on the batch page, or run again with --wait.")
            return
        self._wait_for_start(batch=batch, zone=zone, deadline=deadline)
        self._wait(batch=batch, timeout=options["timeout"], deadline=deadline)

    def _wait_for_start(self, *, batch: Batch, zone: tzinfo, deadline: float | None) -> None:
        """Wait while the batch awaits approval or its time; CommandError if it never will go
        out (declined, cancelled)."""
        said = batch.state
        while True:
            batch.refresh_from_db()
            if batch.state == Batch.State.DECLINED:
                who = f" by {batch.decided_by}" if batch.decided_by else ""
                raise CommandError(
                    f"Batch {batch.pk} was declined{who}: {batch.decline_reason} Nothing was sent."
                )
            if batch.state == Batch.State.CANCELLED and batch.started_at is None:
                raise CommandError(f"Batch {batch.pk} was cancelled before it started.")
            if batch.state not in (Batch.State.AWAITING_APPROVAL, Batch.State.SCHEDULED):
                if said == Batch.State.AWAITING_APPROVAL:
                    self.stdout.write(f"Batch {batch.pk} approved by {batch.decided_by}.")
                return
            if (
                said == Batch.State.AWAITING_APPROVAL
                and batch.state == Batch.State.SCHEDULED
                and batch.send_at is not None
            ):
                self.stdout.write(
                    f"Batch {batch.pk} approved by {batch.decided_by}: it starts at "
                    f"{when_words(batch.send_at, zone)}."
                )
                said = batch.state
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(
                    f"Batch {batch.pk} had not started (it is {batch.get_state_display().lower()})"
                    " within the --timeout."
                )
            time.sleep(POLL_SECONDS)

    def _rows_from_csv(
        self, *, path: Path, mode: str, campaign, sheet: str = ""
    ) -> list[RecipientRow]:
        from rewards.services.csv_import import recipients_parse_csv
        from rewards.services.recipient_files import MAX_FILE_BYTES

        try:
            # The limit before the bytes are read: a file of gigabytes is not loaded to say so.
            if path.stat().st_size > MAX_FILE_BYTES:
                raise CommandError(
                    f"{path.name} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB, the most "
                    "one upload can be. Keep only the recipient and name columns, or split it."
                )
            data = path.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}.") from None
        result = recipients_parse_csv(data=data, mode=mode, campaign=campaign, sheet=sheet)
        if result.needs_columns:
            first = ", ".join(f"“{cell}”" for cell in result.sample[0][1]) if result.sample else ""
            raise CommandError(
                f"{path.name}: {result.error} Its first row reads {first}: rename the "
                "recipient column's header (the send page lets you choose the columns instead)."
            )
        if not result.ok:
            raise CommandError(f"{path.name}: {result.error}")
        self.stdout.write(f"{path.name}: {result.read_as}.")
        if result.problems:
            for problem in result.problems:
                self.stderr.write(f"row {problem.row}, column {problem.column}: {problem.message}")
            raise CommandError(
                f"{path.name} has {len(result.problems)} problem(s), listed above. "
                "Nothing was sent: fix the file and run again."
            )
        return list(result.rows)

    def _wait(self, *, batch: Batch, timeout: float | None, deadline: float | None) -> None:
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
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(f"Batch {batch.pk} had not finished after {timeout:.0f} s.")
            time.sleep(POLL_SECONDS)
        not_sent = progress.total - counts["sent"]
        if not_sent:
            for send in batch.sends.exclude(state=Send.State.SENT).order_by("row_number")[:50]:
                self.stderr.write(f"row {send.row_number} {send.recipient}: {send.error_message}")
            raise CommandError(f"Batch {batch.pk}: {not_sent} row(s) did not end sent.")
        self.stdout.write(self.style.SUCCESS(f"Batch {batch.pk}: all {progress.total} sent."))
