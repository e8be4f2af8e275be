"""The notices page (everyone signed in) and their choices of notices and time zone."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.models import Profile
from accounts.services import profile_update
from notices import selectors, services
from notices.forms import NoticeSettingsForm
from notices.models import Kind

PER_PAGE = 30


def notice_list(request: HttpRequest) -> HttpResponse:
    """The person's notices, newest first. Opening the page reads them all: the page still
    marks those that were unread until now."""
    page = Paginator(selectors.notices_of(user=request.user), PER_PAGE).get_page(  # type: ignore[arg-type]
        request.GET.get("page")
    )
    notices = list(page)
    services.notices_mark_read(user=request.user)  # type: ignore[arg-type]
    return render(request, "notices/list.html", {"page": page, "notices": notices})


def notice_settings(request: HttpRequest) -> HttpResponse:
    profile = Profile.objects.filter(user=request.user).first()  # type: ignore[misc]
    off = set(profile.notices_off if profile else [])
    initial = {
        "notices_on": [kind for kind in Kind.values if kind not in off],
        "time_zone": profile.time_zone if profile else "",
    }
    form = NoticeSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        profile_update(
            user=request.user,  # type: ignore[arg-type]
            time_zone=form.cleaned_data["time_zone"],
            notices_off=form.notices_off(),
        )
        messages.success(request, "Your notices and time zone are saved.")
        return redirect("notices:settings")
    return render(request, "notices/settings.html", {"form": form})
