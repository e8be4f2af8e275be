"""Make an API key for a person, for automation (provisioning a system's key from a deploy
script). The key goes to standard output alone on its line, once, so that a script can read
it; what it is goes to standard error. It is nowhere else: not logged, not kept (only its
SHA-256 is)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from api import services
from api.models import Scope


class Command(BaseCommand):
    help = "Make an API key for a person and print it once (the key alone on standard output)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, metavar="USERNAME")
        parser.add_argument("--name", required=True, help="what the key is for")
        parser.add_argument(
            "--scope",
            required=True,
            metavar="SCOPES",
            help=f"comma-separated, of {', '.join(Scope.values)}",
        )
        parser.add_argument(
            "--expires-days",
            metavar="DAYS",
            help=f"1 to {services.MAX_EXPIRY_DAYS}; without it the key never expires",
        )

    def handle(self, *args, **options):
        username = options["user"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"--user: no person has the username {username!r}.")
        if not user.is_active:
            raise CommandError(f"--user: {username} is deactivated; no key can be made for them.")
        try:
            scopes = services.scopes_parse(options["scope"])
        except ValidationError as error:
            raise CommandError(f"--scope: {' '.join(error.messages)}") from None
        expires_days = _days(options["expires_days"])
        try:
            made = services.api_key_create(
                user=user, name=options["name"], scopes=scopes, expires_days=expires_days
            )
        except ValidationError as error:
            raise CommandError(f"--name: {' '.join(error.messages)}") from None
        key = made.api_key
        expires = key.expires_at.strftime("%Y-%m-%d") if key.expires_at else "never"
        self.stderr.write(
            f"A key {key.name!r} for {username} ({', '.join(key.scopes)}; expires {expires}). "
            "It is shown this once:"
        )
        self.stdout.write(made.secret)


def _days(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        days = int(value)
    except ValueError:
        raise CommandError(f"--expires-days: {value!r} is not a number of days.") from None
    if not 1 <= days <= services.MAX_EXPIRY_DAYS:
        raise CommandError(
            f"--expires-days: from 1 to {services.MAX_EXPIRY_DAYS} days, not {days}."
        )
    return days
