"""templates/includes/_form.html: what Django's fields point at (aria-describedby) is there."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.conftest import reauthenticate

IDREF = re.compile(r'aria-describedby="([^"]+)"')


def _missing_ids(html: str) -> list[str]:
    return [
        name
        for names in IDREF.findall(html)
        for name in names.split()
        if f'id="{name}"' not in html
    ]


@pytest.mark.django_db
def test_a_field_s_help_and_errors_have_the_ids_its_aria_describedby_names(client, admin_user):
    client.force_login(admin_user, backend="allauth.account.auth_backends.AuthenticationBackend")
    reauthenticate(client)
    html = client.post(reverse("campaigns:create"), {"name": ""}).content.decode()
    assert 'aria-invalid="true"' in html, "the form was not refused: nothing to check"
    assert IDREF.search(html), "no field names its help or its errors"
    assert not _missing_ids(html)
    # One error block per field, the id once.
    assert html.count('id="id_name_error"') == 1


@pytest.mark.django_db
def test_the_login_form_s_fields_point_at_nothing_missing(client):
    html = client.post(
        reverse("account_login"), {"login": "nobody", "password": "x"}
    ).content.decode()
    assert not _missing_ids(html)
