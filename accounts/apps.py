from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "People and sign-in"

    def ready(self) -> None:
        # django-allauth and Django tell of sign-ins, failures and two-factor changes only by
        # signals: accounts/signals.py records them in the audit trail.
        from accounts import signals

        signals.connect()
