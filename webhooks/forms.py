from __future__ import annotations

from django import forms

from webhooks.models import Event


class EndpointForm(forms.Form):
    url = forms.URLField(
        label="URL",
        max_length=500,
        assume_scheme="https",
        help_text="Where each event is POSTed, as JSON signed by the Standard Webhooks scheme.",
    )
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(
        choices=Event.choices, widget=forms.CheckboxSelectMultiple, required=True
    )
    enabled = forms.BooleanField(required=False, initial=True)
