import secrets

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from campaigns import roles
from campaigns.models import Campaign, Environment
from campaigns.services import campaign_create, campaign_passcode_replace
from sandbox.services import sandbox_campaign_save

DEMO_USERS = [
    ("admin", roles.ADMIN),
    ("marketer", roles.MARKETING),
    ("manager", roles.MANAGER),
]
DEMO_CAMPAIGN_ID = "demo"


class Command(BaseCommand):
    help = (
        "For development: one user per role with a fresh password each run, and a demo "
        "campaign backed by the sandbox. Prints how to log in."
    )

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Run even with DJANGO_DEBUG off.")

    def handle(self, *args, **options):
        if not settings.DEVELOPMENT and not options["force"]:
            raise CommandError(
                "demo_setup makes accounts for a demo; it runs only with DJANGO_DEBUG on."
            )
        User = get_user_model()
        logins = []
        for username, role in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            password = secrets.token_urlsafe(9)
            user.set_password(password)
            user.is_staff = role == roles.ADMIN
            # An address of their own, confirmed, so that a password reset can be tried: its
            # mail shows on the outbox page.
            user.email = f"{username}@example.com"
            user.save()
            EmailAddress.objects.update_or_create(
                user=user, email=user.email, defaults={"verified": True, "primary": True}
            )
            user.groups.set([Group.objects.get(name=role)])
            logins.append((username, password, role))

        # The same passcode on both sides: our encrypted copy and the sandbox's own.
        passcode = secrets.token_urlsafe(12)
        sandbox_campaign_save(campaign_id=DEMO_CAMPAIGN_ID, passcode=passcode, coins=1_000_000)
        campaign = Campaign.objects.filter(
            environment=Environment.SANDBOX, campaign_id=DEMO_CAMPAIGN_ID
        ).first()
        if campaign is None:
            campaign_create(
                actor=None,
                name="Demo campaign (sandbox)",
                campaign_id=DEMO_CAMPAIGN_ID,
                environment=Environment.SANDBOX,
                passcode=passcode,
                notes="Made by `make run`. Rewards go to the built-in sandbox, not to Mokugift.",
            )
        else:
            campaign_passcode_replace(campaign=campaign, actor=None, passcode=passcode)

        url = f"http://127.0.0.1:{settings.WEB_PORT}/"
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"mokudash is starting at {url}"))
        self.stdout.write("Log in as (passwords are new on every `make run`):")
        for username, password, role in logins:
            self.stdout.write(f"    {role:<10} user {username:<9} password {password}")
        if roles.ADMIN in settings.MFA_REQUIRED_ROLES:
            self.stdout.write(
                "The admin sets up two-factor sign-in (any authenticator app) at first login."
            )
        if settings.MAILERS["default"]["BACKEND"] == "accounts.mail.OutboxBackend":
            self.stdout.write(
                "No mail leaves this machine: every mail is printed below and kept at "
                f"{url}dev/outbox/"
            )
        self.stdout.write("")
