"""Forms of the pages: sending, the decisions about unknown rows, and the filters of the rewards
page and the report. They only clean data; the services and selectors do the work."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import cast

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator
from django.utils import timezone

from campaigns.selectors import campaigns_enabled
from rewards.models.ledger import Mode
from rewards.selectors import mirror as selectors
from rewards.services import sync
from rewards.services.controls import TOO_FAR_AHEAD, send_at_too_far
from rewards.services.csv_import import column_choices, name_problem, recipient_problem
from rewards.services.recipient_files import MAX_FILE_BYTES

# The limit lives with the reader (recipient_files), which the command applies too.
MAX_UPLOAD_BYTES = MAX_FILE_BYTES


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


def paste_limit() -> str:
    """The most a pasted list can hold, in words. Django's DATA_UPLOAD_MAX_MEMORY_SIZE bounds
    every field of a form that is not a file, so it is the limit of the text box too."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return _megabytes(limit) if limit is not None else ""


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


class SendAtField(forms.DateTimeField):
    """ "Send at": a date and time in the person's time zone (the one active for the request,
    accounts.middleware), empty for at once. Never in the past, at most a year ahead."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Send at (optional)")
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Empty: at once. In your time zone.")
        super().__init__(**kwargs)

    def clean(self, value):
        moment = super().clean(value)
        if moment is None:
            return None
        now = timezone.now()
        if moment < now - dt.timedelta(minutes=1):
            raise forms.ValidationError("That time is past: choose a later one, or leave it empty.")
        if send_at_too_far(send_at=moment, now=now):
            raise forms.ValidationError(TOO_FAR_AHEAD)
        return moment


# In the batch page's live part, polled while the batch waits: what is being typed in these
# fields is kept (hx-preserve, by their id) when a poll swaps the part in again.
_PRESERVED = {"hx-preserve": "true"}


class RescheduleForm(forms.Form):
    send_at = SendAtField(
        label="New time",
        help_text="Empty: send now. In your time zone.",
        widget=forms.DateTimeInput(
            attrs={"type": "datetime-local", **_PRESERVED}, format="%Y-%m-%dT%H:%M"
        ),
    )


class DeclineForm(forms.Form):
    reason = forms.CharField(
        label="Why (the person who made it reads this)",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, **_PRESERVED}),
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
    send_at = SendAtField()
    # Made when the form is rendered: a double submit carries the same key and finds the batch
    # the first submit made.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, campaigns, **kwargs):
        super().__init__(*args, **kwargs)
        # The enabled campaigns this person may send on (campaigns.selectors).
        cast(CampaignChoiceField, self.fields["campaign"]).queryset = campaigns
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
        label="CSV or Excel file",
        required=False,
        help_text=(
            "An Excel workbook (.xlsx), or CSV as any spreadsheet saves it (UTF-8, UTF-16, "
            "Windows-1252; commas, semicolons or tabs); one recipient per row, at most 50,000 "
            "rows."
        ),
        widget=forms.ClearableFileInput(
            attrs={
                "accept": ".csv,.txt,.tsv,.xlsx,text/csv,text/plain,"
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
        ),
    )
    text = forms.CharField(
        label="…or paste the rows",
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 6, "placeholder": "email,name\nsally@example.com,Sally Chan"}
        ),
    )

    def __init__(self, *args, campaigns, **kwargs):
        super().__init__(*args, **kwargs)
        # The enabled campaigns this person may send on (campaigns.selectors).
        cast(CampaignChoiceField, self.fields["campaign"]).queryset = campaigns
        # Read when the form is made, not at import: the limit is a setting.
        limit = paste_limit()
        self.fields["text"].help_text = (
            "Headers first (email,name), or one address per line"
            + (f", at most {limit}" if limit else "")
            + ". For more than a few thousand rows, upload a file."
        )

    @classmethod
    def too_big(cls, **kwargs) -> BulkUploadForm:
        """The form again after a post Django would not read (past DATA_UPLOAD_MAX_MEMORY_SIZE):
        unbound, since none of it could be read, and the limit said under the text box."""
        form = cls(**kwargs)
        # An unbound form has no cleaned_data for add_error(): the error is set directly.
        form.errors["text"] = form.error_class(
            [
                f"The pasted rows are more than {paste_limit()}, the most a pasted list can "
                f"hold: upload them as a CSV file instead (up to {_megabytes(MAX_UPLOAD_BYTES)})."
            ]
        )
        return form

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload and upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {_megabytes(MAX_UPLOAD_BYTES)}. "
                "Keep only the recipient and name columns, or split it."
            )
        return upload

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        missing = not cleaned.get("file") and not cleaned.get("text", "").strip()
        if missing and not self.errors.get("file"):
            raise forms.ValidationError("Choose a CSV or Excel file, or paste the rows.")
        return cleaned

    def data_bytes(self) -> tuple[bytes, str]:
        """The bytes to parse and the name to remember them by."""
        upload = self.cleaned_data.get("file")
        if upload:
            return b"".join(upload.chunks()), upload.name[:255]
        return self.cleaned_data["text"].encode("utf-8"), "pasted text"


class ReadChoiceForm(forms.Form):
    """Another reading of an upload's file: a sheet, an encoding, or which column is which.
    The choices offered are the upload's own (its sheets, its readings, its columns)."""

    sheet = forms.ChoiceField(required=False, label="Sheet")
    encoding = forms.ChoiceField(required=False, label="Read as")
    recipient = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, label="Recipient column"
    )
    name = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Name column")
    header = forms.BooleanField(required=False, label="The first row holds headers")

    def __init__(self, *args, result, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["sheet"]).choices = [(s, s) for s in result.sheets]
        cast(forms.ChoiceField, self.fields["encoding"]).choices = [
            (r.encoding, r.label) for r in result.readings
        ]
        columns = column_choices(sample=result.sample)
        cast(forms.ChoiceField, self.fields["recipient"]).choices = columns
        cast(forms.ChoiceField, self.fields["name"]).choices = [("", "No name column"), *columns]


