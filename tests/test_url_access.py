"""Every URL of the project, visited as each role and as an anonymous visitor.

The URLs are read from the URL configuration itself, so a new one is caught: its name must be
added to ACCESS below (one line), saying who may open it. Who is not listed gets 403; an
anonymous visitor is sent to the login page, unless ANONYMOUS is listed.

How each URL is visited:
- method "GET" (default): allowed visitors get `ok` (200 unless said otherwise).
- method "POST" (views that only act, behind @require_POST): allowed visitors get 405 to a GET,
  and `ok` to an empty POST; the others get 403 to the POST (the permission, not the missing
  method, must stop them). The test client sends no CSRF token and needs none.
Path parameters: `kwargs` of the rule; a Made value stands for an object the `made` fixture
creates (add yours there), anything else is used as it is.

Per-campaign access: every visitor with a role is given one campaign, the one the `made`
objects are on (an admin sees every campaign whatever they are given). A URL whose objects
live on a campaign (ON_A_CAMPAIGN) is visited a second time with the same objects made on
another campaign, given to no one: an admin gets `ok` again, the others the rule allows get 404
(never 403: that would confirm the object exists), and the rest are refused as before. The
lists, counts and files that must leave the other campaign's rows out are visited in
test_no_page_shows_the_other_campaign below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from api.services import api_key_create
from campaigns.models import CampaignAccess
from campaigns.services import campaign_create
from rewards.models import Batch, MirroredReward, Send
from sandbox.models import SandboxCampaign, SandboxReward

ANONYMOUS = "anonymous"
ADMIN, MARKETER, MANAGER, OUTSIDER = "admin", "marketer", "manager", "outsider"
ROLES = (ADMIN, MARKETER, MANAGER, OUTSIDER)
EVERYONE = (ANONYMOUS, *ROLES)
# The roles that send rewards, and those that browse and report. Admin is in both.
SENDERS = (ADMIN, MARKETER)
READERS = (ADMIN, MANAGER)


class Made(NamedTuple):
    """A path parameter taken from an object of the `made` fixture: made[name].<attribute>."""

    name: str
    attribute: str = "pk"

    def elsewhere(self) -> Made:
        """The same object made on the campaign no visitor was given."""
        return Made(f"other_{self.name}", self.attribute)


CAMPAIGN = Made("campaign")
BATCH = Made("batch")
SANDBOX_REWARD = Made("sandbox_reward", "remote_id")
MIRRORED_REWARD = Made("mirrored_reward")
WEBHOOK = Made("webhook")
DELIVERY = Made("delivery")
# The objects that belong to a campaign: their URLs are visited on the other campaign too.
ON_A_CAMPAIGN = {CAMPAIGN, BATCH, MIRRORED_REWARD}


@dataclass(frozen=True)
class Rule:
    allowed: tuple[str, ...]
    method: str = "GET"
    ok: int = 200
    kwargs: dict = field(default_factory=dict)
    # For the pages of signing in, which answer an anonymous visitor and a signed-in person
    # differently (the login page sends a signed-in person on): the anonymous visitor's status.
    anonymous_ok: int | None = None
    # The admin's status where it differs: the admin of the cast has two-factor sign-in set up.
    admin_ok: int | None = None

    def ok_for(self, who: str) -> int:
        if who == ANONYMOUS and self.anonymous_ok is not None:
            return self.anonymous_ok
        if who == ADMIN and self.admin_ok is not None:
            return self.admin_ok
        return self.ok


def rule(
    *allowed: str,
    method: str = "GET",
    ok: int = 200,
    anonymous_ok: int | None = None,
    admin_ok: int | None = None,
    **kwargs,
) -> Rule:
    return Rule(
        allowed=allowed,
        method=method,
        ok=ok,
        kwargs=kwargs,
        anonymous_ok=anonymous_ok,
        admin_ok=admin_ok,
    )


# One line per URL name: who may open it, and how it answers them.
ACCESS: dict[str, Rule] = {
    # --- mokudash ---
    "home": rule(*ROLES),
    # The old address of the login page: to allauth's.
    "login": rule(*EVERYONE, ok=302),
    # --- accounts: django-allauth's pages (accounts/), open to anyone signed in ---
    # A signed-in person is sent on to the overview.
    "account_login": rule(*EVERYONE, ok=302, anonymous_ok=200),
    # GET asks "are you sure?"; the POST logs out. Nobody signed in: to the login page.
    "account_logout": rule(*EVERYONE, anonymous_ok=302),
    # No one signs up: the page says so.
    "account_signup": rule(*EVERYONE, ok=302, anonymous_ok=200),
    "account_inactive": rule(*EVERYONE),
    "account_reset_password": rule(*EVERYONE),
    "account_reset_password_done": rule(*EVERYONE),
    "account_reset_password_from_key": rule(*EVERYONE, uidb36="0", key="x-y"),
    "account_reset_password_from_key_done": rule(*EVERYONE),
    "account_email_verification_sent": rule(*EVERYONE),
    "account_confirm_email": rule(*EVERYONE, key="no-such-key"),
    # Codes by mail are off: nobody is waiting for one, back to where one would start.
    "account_confirm_login_code": rule(*EVERYONE, ok=302),
    "account_request_reauthentication_code": rule(*ROLES, ok=302),
    "account_confirm_reauthentication_code": rule(*ROLES, ok=302),
    "account_reauthenticate": rule(*ROLES),
    "account_email": rule(*ROLES),
    "account_change_password": rule(*ROLES),
    # A person with a password is sent on to change it.
    "account_set_password": rule(*ROLES, ok=302),
    "mfa_index": rule(*ROLES),
    # Nobody is signing in half-way: back to the login page.
    "mfa_authenticate": rule(*EVERYONE, ok=302),
    # With no authenticator, a person re-authenticates with their password instead.
    "mfa_reauthenticate": rule(*ROLES, ok=302, admin_ok=200),
    # Setting two-factor up asks for the password again first (force_login signed in no one
    # by password); with none set up, there is nothing to remove or show.
    "mfa_activate_totp": rule(*ROLES, ok=302),
    # The admin's own may not be removed (Admins must keep it): after the password, refused.
    "mfa_deactivate_totp": rule(*ROLES, ok=404, admin_ok=302),
    "mfa_view_recovery_codes": rule(*ROLES, ok=404),
    "mfa_generate_recovery_codes": rule(*ROLES, ok=302),
    "mfa_download_recovery_codes": rule(*ROLES, ok=404),
    "usersessions_list": rule(*ROLES),
    # Browsers ask for it whatever the page says: a redirect to the static SVG icon.
    "favicon": rule(*EVERYONE, ok=302),
    # --- campaigns: admins only ---
    "campaigns:list": rule(ADMIN),
    # Adding a campaign and replacing a passcode ask for the password again first.
    "campaigns:create": rule(ADMIN, ok=302),
    "campaigns:detail": rule(ADMIN, pk=CAMPAIGN),
    "campaigns:edit": rule(ADMIN, pk=CAMPAIGN),
    "campaigns:controls": rule(ADMIN, pk=CAMPAIGN),
    "campaigns:passcode": rule(ADMIN, ok=302, pk=CAMPAIGN),
    # The check asks the sandbox URL of the settings; whatever it answers, back to the page.
    "campaigns:check": rule(ADMIN, method="POST", ok=302, pk=CAMPAIGN),
    # GET: what disabling stops, and the button; its POST is tested in test_campaign_pages.
    "campaigns:disable": rule(ADMIN, pk=CAMPAIGN),
    "campaigns:enable": rule(ADMIN, method="POST", ok=302, pk=CAMPAIGN),
    # --- audit: the trail (admins) ---
    "audit:list": rule(ADMIN),
    "audit:csv": rule(ADMIN),
    # --- accounts: the team (admins) and the invitations' links (anyone) ---
    "accounts:team": rule(ADMIN),
    # Inviting, and changing a role or campaigns, ask for the password again first.
    "accounts:invite": rule(ADMIN, ok=302),
    "accounts:invitation_withdraw": rule(ADMIN, method="POST", ok=404, pk=0),
    "accounts:person": rule(ADMIN, pk=Made("marketer_user")),
    "accounts:person_role": rule(ADMIN, method="POST", ok=302, pk=Made("marketer_user")),
    "accounts:person_campaigns": rule(ADMIN, method="POST", ok=302, pk=Made("marketer_user")),
    "accounts:person_deactivate": rule(ADMIN, pk=Made("marketer_user")),
    "accounts:person_reactivate": rule(ADMIN, method="POST", ok=302, pk=Made("marketer_user")),
    "accounts:person_key_revoke": rule(
        ADMIN, pk=Made("marketer_user"), key_pk=Made("marketer_api_key")
    ),
    "accounts:invitation_accept": rule(*EVERYONE, ok=404, token="no-such-invitation"),
    # A developer's machine only (DJANGO_DEBUG): the mails sent, for anyone who can reach it.
    "dev_outbox": rule(*EVERYONE),
    # --- notices: each person's own, and their choices ---
    "notices:list": rule(*ROLES),
    # The API's document and its page are public, as its reference; its operations answer
    # keys, not sessions, and tests/api visits them as each role's key (API_OPERATIONS).
    "api:openapi-json": rule(*EVERYONE),
    "api:openapi-view": rule(*EVERYONE),
    "notices:settings": rule(*ROLES),
    # --- API keys: each person's own, among their account's pages ---
    "api_keys:list": rule(*ROLES),
    # Making one asks for the password again first.
    "api_keys:create": rule(*ROLES, ok=302),
    # A key of no one's: not found. Only one's own is found (tests/api/test_key_pages.py).
    "api_keys:revoke": rule(*ROLES, ok=404, pk=0),
    # --- rewards: sending (Marketing, Admin) ---
    "rewards:send": rule(*SENDERS),
    "rewards:send_one": rule(*SENDERS, method="POST"),  # an empty form comes back with errors
    "rewards:send_upload": rule(*SENDERS, method="POST"),
    # An upload token this visitor never made: back to the send page, or not found.
    "rewards:send_preview": rule(*SENDERS, ok=302, token="no-such-upload"),
    "rewards:send_problems_csv": rule(*SENDERS, ok=404, token="no-such-upload"),
    "rewards:send_template": rule(*SENDERS, mode="email"),
    "rewards:send_template_xlsx": rule(*SENDERS, mode="email"),
    # Reading an upload again: gone (or never made) is "upload it again", on the send page.
    "rewards:send_reread": rule(*SENDERS, method="POST", ok=302, token="no-such-upload"),
    # Managers read batches too: they approve them (and steer none).
    "rewards:batch_list": rule(*SENDERS, MANAGER),
    "rewards:batch_detail": rule(*SENDERS, MANAGER, pk=BATCH),
    "rewards:batch_status": rule(*SENDERS, MANAGER, pk=BATCH),
    "rewards:approval_list": rule(*READERS),
    # Not awaiting approval (nor scheduled): said so, and back to the batch.
    "rewards:batch_approve": rule(*READERS, method="POST", ok=302, pk=BATCH),
    "rewards:batch_decline": rule(*READERS, method="POST", ok=302, pk=BATCH),
    "rewards:batch_reschedule": rule(*SENDERS, method="POST", ok=302, pk=BATCH),
    "rewards:batch_results_csv": rule(*SENDERS, pk=BATCH),
    "rewards:batch_cancel": rule(*SENDERS, method="POST", ok=302, pk=BATCH),
    "rewards:batch_resume": rule(*SENDERS, method="POST", ok=302, pk=BATCH),
    "rewards:batch_retry_failed": rule(*SENDERS, method="POST", ok=302, pk=BATCH),
    "rewards:batch_unknown_check": rule(*SENDERS, method="POST", ok=302, pk=BATCH),
    "rewards:batch_unknown_decide": rule(*SENDERS, method="POST", ok=302, pk=BATCH),
    "rewards:paid_twice": rule(*SENDERS, MANAGER),
    # --- rewards: browsing, reports, export (Manager, Admin) ---
    "rewards:list": rule(*READERS),
    "rewards:list_csv": rule(*READERS),
    "rewards:reward_detail": rule(*READERS, pk=MIRRORED_REWARD),
    "rewards:sync_refresh": rule(*READERS, method="POST", ok=302),
    "rewards:sync_status": rule(*READERS),
    "rewards:report": rule(*READERS),
    "rewards:report_csv": rule(*READERS),
    "rewards:report_xlsx": rule(*READERS),
    # --- sandbox: an API for API clients, open to all (the passcode is its credential) ---
    # A GET to a create call is the API's own error 100, in a 200 answer, as Mokugift does.
    "sandbox:api_create": rule(*EVERYONE, call="reward", campaign_id="c-1"),
    "sandbox:api_query": rule(*EVERYONE, call="all_rewards", tail="c-1"),
    "sandbox:reward_page": rule(*EVERYONE, remote_id=SANDBOX_REWARD),
    # --- webhooks (Admin); adding and rotating ask for the password again first ---
    "webhooks:list": rule(ADMIN),
    "webhooks:create": rule(ADMIN, ok=302),
    "webhooks:detail": rule(ADMIN, pk=WEBHOOK),
    "webhooks:edit": rule(ADMIN, pk=WEBHOOK),
    "webhooks:remove": rule(ADMIN, pk=WEBHOOK),
    "webhooks:rotate": rule(ADMIN, ok=302, pk=WEBHOOK),
    "webhooks:send_again": rule(ADMIN, method="POST", ok=302, pk=DELIVERY),
}

# Django's admin has its own login and lets in staff only (nobody of the cast is staff). Its
# dozens of URLs are its own business; we check that its front door sends everyone to its login.
DJANGO_ADMIN_NAMESPACE = "admin"


def url_names() -> list[str]:
    """Every URL name of the project, namespaced ("campaigns:list"); unnamed ones show a route."""
    names: list[str] = []

    def walk(patterns, namespace: str, route: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = pattern.namespace
                if inner == DJANGO_ADMIN_NAMESPACE:
                    continue
                walk(
                    pattern.url_patterns,
                    f"{namespace}{inner}:" if inner else namespace,
                    route + str(pattern.pattern),
                )
            elif isinstance(pattern, URLPattern):
                if namespace == "api:" and f"api:{pattern.name}" not in ACCESS:
                    continue
                if pattern.name:
                    names.append(f"{namespace}{pattern.name}")
                else:
                    names.append(f"<unnamed {route}{pattern.pattern}>")

    walk(get_resolver().url_patterns, "", "/")
    return names


def _missing_message(name: str) -> str:
    if name.startswith("<unnamed"):
        return f"The URL {name} has no name: give it one, then add it to ACCESS in {__file__}."
    return (
        f"The URL {name!r} is not in ACCESS in {__file__}. Add one line saying who may open it, "
        f'e.g.\n    "{name}": rule(ADMIN),\nor rule(*SENDERS, method="POST", ok=302, pk=BATCH) '
        "for an action (see the top of the file)."
    )


# The campaign no visitor was given, by a name no page shows unless it shows that campaign.
OTHER_CAMPAIGN_NAME = "Elsewhere-Autumn"


def _on_a_campaign(admin_user, marketer, *, name: str, campaign_id: str, remote_id: str) -> dict:
    """A campaign, a batch of it (the marketer's: its creator may cancel, resume, retry), a sent
    row of it paid twice, and a mirrored reward of it."""
    campaign = campaign_create(
        actor=admin_user,
        name=name,
        campaign_id=campaign_id,
        environment="sandbox",
        passcode="not-a-real-passcode",
    )
    batch = Batch.objects.create(
        campaign=campaign, mode="email", source=Batch.Source.SINGLE, created_by=marketer
    )
    send = Send.objects.create(
        batch=batch,
        row_number=1,
        recipient=f"{remote_id}@example.com",
        state=Send.State.SENT,
        remote_id=remote_id,
        sent_at="2026-01-15T10:00:00Z",
        paid_twice_at="2026-01-15T11:00:00Z",
    )
    mirrored_reward = MirroredReward.objects.create(
        campaign=campaign,
        remote_id=remote_id,
        recipient_email=f"{remote_id}@example.com",
        date="2026-01-15T10:00:00Z",
        first_seen_at="2026-01-15T10:00:00Z",
        last_seen_at="2026-01-15T10:00:00Z",
        send=send,
    )
    return {"campaign": campaign, "batch": batch, "mirrored_reward": mirrored_reward}


@pytest.fixture
def made(admin_user, marketer):
    own = _on_a_campaign(
        admin_user, marketer, name="Spring", campaign_id="spring-1", remote_id="r-access-1"
    )
    other = _on_a_campaign(
        admin_user,
        marketer,
        name=OTHER_CAMPAIGN_NAME,
        campaign_id="autumn-1",
        remote_id="r-elsewhere-1",
    )
    sandbox_campaign = SandboxCampaign.objects.create(campaign_id="c-1", passcode_hash="x$y")
    sandbox_reward = SandboxReward.objects.create(
        campaign=sandbox_campaign,
        remote_id="r-access-1",
        transaction_id="t-1",
        recipient_email="ann@example.com",
        created="2026-01-15T10:00:00Z",
        tree_count=1,
        url="http://testserver/sandbox/rewards/r-access-1/",
    )
    return {
        **own,
        **{f"other_{name}": value for name, value in other.items()},
        "sandbox_reward": sandbox_reward,
        # A person of the team, for the Team page's URLs.
        "marketer_user": marketer,
        # A key of theirs, for its row and its revoking on their Team page.
        "marketer_api_key": api_key_create(user=marketer, name="CRM", scopes="read").api_key,
        **_webhook(),
    }


def _webhook() -> dict:
    from webhooks.models import Delivery, Endpoint

    webhook = Endpoint.objects.create(url="https://93.184.216.34/", events=[], secret="whsec_x")
    delivery = Delivery.objects.create(
        endpoint=webhook, event="batch.paused", message_id="msg_1", payload={}
    )
    return {"webhook": webhook, "delivery": delivery}


@pytest.fixture
def visitors(cast, made) -> dict[str, Client]:
    """A client per visitor; each person of the cast is given the `made` campaign alone."""
    clients = {ANONYMOUS: Client()}
    for role, user in cast.items():
        access = CampaignAccess.objects.create(user=user, all_campaigns=False)
        access.campaigns.add(made["campaign"])
        clients[role] = Client()
        clients[role].force_login(
            user, backend="allauth.account.auth_backends.AuthenticationBackend"
        )
    return clients


def _url(name: str, rule_: Rule, made: dict, *, elsewhere: bool = False) -> str:
    def value_of(value):
        if not isinstance(value, Made):
            return value
        if elsewhere and value in ON_A_CAMPAIGN:
            value = value.elsewhere()
        return getattr(made[value.name], value.attribute)

    return reverse(name, kwargs={key: value_of(value) for key, value in rule_.kwargs.items()})


def _on_a_campaign_rule(rule_: Rule) -> bool:
    return any(value in ON_A_CAMPAIGN for value in rule_.kwargs.values())


def _is_login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


@pytest.mark.django_db
@pytest.mark.parametrize("name", url_names())
def test_each_url_answers_each_visitor_as_its_access_rule_says(name, visitors, made):
    if name not in ACCESS:
        pytest.fail(_missing_message(name))
    rule_ = ACCESS[name]
    url = _url(name, rule_, made)
    wrong = []
    for who, client in visitors.items():
        allowed = who in rule_.allowed
        # The GET first: the POST may end the session (logout).
        if allowed and rule_.method == "POST" and (get := client.get(url).status_code) != 405:
            wrong.append(f"{who}: GET gave {get}, expected 405 (POST only)")
        answer = client.post(url) if rule_.method == "POST" else client.get(url)
        status = answer.status_code
        if allowed:
            if status != rule_.ok_for(who):
                wrong.append(f"{who}: {rule_.method} gave {status}, expected {rule_.ok_for(who)}")
        elif who == ANONYMOUS:
            if not _is_login_redirect(answer):
                wrong.append(f"{who}: {rule_.method} gave {status}, expected the login redirect")
        elif status != 403:
            wrong.append(f"{who}: {rule_.method} gave {status}, expected 403")
    assert not wrong, f"{name} ({url}):\n" + "\n".join(wrong)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", [name for name in url_names() if name in ACCESS and _on_a_campaign_rule(ACCESS[name])]
)
def test_each_url_of_an_object_on_the_other_campaign_is_not_found_but_by_an_admin(
    name, visitors, made
):
    rule_ = ACCESS[name]
    url = _url(name, rule_, made, elsewhere=True)
    wrong = []
    for who, client in visitors.items():
        answer = client.post(url) if rule_.method == "POST" else client.get(url)
        status = answer.status_code
        if who == ADMIN:
            expected = rule_.ok
        elif who in rule_.allowed:
            expected = 404
        elif who == ANONYMOUS:
            if not _is_login_redirect(answer):
                wrong.append(f"{who}: {rule_.method} gave {status}, expected the login redirect")
            continue
        else:
            expected = 403
        if status != expected:
            wrong.append(f"{who}: {rule_.method} gave {status}, expected {expected}")
    assert not wrong, f"{name} on the other campaign ({url}):\n" + "\n".join(wrong)


def _body(answer) -> str:
    if answer.streaming:
        return b"".join(answer.streaming_content).decode("utf-8", "replace")
    return answer.content.decode("utf-8", "replace")


# The pages, lists, counts and files that name campaigns or hold their rows: what the other
# campaign has must not be on them, by its name or its recipients, for a visitor not given it.
LISTS = {
    "home": {},
    "campaigns:list": {},
    "rewards:send": {},
    "rewards:batch_list": {},
    "rewards:paid_twice": {},
    "rewards:list": {},
    "rewards:list_csv": {},
    "rewards:sync_status": {},
    "rewards:report": {"year": "2026"},
    "rewards:report_csv": {"year": "2026", "table": "campaigns"},
    "rewards:report_xlsx": {"year": "2026"},
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(LISTS))
def test_no_page_shows_the_other_campaign(name, visitors, made):
    from rewards.models import SyncRun

    for campaign in (made["campaign"], made["other_campaign"]):
        SyncRun.objects.create(campaign=campaign, outcome=SyncRun.Outcome.FAILED, error="x")
    url = reverse(name)
    marks = (OTHER_CAMPAIGN_NAME, "r-elsewhere-1")
    for who in ROLES:
        if who not in ACCESS[name].allowed:
            continue
        answer = visitors[who].get(url, LISTS[name])
        assert answer.status_code == 200, (who, answer.status_code)
        if name == "rewards:report_xlsx":
            continue  # a zip: its figures are checked through report_csv, the same report
        body = _body(answer)
        if who == ADMIN:
            # The admin sees every campaign: the page is one that would show it.
            assert OTHER_CAMPAIGN_NAME in body, name
        else:
            assert not [m for m in marks if m in body], f"{who} sees the other campaign on {url}"


def test_every_name_in_the_access_rules_is_still_a_url():
    expected = set(ACCESS)
    if not settings.SANDBOX_ENABLED:  # production settings serve no sandbox
        expected = {name for name in expected if not name.startswith("sandbox:")}
    if not settings.DEVELOPMENT:  # nor the outbox of a developer's machine
        expected.discard("dev_outbox")
    stale = sorted(expected - set(url_names()))
    assert not stale, f"These names in ACCESS are no URL any more, remove them: {stale}"


def test_the_url_list_is_read_from_the_configuration():
    names = url_names()
    assert {"home", "login", "campaigns:list", "campaigns:disable"} <= set(names)
    assert len(names) == len(set(names)), "two URLs share a name"


@pytest.mark.django_db
def test_the_django_admin_sends_everyone_but_staff_to_its_own_login(visitors):
    admin_login = reverse("admin:login")
    for who, client in visitors.items():
        answer = client.get(reverse("admin:index"))
        assert answer.status_code == 302, who
        assert answer["Location"].startswith(admin_login), who
