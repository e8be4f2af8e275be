"""The Team page (admins): everyone, invitations, roles, campaigns, deactivation; and the
invitation's own page, where an invited person chooses a username and password."""

from __future__ import annotations

from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.forms import CampaignChoiceForm, InvitationAcceptForm, InviteForm, RoleForm
from accounts.models import Invitation
from api.selectors import api_keys_of
from api.views import revoked

manage_team = permission_required("campaigns.manage_campaigns", raise_exception=True)


def _site_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/")


@manage_team
def team_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    page = Paginator(selectors.team_people(search=search), 50).get_page(request.GET.get("page"))
    for person in page:
        person.role = services.person_role_of(person)  # type: ignore[attr-defined]
    return render(
        request,
        "accounts/team.html",
        {
            "page": page,
            "search": search,
            "query": urlencode({"q": search}) if search else "",
            "invitations": selectors.invitations_pending(),
            "form": InviteForm(),
        },
    )


@manage_team
@reauthentication_required
def team_invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.person_invite(
                actor=request.user,  # type: ignore[arg-type]
                email=data["email"],
                role=data["role"],
                all_campaigns=data["all_campaigns"],
                campaigns=data["campaigns"],
                site_url=_site_url(request),
                request=request,
            )
        except services.TeamRefused as refused:
            form.add_error(None, str(refused))
        else:
            messages.success(
                request, f"Invitation sent to {data['email']}. The link works for 3 days."
            )
            return redirect("accounts:team")
    return render(request, "accounts/invite.html", {"form": form})


@manage_team
@require_POST
def invitation_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=pk)
    services.invitation_withdraw(actor=request.user, invitation=invitation, request=request)  # type: ignore[arg-type]
    messages.success(request, f"The invitation of {invitation.email} is withdrawn.")
    return redirect("accounts:team")


@manage_team
def person_detail(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(selectors.team_people(), pk=pk)
    access = getattr(person, "campaign_access", None)
    role = services.person_role_of(person)
    return render(
        request,
        "accounts/person.html",
        {
            "person": person,
            "role": role,
            "role_form": RoleForm(initial={"role": role}),
            "campaign_form": CampaignChoiceForm(
                initial={
                    "all_campaigns": access.all_campaigns if access else True,
                    "campaigns": list(access.campaigns.all()) if access else [],
                }
            ),
            "api_keys": api_keys_of(user=person),
        },
    )


@manage_team
def person_key_revoke(request: HttpRequest, pk: int, key_pk: int) -> HttpResponse:
    """An admin revokes a person's API key (a leak, a person leaving a project). GET asks
    "are you sure?"; the POST revokes."""
    person = get_object_or_404(User, pk=pk)
    api_key = get_object_or_404(api_keys_of(user=person), pk=key_pk)
    if request.method == "POST":
        revoked(request, api_key)
        return redirect(reverse("accounts:person", args=[pk]) + "#api-keys")
    return render(request, "api/key_revoke.html", {"api_key": api_key, "person": person})


def _act(request: HttpRequest, pk: int, act) -> HttpResponse:
    person = get_object_or_404(User, pk=pk)
    try:
        said = act(person)
    except services.TeamRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, said)
    return redirect("accounts:person", pk=pk)


@manage_team
@require_POST
@reauthentication_required
def person_role(request: HttpRequest, pk: int) -> HttpResponse:
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role.")
        return redirect("accounts:person", pk=pk)
    role = form.cleaned_data["role"]

    def act(person: User) -> str:
        services.person_role_set(actor=request.user, person=person, role=role, request=request)  # type: ignore[arg-type]
        return f"{person.get_username()} is now {role}."

    return _act(request, pk, act)


@manage_team
@require_POST
@reauthentication_required
def person_campaigns(request: HttpRequest, pk: int) -> HttpResponse:
    form = CampaignChoiceForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(map(str, form.non_field_errors())) or "Choose campaigns.")
        return redirect("accounts:person", pk=pk)

    def act(person: User) -> str:
        services.person_campaigns_set(
            actor=request.user,  # type: ignore[arg-type]
            person=person,
            all_campaigns=form.cleaned_data["all_campaigns"],
            campaigns=form.cleaned_data["campaigns"],
            request=request,
        )
        return f"The campaigns of {person.get_username()} are saved."

    return _act(request, pk, act)


@manage_team
def person_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(User, pk=pk)
    if request.method != "POST":
        return render(request, "accounts/deactivate.html", {"person": person})

    def act(person: User) -> str:
        services.person_deactivate(actor=request.user, person=person, request=request)  # type: ignore[arg-type]
        return f"{person.get_username()} is deactivated, and signed out everywhere."

    return _act(request, pk, act)


@manage_team
@require_POST
def person_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    def act(person: User) -> str:
        services.person_reactivate(actor=request.user, person=person, request=request)  # type: ignore[arg-type]
        return f"{person.get_username()} is active again."

    return _act(request, pk, act)


@login_not_required
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_find(token=token)
    refusal = services.invitation_refusal(invitation)
    if refusal or invitation is None:
        return render(
            request,
            "accounts/invitation.html",
            {"refusal": refusal},
            status=410 if invitation else 404,
        )
    initial = {"username": invitation.email.split("@")[0]}
    form = InvitationAcceptForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.invitation_accept(
                token=token,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                request=request,
            )
        except services.TeamRefused as refused:
            form.add_error(None, str(refused))
        else:
            messages.success(request, "Welcome to mokudash. Log in with your new password.")
            return redirect("account_login")
    return render(request, "accounts/invitation.html", {"invitation": invitation, "form": form})
