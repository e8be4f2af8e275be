from django.core.management.base import BaseCommand

from accounts.services import authenticators_rotate_encryption_keys
from campaigns.services import campaigns_rotate_encryption_keys
from webhooks.services import endpoints_rotate_encryption_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (the campaigns' passcodes, the webhook endpoints' "
        "secrets, the two-factor secrets) under the newest key in FIELD_ENCRYPTION_KEYS. "
        "Afterwards the older keys can be removed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, **options):
        # A secret no key fits stops the command (DecryptionError): what it re-encrypted so far
        # reads under the newest key, and running it again once the key is back finishes.
        done = campaigns_rotate_encryption_keys(batch_size=options["batch_size"])
        endpoints = endpoints_rotate_encryption_keys()
        factors = authenticators_rotate_encryption_keys()
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {done} passcode(s), {endpoints} webhook secret(s) and "
                f"{factors} two-factor secret(s) under the newest key."
            )
        )
