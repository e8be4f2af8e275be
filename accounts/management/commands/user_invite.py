"""Invite a person by email with a role and campaigns, for automation."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.management.commands.user_add import (
    add_access_arguments,
    campaigns_named,
    check_access_arguments,
)


class Command(BaseCommand):
    help = "Invite a person by email: the mail holds a link that works once, for 3 days."

    def add_arguments(self, parser):
        add_access_arguments(parser)

    def handle(self, *args, **options):
        check_access_arguments(options)
        campaigns = campaigns_named(options["campaign"])
        try:
            invitation = services.person_invite(
                actor=None,
                email=options["email"],
                role=options["role"],
                all_campaigns=options["all_campaigns"],
                campaigns=campaigns,
                site_url=settings.SITE_URL,
            )
        except services.TeamRefused as refused:
            raise CommandError(str(refused)) from None
        backend = settings.MAILERS["default"]["BACKEND"].rsplit(".", 2)[-2]
        self.stdout.write(
            f"Invited {invitation.email} as {invitation.role}; the link works until "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC. The mail went out by the "
            f"{backend} mailer (MAILERS; EMAIL_URL)."
        )
