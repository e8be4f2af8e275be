from __future__ import annotations

from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from campaigns import selectors, services
from campaigns.forms import CampaignCreateForm, CampaignForm, ControlsForm, PasscodeForm
from campaigns.models import Campaign
from rewards.services.controls import budget_state

manage_campaigns = permission_required("campaigns.manage_campaigns", raise_exception=True)

# The second button of a form whose check failed: save what was typed all the same.
SAVE_ANYWAY = "save_anyway"


def _campaign(request, pk: int) -> Campaign:
    """A campaign this person may see; any other is a 404, as if it did not exist."""
    return get_object_or_404(selectors.campaigns_visible_to(user=request.user), pk=pk)


def _check_blocks(request, outcome: services.CheckOutcome) -> bool:
    """A failed check stops a save until the person asks for it all the same."""
    return not outcome.ok and SAVE_ANYWAY not in request.POST


def _say_saved(request, what: str, outcome: services.CheckOutcome) -> None:
    if outcome.ok:
        messages.success(request, f"{what} Mokugift accepts the campaign ID and passcode.")
    else:
        messages.warning(
            request, f"{what} The connection check says: {outcome.verdict}: {outcome.message}"
        )


def _form_page(request, form, *, title: str, campaign: Campaign | None = None, check=None):
    return render(
        request,
        "campaigns/form.html",
        {
            "form": form,
            "title": title,
            "campaign": campaign,
            "check": check,
            "asks_passcode": "passcode" in form.fields,
        },
    )


@manage_campaigns
def campaign_list(request):
    campaigns = selectors.visible_only(
        selectors.campaigns_for_list(), user=request.user, field="pk"
    )
    return render(request, "campaigns/list.html", {"campaigns": campaigns})


@manage_campaigns
# The gravest acts ask for the password (or a code) again when the last time is over 10
# minutes ago (ACCOUNT_REAUTHENTICATION_TIMEOUT): adding a campaign, replacing its passcode.
@reauthentication_required
def campaign_create(request):
    form = CampaignCreateForm(request.POST or None)
    check = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        check = services.campaign_credentials_check(
            campaign=Campaign(
                campaign_id=data["campaign_id"],
                environment=data["environment"],
                passcode=data["passcode"],
            )
        )
        if not _check_blocks(request, check):
            campaign = services.campaign_create(actor=request.user, **data)
            services.campaign_check_record(campaign=campaign, actor=request.user, outcome=check)
            _say_saved(request, f"Campaign “{campaign.name}” created.", check)
            return redirect("campaigns:detail", pk=campaign.pk)
    return _form_page(request, form, title="New campaign", check=check)


@manage_campaigns
def campaign_detail(request, pk: int):
    campaign = _campaign(request, pk)
    has_passcode = selectors.campaigns_for_list().get(pk=pk).has_passcode
    history = selectors.campaign_history_in_words(campaign=campaign)
    return render(
        request,
        "campaigns/detail.html",
        {
            "campaign": campaign,
            "has_passcode": has_passcode,
            "history": history,
            "budget": budget_state(campaign=campaign),
        },
    )


@manage_campaigns
def campaign_edit(request, pk: int):
    campaign = _campaign(request, pk)
    initial = {field: getattr(campaign, field) for field in CampaignForm.base_fields}
    form = CampaignForm(request.POST or None, initial=initial, campaign=campaign)
    check = None
    if request.method == "POST" and form.is_valid():
        check = services.campaign_check_changes(campaign=campaign, **form.cleaned_data)
        if not _check_blocks(request, check):
            try:
                services.campaign_update(campaign=campaign, actor=request.user, **form.cleaned_data)
            except ValidationError as e:
                form.add_error(None, e)
            else:
                services.campaign_check_record(campaign=campaign, actor=request.user, outcome=check)
                _say_saved(request, "Campaign saved.", check)
                return redirect("campaigns:detail", pk=campaign.pk)
    return _form_page(request, form, title=f"Edit {campaign.name}", campaign=campaign, check=check)


@manage_campaigns
def campaign_controls(request, pk: int):
    campaign = _campaign(request, pk)
    initial = {field: getattr(campaign, field) for field in ControlsForm.base_fields}
    form = ControlsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.campaign_update(campaign=campaign, actor=request.user, **form.cleaned_data)
        except ValidationError as e:
            form.add_error(None, e)
        else:
            messages.success(request, "Spending controls saved.")
            return redirect("campaigns:detail", pk=campaign.pk)
    return render(request, "campaigns/controls.html", {"campaign": campaign, "form": form})


@manage_campaigns
@reauthentication_required
def campaign_passcode(request, pk: int):
    campaign = _campaign(request, pk)
    form = PasscodeForm(request.POST or None)
    check = None
    if request.method == "POST" and form.is_valid():
        passcode = form.cleaned_data["passcode"]
        check = services.campaign_check_changes(campaign=campaign, passcode=passcode)
        if not _check_blocks(request, check):
            services.campaign_passcode_replace(
                campaign=campaign, actor=request.user, passcode=passcode
            )
            services.campaign_check_record(campaign=campaign, actor=request.user, outcome=check)
            _say_saved(request, "Passcode replaced.", check)
            return redirect("campaigns:detail", pk=campaign.pk)
    return _form_page(
        request,
        form,
        title=f"Replace the passcode of {campaign.name}",
        campaign=campaign,
        check=check,
    )


@manage_campaigns
@require_POST
def campaign_check(request, pk: int):
    campaign = _campaign(request, pk)
    outcome = services.campaign_check(campaign=campaign, actor=request.user)
    if request.headers.get("HX-Request") == "true":
        # htmx from the campaign's page: its check card again and its history (out of band),
        # from the page's own fragments.
        history = selectors.campaign_history_in_words(campaign=campaign)
        context = {"campaign": campaign, "history": history, "oob": True}
        parts = ("campaigns/detail.html#connection_check", "campaigns/detail.html#history")
        return HttpResponse("".join(render_to_string(p, context, request) for p in parts))
    level = messages.SUCCESS if outcome.ok else messages.WARNING
    messages.add_message(request, level, f"Connection check: {outcome.verdict}: {outcome.message}")
    return _back(request, default=campaign)


@manage_campaigns
def campaign_disable(request, pk: int):
    """GET: what disabling stops, and a button; POST: disable."""
    campaign = _campaign(request, pk)
    if request.method == "POST":
        services.campaign_set_enabled(campaign=campaign, actor=request.user, enabled=False)
        messages.success(request, f"Campaign “{campaign.name}” disabled.")
        return _back(request, default=campaign)
    batches = selectors.campaign_unfinished_batches(campaign=campaign)
    return render(request, "campaigns/disable.html", {"campaign": campaign, "batches": batches})


@manage_campaigns
@require_POST
def campaign_enable(request, pk: int):
    campaign = _campaign(request, pk)
    services.campaign_set_enabled(campaign=campaign, actor=request.user, enabled=True)
    messages.success(request, f"Campaign “{campaign.name}” enabled.")
    return _back(request, default=campaign)


def _back(request, *, default: Campaign):
    """Back to the page the button was on, if it is one of ours (never an open redirect);
    else the campaign's page."""
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(back)
    return redirect("campaigns:detail", pk=default.pk)