class ConfirmForm(forms.Form):
    send_anyway = forms.BooleanField(required=False)
    send_at = SendAtField()


def _row_numbers(text: str) -> list[int] | None:
    """ "3, 7-9" as [3, 7, 8, 9]; empty as None (every row). Raises ValidationError."""
    text = text.strip()
    if not text:
        return None
    numbers: list[int] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        if not low.strip().isascii() or not low.strip().isdigit():
            raise forms.ValidationError(f"“{part}” is not a row number or a range like 7-9.")
        if high and (not high.strip().isascii() or not high.strip().isdigit()):
            raise forms.ValidationError(f"“{part}” is not a row number or a range like 7-9.")
        first, last = int(low), int(high or low)
        if last < first or last - first > 50_000:
            raise forms.ValidationError(f"“{part}” is not a range of rows of a batch.")
        numbers.extend(range(first, last + 1))
    return numbers or None


class UnknownRowsForm(forms.Form):
    """An operator's decision about rows whose outcome is unknown."""

    ACTIONS = {"failed": "Mark as failed (do not send)", "sent": "Mark as sent"}

    action = forms.ChoiceField(choices=list(ACTIONS.items()))
    rows = forms.CharField(
        required=False,
        max_length=2000,
        label="Rows",
        help_text="Row numbers such as 3, 7-9; empty for every unknown row.",
    )
    reason = forms.CharField(
        max_length=500,
        label="Why",
        help_text="How you know: it is kept in each row's history with your name.",
        error_messages={"required": "Say why: it is kept in each row's history."},
    )

    def clean_rows(self) -> list[int] | None:
        return _row_numbers(self.cleaned_data.get("rows", ""))


# --- Filters of the rewards page and the report -------------------------------------------

SOURCE_CHOICES = [
    ("", "Any source"),
    (selectors.SOURCE_DASHBOARD, "Sent from this dashboard"),
    (selectors.SOURCE_ELSEWHERE, "Sent elsewhere"),
]
ORDER_CHOICES = [("newest", "Newest first"), ("oldest", "Oldest first")]


# The last day a filter may name: the day after it, and the end of its month, must still be
# dates (the year 9999's last day and month have none: a 500).
LAST_FILTER_DATE = dt.date(2999, 12, 31)
_BEFORE_3000 = [MaxValueValidator(LAST_FILTER_DATE, "Give a date before the year 3000.")]


