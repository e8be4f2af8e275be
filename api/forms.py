"""The form that makes an API key. It only cleans: api.services.api_key_create checks the
name, the scopes and the expiry again and acts."""

from __future__ import annotations

from django import forms

from api.models import Scope

NEVER = "never"
# What the page offers; the service takes any 1 to MAX_EXPIRY_DAYS (the command line does).
EXPIRY_CHOICES = [
    ("7", "In 7 days"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
    (NEVER, "Never (revoke it yourself when it is no longer needed)"),
]
DEFAULT_EXPIRY = "90"


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Name",
        help_text="What the key is for, to tell it from your others: “CRM export”, “Shop”.",
    )
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        label="What it may do",
        help_text="Never more than your own role and campaigns allow.",
        error_messages={"required": "Tick at least one scope."},
    )
    expires = forms.ChoiceField(
        choices=EXPIRY_CHOICES,
        initial=DEFAULT_EXPIRY,
        label="Expires",
        help_text="An expired key is refused; make a new one then.",
    )

    def expires_days(self) -> int | None:
        value = self.cleaned_data["expires"]
        return None if value == NEVER else int(value)
