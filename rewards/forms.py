"""Forms of the sending pages. They only clean data; the services do the work."""

from __future__ import annotations

import uuid

from django import forms

from campaigns.selectors import campaigns_enabled
from rewards.models.ledger import Mode
from rewards.services.csv_import import name_problem, recipient_problem

# A 50,000-row file of addresses and names is a few MB; this leaves room for extra columns.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024

MODE_HELP: dict[str, str] = {
    Mode.EMAIL: "Mokugift sends the reward to the email address.",
    Mode.LINK: "No email is sent: you get a link to pass on, for an email address.",
    Mode.LINK_ID: "No email is sent: you get a link to pass on, for one of our recipient IDs.",
}


class CampaignChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.name} ({obj.campaign_id}, {obj.get_environment_display()})"


def _campaign_field() -> CampaignChoiceField:
    return CampaignChoiceField(
        queryset=campaigns_enabled(),
        empty_label="Choose a campaign",
        error_messages={"invalid_choice": "Choose one of the enabled campaigns."},
    )


def _mode_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        label="How the reward reaches the recipient",
        choices=Mode.choices,
        initial=Mode.EMAIL,
        widget=forms.RadioSelect,
    )


class SingleSendForm(forms.Form):
    campaign = _campaign_field()
    mode = _mode_field()
    recipient = forms.CharField(
        label="Recipient",
        max_length=254,
        help_text="An email address; for “Give me the link (our recipient ID)”, our ID.",
    )
    name = forms.CharField(label="Name (optional)", max_length=200, required=False)
    # Made when the form is rendered: a double submit carries the same key and finds the batch
    # the first submit made.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4().hex)

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        problem = name_problem(name=name)
        if problem:
            raise forms.ValidationError(problem[1])
        return name

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        mode, recipient = cleaned.get("mode"), cleaned.get("recipient", "").strip()
        if mode and recipient:
            problem = recipient_problem(mode=mode, recipient=recipient)
            if problem:
                self.add_error("recipient", problem[1])
            cleaned["recipient"] = recipient
        return cleaned


class BulkUploadForm(forms.Form):
    campaign = _campaign_field()
    mode = _mode_field()
    file = forms.FileField(
        label="CSV file",
        required=False,
        help_text="UTF-8, comma or semicolon, one recipient per row, at most 50,000 rows.",
    )
    text = forms.CharField(
        label="…or paste the rows",
        required=False,
        help_text="Headers first (email,name), or one address per line. For more than a few "
        "thousand rows, upload a file.",
        widget=forms.Textarea(
            attrs={"rows": 6, "placeholder": "email,name\nsally@example.com,Sally Chan"}
        ),
    )

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload and upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB. "
                "Keep only the recipient and name columns, or split it."
            )
        return upload

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        missing = not cleaned.get("file") and not cleaned.get("text", "").strip()
        if missing and not self.errors.get("file"):
            raise forms.ValidationError("Choose a CSV file or paste the rows.")
        return cleaned

    def data_bytes(self) -> tuple[bytes, str]:
        """The bytes to parse and the name to remember them by."""
        upload = self.cleaned_data.get("file")
        if upload:
            return b"".join(upload.chunks()), upload.name[:255]
        return self.cleaned_data["text"].encode("utf-8"), "pasted text"


class ConfirmForm(forms.Form):
    send_anyway = forms.BooleanField(required=False)
