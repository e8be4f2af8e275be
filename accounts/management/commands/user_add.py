"""Add a person with a role and campaigns, for automation. The password comes from a prompt
or from standard input (--password-stdin), never from the command line, where any user of
the machine could read it in the process list."""

from __future__ import annotations

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts import services
from campaigns.models import Campaign


def campaigns_named(campaign_ids: list[str]) -> list[Campaign]:
    """The campaigns with these Mokugift campaign IDs; an unknown one is an error naming it."""
    found = {c.campaign_id: c for c in Campaign.objects.filter(campaign_id__in=campaign_ids)}
    unknown = [cid for cid in campaign_ids if cid not in found]
    if unknown:
        raise CommandError(f"No campaign has the ID {', '.join(unknown)}.")
    return [found[cid] for cid in campaign_ids]


def add_access_arguments(parser) -> None:
    parser.add_argument("--email", required=True)
    parser.add_argument("--role", required=True, choices=services.ROLES)
    parser.add_argument(
        "--campaign",
        action="append",
        default=[],
        metavar="ID",
        help="a Mokugift campaign ID they may work on (repeat for several)",
    )
    parser.add_argument("--all-campaigns", action="store_true", help="every campaign")


def check_access_arguments(options: dict) -> None:
    if options["role"] != "Admin" and not options["campaign"] and not options["all_campaigns"]:
        raise CommandError("Say which campaigns: --campaign ID (repeatable) or --all-campaigns.")
    if options["campaign"] and options["all_campaigns"]:
        raise CommandError("Give --campaign or --all-campaigns, not both.")


class Command(BaseCommand):
    help = "Add a person with a role and campaigns (the password from a prompt or stdin)."

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        add_access_arguments(parser)
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of standard input",
        )

    def handle(self, *args, **options):
        check_access_arguments(options)
        campaigns = campaigns_named(options["campaign"])
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Password again: ") != password:
                raise CommandError("The two passwords differ.")
        if not password:
            raise CommandError("No password given.")
        try:
            person = services.person_add(
                actor=None,
                username=options["username"],
                email=options["email"],
                role=options["role"],
                all_campaigns=options["all_campaigns"],
                campaigns=campaigns,
                password=password,
            )
        except services.TeamRefused as refused:
            raise CommandError(str(refused)) from None
        where = (
            "every campaign"
            if options["all_campaigns"] or options["role"] == "Admin"
            else (", ".join(c.campaign_id for c in campaigns))
        )
        self.stdout.write(f"Added {person.username} as {options['role']} on {where}.")
