from __future__ import annotations

from django import forms

from campaigns.models import Approval, Campaign, Environment


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


class ControlsForm(forms.Form):
    """A campaign's spending controls: when a batch needs a second person, and budgets."""

    approval = forms.ChoiceField(
        label="Approval by a second person",
        choices=Approval.choices,
        widget=forms.RadioSelect,
        help_text="A Manager or Admin of the campaign, never the batch's maker, approves.",
    )
    approval_above = forms.IntegerField(
        label="Approval above (rewards)",
        min_value=1,
        max_value=1_000_000,
        required=False,
        help_text="With “Above a number of rewards”: batches of more rewards than this.",
    )
    monthly_budget = forms.IntegerField(
        label="Monthly budget (rewards)",
        min_value=0,
        max_value=100_000_000,
        required=False,
        help_text="Per calendar month, in UTC as Mokugift counts. Empty: no limit.",
    )
    monthly_budget_per_person = forms.IntegerField(
        label="Monthly budget per person (rewards)",
        min_value=0,
        max_value=100_000_000,
        required=False,
        help_text="What each person may send per month on this campaign. Empty: no limit.",
    )

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("approval") == Approval.ABOVE and data.get("approval_above") is None:
            self.add_error("approval_above", "Say above how many rewards a batch needs approval.")
        if data.get("approval") != Approval.ABOVE:
            data["approval_above"] = None
        return data
