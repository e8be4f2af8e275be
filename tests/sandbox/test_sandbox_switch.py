"""The sandbox is for development and tests: a setting switches it off."""

from __future__ import annotations

import importlib
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.urls import clear_url_caches

import mokudash.urls
from sandbox.services import sandbox_campaign_save
from tests.conftest import totp_activate


def _serves_sandbox(patterns) -> bool:
    return any(str(p.pattern) == "sandbox/" for p in patterns)


def test_the_sandbox_is_not_served_when_switched_off():
    try:
        with override_settings(SANDBOX_ENABLED=False):
            off = importlib.reload(mokudash.urls).urlpatterns
        with override_settings(SANDBOX_ENABLED=True):
            on = importlib.reload(mokudash.urls).urlpatterns
    finally:
        importlib.reload(mokudash.urls)
        clear_url_caches()
    assert not _serves_sandbox(off)
    assert _serves_sandbox(on)


def test_sandbox_serve_refuses_to_start_when_switched_off(settings):
    settings.SANDBOX_ENABLED = False
    with pytest.raises(CommandError, match="SANDBOX_ENABLED"):
        call_command("sandbox_serve", "--port", "0", stdout=io.StringIO())


@pytest.mark.django_db
def test_the_admin_lists_sandbox_campaigns_and_rewards_without_the_passcode(
    client, django_user_model
):
    campaign = sandbox_campaign_save(campaign_id="c-1", passcode="pass-1")
    root = django_user_model.objects.create_superuser("root", "r@x.com", "pw")
    totp_activate(root)  # a superuser counts as an Admin, who must use two-factor sign-in
    client.force_login(root)

    listing = client.get("/django-admin/sandbox/sandboxcampaign/")
    change = client.get(f"/django-admin/sandbox/sandboxcampaign/{campaign.pk}/change/")

    assert listing.status_code == 200
    assert b"c-1" in listing.content
    assert change.status_code == 200
    assert campaign.passcode_hash.encode() not in change.content
    assert client.get("/django-admin/sandbox/sandboxreward/").status_code == 200
