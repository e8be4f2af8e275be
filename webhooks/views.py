"""The admins' pages of the webhooks: thin doors into webhooks.services."""

from __future__ import annotations

from typing import Any

from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from webhooks import selectors, services
from webhooks.forms import EndpointForm
from webhooks.models import Delivery, Endpoint, Event

# Admins only, as the campaigns and the team: an endpoint receives what happens to every batch.
manage_webhooks = permission_required("campaigns.manage_campaigns", raise_exception=True)


def _secret_page(request, made: services.EndpointWithSecret, *, title: str):
    # The one time the secret is shown: the answer to the POST itself, never stored in a session
    # or a message, and never cached (never_cache on the views).
    return render(
        request,
        "webhooks/secret.html",
        {"endpoint": made.endpoint, "secret": made.secret, "title": title},
    )


def _save(request, form: EndpointForm, save) -> Any:
    if request.method == "POST" and form.is_valid():
        try:
            return save(**form.cleaned_data)
        except ValidationError as error:
            form.add_error("url", error)
    return None


@manage_webhooks
def endpoint_list(request):
    endpoints = selectors.endpoints_for_list()
    return render(request, "webhooks/list.html", {"endpoints": endpoints, "events": Event})


@manage_webhooks
@reauthentication_required
@never_cache
def endpoint_create(request):
    form = EndpointForm(request.POST or None)
    made = _save(
        request,
        form,
        lambda **data: services.endpoint_create(actor=request.user, **data),
    )
    if made is not None:
        return _secret_page(request, made, title="Endpoint added")
    return render(request, "webhooks/form.html", {"form": form, "title": "New endpoint"})


@manage_webhooks
def endpoint_edit(request, pk: int):
    endpoint = get_object_or_404(Endpoint, pk=pk)
    initial = {
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events,
        "enabled": endpoint.enabled,
    }
    form = EndpointForm(request.POST or None, initial=initial)
    saved = _save(
        request,
        form,
        lambda **data: services.endpoint_update(endpoint=endpoint, actor=request.user, **data),
    )
    if saved is not None:
        messages.success(request, "Endpoint saved.")
        return redirect("webhooks:detail", pk=endpoint.pk)
    return render(
        request,
        "webhooks/form.html",
        {"form": form, "title": "Edit endpoint", "endpoint": endpoint},
    )


@manage_webhooks
def endpoint_remove(request, pk: int):
    endpoint = get_object_or_404(Endpoint, pk=pk)
    if request.method == "POST":
        services.endpoint_remove(endpoint=endpoint, actor=request.user)
        messages.success(request, f"Endpoint {endpoint.url} removed.")
        return redirect("webhooks:list")
    return render(request, "webhooks/confirm.html", {"endpoint": endpoint, "act": "remove"})


@manage_webhooks
@reauthentication_required
@never_cache
def endpoint_rotate(request, pk: int):
    endpoint = get_object_or_404(Endpoint, pk=pk)
    if request.method == "POST":
        made = services.endpoint_secret_rotate(endpoint=endpoint, actor=request.user)
        return _secret_page(request, made, title="Secret rotated")
    return render(
        request,
        "webhooks/confirm.html",
        {
            "endpoint": endpoint,
            "act": "rotate",
            "overlap_hours": settings.WEBHOOK_SECRET_OVERLAP_HOURS,
        },
    )


@manage_webhooks
def endpoint_detail(request, pk: int):
    endpoint = get_object_or_404(Endpoint.objects.defer("secret", "previous_secret"), pk=pk)
    page = Paginator(selectors.endpoint_deliveries(endpoint=endpoint), 50).get_page(
        request.GET.get("page")
    )
    return render(
        request, "webhooks/detail.html", {"endpoint": endpoint, "page": page, "deliveries": page}
    )


@manage_webhooks
@require_POST
def delivery_send_again(request, pk: int):
    delivery = get_object_or_404(Delivery, pk=pk)
    services.delivery_send_again(delivery=delivery, actor=request.user)
    messages.success(request, f"Delivery {delivery.message_id} queued to be sent again.")
    return redirect("webhooks:detail", pk=delivery.endpoint_id)
