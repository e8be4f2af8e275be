"""The Team page's forms and the invitation's. They only clean data: accounts.services acts."""

from __future__ import annotations

from allauth.account import forms as allauth_forms
from django import forms
from django.contrib.auth.models import User

from accounts.models import ROLE_CHOICES
from campaigns.models import Campaign


class _CampaignsField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Campaign) -> str:
        return f"{obj.name} ({obj.campaign_id})"


def _campaigns_field() -> _CampaignsField:
    return _CampaignsField(
        queryset=Campaign.objects.defer("passcode").order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The campaigns they see and work on. Admins always have every campaign.",
    )


class CampaignChoiceForm(forms.Form):
    all_campaigns = forms.BooleanField(
        required=False, label="All campaigns, including those added later"
    )
    campaigns = _campaigns_field()

    def clean(self) -> dict:
        data = super().clean() or {}
        role = data.get("role")
        if not data.get("all_campaigns") and not data.get("campaigns") and role != "Admin":
            raise forms.ValidationError("Choose the campaigns, or all campaigns.")
        return data


class InviteForm(CampaignChoiceForm):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="Marketing")
    field_order = ["email", "role", "all_campaigns", "campaigns"]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class InvitationAcceptForm(forms.Form):
    username = forms.CharField(
        max_length=150, help_text="What you sign in with (your email address works too)."
    )
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password_again = forms.CharField(
        label="Password again", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("This username is taken: choose another.")
        return username

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class ResetPasswordForm(allauth_forms.ResetPasswordForm):
    """allauth's, but a reset goes only to an address its owner has confirmed: one added to an
    account and not yet confirmed from its mailbox (an email change under way, perhaps by
    someone who took over a session) gets none. A person made before allauth, whose address
    has no record of its own, keeps the address they were given."""

    def clean_email(self) -> str:
        email = super().clean_email()
        from allauth.account.models import EmailAddress

        kept = []
        for user in self.users:
            records = EmailAddress.objects.filter(user=user, email__iexact=email)
            if records.filter(verified=True).exists() or (
                not records.exists() and user.email.lower() == email.lower()
            ):
                kept.append(user)
        self.users = kept
        return email
