from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from campaigns import selectors, services
from campaigns.forms import CampaignCreateForm, CampaignForm, PasscodeForm
from campaigns.models import Campaign

manage_campaigns = permission_required("campaigns.manage_campaigns", raise_exception=True)


def _campaign(pk: int) -> Campaign:
    return get_object_or_404(Campaign.objects.defer("passcode"), pk=pk)


@manage_campaigns
def campaign_list(request):
    campaigns = selectors.campaigns_for_list()
    return render(request, "campaigns/list.html", {"campaigns": campaigns})


@manage_campaigns
def campaign_create(request):
    form = CampaignCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        campaign = services.campaign_create(actor=request.user, **form.cleaned_data)
        messages.success(request, f"Campaign “{campaign.name}” created.")
        return redirect("campaigns:detail", pk=campaign.pk)
    return render(request, "campaigns/form.html", {"form": form, "title": "New campaign"})


@manage_campaigns
def campaign_detail(request, pk: int):
    campaign = _campaign(pk)
    has_passcode = selectors.campaigns_for_list().get(pk=pk).has_passcode
    history = selectors.campaign_history(campaign=campaign)
    return render(
        request,
        "campaigns/detail.html",
        {"campaign": campaign, "has_passcode": has_passcode, "history": history},
    )


@manage_campaigns
def campaign_edit(request, pk: int):
    campaign = _campaign(pk)
    initial = {field: getattr(campaign, field) for field in services.EDITABLE_FIELDS}
    form = CampaignForm(request.POST or None, initial=initial, campaign=campaign)
    if request.method == "POST" and form.is_valid():
        try:
            services.campaign_update(campaign=campaign, actor=request.user, **form.cleaned_data)
        except ValidationError as e:
            form.add_error(None, e)
        else:
            messages.success(request, "Campaign saved.")
            return redirect("campaigns:detail", pk=campaign.pk)
    return render(request, "campaigns/form.html", {"form": form, "title": f"Edit {campaign.name}"})


@manage_campaigns
def campaign_passcode(request, pk: int):
    campaign = _campaign(pk)
    form = PasscodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.campaign_passcode_replace(
            campaign=campaign, actor=request.user, passcode=form.cleaned_data["passcode"]
        )
        messages.success(request, "Passcode replaced.")
        return redirect("campaigns:detail", pk=campaign.pk)
    return render(
        request,
        "campaigns/form.html",
        {"form": form, "title": f"Replace the passcode of {campaign.name}"},
    )


@manage_campaigns
@require_POST
def campaign_toggle(request, pk: int):
    campaign = _campaign(pk)
    services.campaign_set_enabled(
        campaign=campaign, actor=request.user, enabled=not campaign.enabled
    )
    state = "enabled" if campaign.enabled else "disabled"
    messages.success(request, f"Campaign “{campaign.name}” {state}.")
    # Back to the page the button was on, if it is one of ours: never an open redirect.
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(back)
    return redirect("campaigns:list")
