"""A person's own API keys, among their account's pages: the list, making one (after the
password again, as allauth asks before the gravest acts), and revoking one. Thin doors into
api.services; the admin's side of a person's keys is on the Team page (accounts/views/team.py).
"""

from __future__ import annotations

from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache

from api import selectors, services
from api.forms import ApiKeyForm
from api.models import ApiKey


@never_cache
def key_list(request: HttpRequest) -> HttpResponse:
    keys = selectors.api_keys_of(user=request.user)  # type: ignore[arg-type]
    return render(request, "api/keys.html", {"keys": keys})


@reauthentication_required
@never_cache
def key_create(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            made = services.api_key_create(
                user=request.user,  # type: ignore[arg-type]
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_days=form.expires_days(),
                actor=request.user,  # type: ignore[arg-type]
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            # The one time the key is shown: the answer to the POST itself, never a redirect
            # (a URL), a message (stored in the session) or a log line, and never cached. A
            # reload asks to send the form again, which would make another key, not show this.
            return render(
                request, "api/key_made.html", {"api_key": made.api_key, "secret": made.secret}
            )
    return render(request, "api/key_form.html", {"form": form})


def key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks "are you sure?"; the POST revokes. Someone else's key is not found."""
    api_key = get_object_or_404(selectors.api_keys_of(user=request.user), pk=pk)  # type: ignore[arg-type]
    if request.method == "POST":
        revoked(request, api_key)
        return redirect("api_keys:list")
    return render(
        request,
        "api/key_revoke.html",
        {"api_key": api_key, "person": None},
    )


def revoked(request: HttpRequest, api_key: ApiKey) -> None:
    """Revoke it for whoever asks (the key's person, or an admin) and say so."""
    if services.api_key_revoke(api_key=api_key, actor=request.user):  # type: ignore[arg-type]
        messages.success(request, f"The key {api_key.name} ({api_key.prefix}…) is revoked.")
    else:
        messages.info(request, f"The key {api_key.name} ({api_key.prefix}…) was already revoked.")