class RewardFilterForm(forms.Form):
    campaign = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    month = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"})
    )
    date_from = forms.DateField(
        required=False,
        validators=_BEFORE_3000,
        label="From date",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = forms.DateField(
        required=False,
        validators=_BEFORE_3000,
        label="To date",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    source = forms.ChoiceField(choices=SOURCE_CHOICES, required=False)
    batch = forms.IntegerField(required=False, min_value=1, label="Batch #")
    sender = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    q = forms.CharField(
        required=False,
        max_length=254,
        label="Recipient",
        widget=forms.TextInput(attrs={"placeholder": "Part of an email, an ID or a name"}),
    )
    missing = forms.BooleanField(required=False, label="Only those Mokugift no longer lists")
    order = forms.ChoiceField(choices=ORDER_CHOICES, required=False)
    # Not a filter: where the table starts (the rewards of that UTC day and on, in its order).
    day = forms.DateField(
        required=False,
        validators=_BEFORE_3000,
        label="Go to date",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args, choices: selectors.FilterChoices, **kwargs):
        super().__init__(*args, **kwargs)
        # The fields declared above: choice fields both.
        cast(forms.ChoiceField, self.fields["campaign"]).choices = [("", "All campaigns")] + [
            (c.pk, c.name) for c in choices["campaigns"]
        ]
        cast(forms.ChoiceField, self.fields["sender"]).choices = [("", "Anyone")] + [
            (u.pk, u.get_username()) for u in choices["senders"]
        ]

    def clean_month(self) -> tuple[int, int] | None:
        value = self.cleaned_data["month"].strip()
        if not value:
            return None
        try:
            moment = dt.datetime.strptime(value, "%Y-%m")
        except ValueError:
            raise forms.ValidationError("A month looks like 2026-05.") from None
        if moment.year > LAST_FILTER_DATE.year:
            raise forms.ValidationError("Give a month before the year 3000.")
        return moment.year, moment.month

    def clean(self):
        """A range that holds nothing is refused, naming the fields, rather than shown as an
        empty list that looks like "no rewards"."""
        data = super().clean() or {}
        date_from, date_to = data.get("date_from"), data.get("date_to")
        if date_from and date_to and date_from > date_to:
            raise forms.ValidationError(
                f"From date ({date_from}) is after To date ({date_to}): no reward can be in "
                "between. Swap the dates, or clear one of them.",
                code="empty_range",
            )
        if data.get("month") and (date_from or date_to):
            year, month = data["month"]
            start, end = sync.month_bounds(year=year, month=month)
            first, last = start.date(), (end - dt.timedelta(days=1)).date()
            label = f"{year}-{month:02d}"
            if date_from and date_from > last:
                raise forms.ValidationError(
                    f"From date ({date_from}) is after the end of Month ({label}): no reward "
                    "can be in both. Change one, or clear one of them.",
                    code="empty_range",
                )
            if date_to and date_to < first:
                raise forms.ValidationError(
                    f"To date ({date_to}) is before the start of Month ({label}): no reward "
                    "can be in both. Change one, or clear one of them.",
                    code="empty_range",
                )
        return data

    def refused(self) -> bool:
        """The filters as a whole hold nothing (a range that ends before it starts)."""
        return any(
            error.code == "empty_range" for error in self.errors.as_data().get("__all__", [])
        )

    def summary(self) -> list[tuple[str, str]]:
        """(label, value) of each filter in force, in words, for the folded filter line."""
        if not self.is_bound or not hasattr(self, "cleaned_data"):
            return []
        shown = []
        for name, field in self.fields.items():
            if name in ("day", "order") or name in self.errors:
                continue
            value = self.cleaned_data.get(name)
            if value in (None, "", False):
                continue
            if name == "month":
                text = f"{value[0]}-{value[1]:02d}"
            elif isinstance(field, forms.ChoiceField):
                choices = cast(list[tuple[object, str]], field.choices)
                text = str(dict(choices).get(value, value))
            elif value is True:
                text = "yes"
            else:
                text = str(value)
            shown.append((str(field.label or name.capitalize()), text))
        return shown

    def filters(self) -> selectors.RewardFilters:
        """The valid fields as filters; a field that did not pass is left out (and shown)."""
        data = self.cleaned_data
        date_from, date_to = data.get("date_from"), data.get("date_to")
        if data.get("month"):
            year, month = data["month"]
            start, end = sync.month_bounds(year=year, month=month)
            first, last = start.date(), (end - dt.timedelta(days=1)).date()
            date_from = max(date_from, first) if date_from else first
            date_to = min(date_to, last) if date_to else last
        return selectors.RewardFilters(
            campaign_ids=(data["campaign"],) if data.get("campaign") else (),
            date_from=date_from,
            date_to=date_to,
            source=data.get("source") or "",
            batch_id=data.get("batch"),
            sender_id=data.get("sender"),
            search=data.get("q") or "",
            missing_only=bool(data.get("missing")),
            newest_first=data.get("order") != "oldest",
        )


class ReportForm(forms.Form):
    year = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        error_messages={"invalid_choice": "There is no data for %(value)s."},
    )
    campaign = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        error_messages={"invalid_choice": "There is no campaign %(value)s."},
    )

    def __init__(self, *args, years: list[int], campaigns, **kwargs):
        super().__init__(*args, **kwargs)
        # The fields declared above: choice fields both.
        cast(forms.ChoiceField, self.fields["year"]).choices = [(y, y) for y in years]
        cast(forms.ChoiceField, self.fields["campaign"]).choices = [("", "All campaigns")] + [
            (c.pk, c.name) for c in campaigns
        ]
