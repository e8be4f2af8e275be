from django.core.management.base import BaseCommand

from campaigns.services import campaigns_rotate_encryption_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored passcode under the newest key in FIELD_ENCRYPTION_KEYS. "
        "Afterwards the older keys can be removed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, **options):
        done = campaigns_rotate_encryption_keys(batch_size=options["batch_size"])
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {done} passcode(s) under the newest key.")
        )
