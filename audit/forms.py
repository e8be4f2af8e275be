"""The audit page's filter: it only cleans what the query string says."""

from __future__ import annotations

from django import forms
from django.contrib.auth.models import User

from audit.models import Kind
from audit.selectors import AREAS, AuditFilters
from campaigns.models import Campaign


def _kind_choices() -> list:
    areas = [(area, f"All: {label}") for area, label in AREAS.items()]
    kinds = [(kind.value, kind.label) for kind in Kind]
    return [("", "Every kind"), ("Areas", areas), ("Kinds", kinds)]


class AuditFilterForm(forms.Form):
    person = forms.ModelChoiceField(
        queryset=User.objects.order_by("username"), required=False, empty_label="Everyone"
    )
    kind = forms.ChoiceField(choices=_kind_choices, required=False)
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.defer("passcode").order_by("name"),
        required=False,
        empty_label="Every campaign",
    )
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filters(self) -> AuditFilters:
        if not self.is_valid():
            return AuditFilters()
        data = self.cleaned_data
        return AuditFilters(
            person=data["person"].pk if data["person"] else None,
            kind=data["kind"] or "",
            campaign=data["campaign"].pk if data["campaign"] else None,
            date_from=data["date_from"],
            date_to=data["date_to"],
        )
