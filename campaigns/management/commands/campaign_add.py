import getpass
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Environment
from campaigns.services import campaign_check, campaign_create


class Command(BaseCommand):
    help = (
        "Add a campaign. The passcode is read from a prompt, or from standard input with "
        "--passcode-stdin; never from the command line, where other users could read it."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # No abbreviations: `--passcode SECRET` must be an unknown option, not a short
        # `--passcode-stdin` followed by a stray word.
        parser.allow_abbrev = False
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--campaign-id", required=True)
        parser.add_argument("--environment", required=True, choices=Environment.values)
        parser.add_argument("--disabled", action="store_true")
        parser.add_argument("--notes", default="")
        parser.add_argument(
            "--passcode-stdin", action="store_true", help="Read the passcode from standard input."
        )

    def handle(self, *args, **options):
        if options["passcode_stdin"]:
            passcode = sys.stdin.readline().rstrip("\r\n")
        else:
            passcode = getpass.getpass("Passcode: ")
        if not passcode:
            raise CommandError("The passcode is empty.")
        try:
            campaign = campaign_create(
                actor=None,
                name=options["name"],
                campaign_id=options["campaign_id"],
                environment=options["environment"],
                passcode=passcode,
                enabled=not options["disabled"],
                notes=options["notes"],
            )
        except ValidationError as e:
            raise CommandError("; ".join(e.messages)) from None
        self.stdout.write(self.style.SUCCESS(f"Added campaign {campaign} (id {campaign.pk})."))
        # Checked once added, as the form checks before it saves: a command cannot ask "save
        # anyway?", so it saves and says loudly what Mokugift thinks (campaign_check asks again).
        outcome = campaign_check(campaign=campaign, actor=None)
        words = f"Connection check: {outcome.verdict.lower()}: {outcome.message}"
        if outcome.ok:
            self.stdout.write(words)
        else:
            self.stderr.write(
                self.style.WARNING(
                    f"{words}\nSends from this campaign will fail until Mokugift accepts it; "
                    f"check again with: manage.py campaign_check --campaign {campaign.pk}"
                )
            )
