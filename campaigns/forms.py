from __future__ import annotations

from django import forms

from campaigns.models import Campaign, Environment


class CampaignForm(forms.Form):
    name = forms.CharField(label="Display name", max_length=200)
    campaign_id = forms.CharField(label="Mokugift campaign ID", max_length=100)
    environment = forms.ChoiceField(choices=Environment.choices, initial=Environment.SANDBOX)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, campaign: Campaign | None = None, **kwargs):
        self.campaign = campaign
        super().__init__(*args, **kwargs)

    def clean(self):
        super().clean()
        data = self.cleaned_data
        taken = Campaign.objects.filter(
            environment=data.get("environment"), campaign_id=data.get("campaign_id")
        )
        if self.campaign is not None:
            taken = taken.exclude(pk=self.campaign.pk)
        if taken.exists():
            self.add_error("campaign_id", "This campaign ID is already set up in that environment.")
        return data


class PasscodeField(forms.CharField):
    # render_value=False: the passcode is write-only, a form never shows it back.
    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 200)
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)


class CampaignCreateForm(CampaignForm):
    # Only a new campaign takes its state from a form: a saved one is disabled on its own page,
    # which says first what that stops, and enabled by a button.
    enabled = forms.BooleanField(required=False, initial=True)
    passcode = PasscodeField(help_text="Stored encrypted. It is never shown again.")

    field_order = ["name", "campaign_id", "environment", "enabled", "notes", "passcode"]


class PasscodeForm(forms.Form):
    passcode = PasscodeField(label="New passcode")
    passcode_again = PasscodeField(label="New passcode, again")

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("passcode") != data.get("passcode_again"):
            self.add_error("passcode_again", "The two passcodes differ.")
        return data
