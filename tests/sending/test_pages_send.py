"""The send page: one reward, and a CSV upload with its preview and confirmation."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.services import campaign_create, campaign_set_enabled
from rewards.models import Batch, Send
from tests.conftest import PASSWORD

SEND = reverse("rewards:send")
SEND_ONE = reverse("rewards:send_one")
UPLOAD = reverse("rewards:send_upload")


def one(campaign, **fields):
    data = {
        "one-campaign": campaign.pk,
        "one-mode": "email",
        "one-recipient": "sally@example.com",
        "one-name": "Sally Chan",
        "one-idempotency_key": "a" * 32,
    }
    data.update({f"one-{key}": value for key, value in fields.items()})
    return data


def upload(client, campaign, text: str | bytes, mode: str = "email", name: str = "list.csv"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = text.encode() if isinstance(text, str) else text
    return client.post(
        UPLOAD,
        {
            "bulk-campaign": campaign.pk,
            "bulk-mode": mode,
            "bulk-file": SimpleUploadedFile(name, data, content_type="text/csv"),
        },
    )


@pytest.fixture(autouse=True)
def uploads_dir(settings, tmp_path):
    settings.UPLOADS_DIR = tmp_path / "uploads"


# --- Who may -------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["manager", "outsider"])
def test_only_people_who_send_rewards_reach_the_send_pages(client, cast, campaign, who):
    client.force_login(cast[who])
    assert client.get(SEND).status_code == 403
    assert client.post(SEND_ONE, one(campaign)).status_code == 403
    assert upload(client, campaign, "email\na@example.com\n").status_code == 403
    assert Batch.objects.count() == 0


# --- One reward ----------------------------------------------------------------------------


def test_the_send_page_offers_only_the_enabled_campaigns(as_marketer, campaign):
    off = campaign_create(
        actor=None, name="Winter", campaign_id="winter", environment="sandbox", passcode="x"
    )
    campaign_set_enabled(campaign=off, actor=None, enabled=False)
    page = as_marketer.get(SEND).content.decode()
    assert "Spring" in page
    assert "Winter" not in page
    assert "Mokugift emails it" in page and "our recipient ID" in page


def test_the_send_page_says_what_to_do_when_no_campaign_is_enabled(as_marketer, db):
    page = as_marketer.get(SEND).content.decode()
    assert "No campaign is enabled" in page


def test_each_rendering_of_the_form_carries_a_fresh_idempotency_key(as_marketer, campaign):
    keys = [
        re.search(
            r'name="one-idempotency_key" value="([0-9a-f]{32})"',
            as_marketer.get(SEND).content.decode(),
        ).group(1)
        for _ in range(2)
    ]
    assert keys[0] != keys[1]


def test_one_reward_to_a_bad_address_is_refused_and_nothing_is_made(as_marketer, campaign):
    response = as_marketer.post(SEND_ONE, one(campaign, recipient="sally@"))
    assert response.status_code == 200
    assert "not a valid email address" in response.content.decode()
    assert Batch.objects.count() == 0


def test_one_reward_with_a_name_the_api_cannot_carry_is_refused(as_marketer, campaign):
    response = as_marketer.post(SEND_ONE, one(campaign, name="Chan, Sally"))
    assert "cannot carry" in response.content.decode()
    assert Batch.objects.count() == 0


def test_one_reward_from_a_disabled_campaign_is_refused(as_marketer, campaign):
    campaign_create(
        actor=None, name="Other", campaign_id="other", environment="sandbox", passcode="x"
    )
    campaign_set_enabled(campaign=campaign, actor=None, enabled=False)
    response = as_marketer.post(SEND_ONE, one(campaign))
    assert "Choose one of the enabled campaigns" in response.content.decode()
    assert Batch.objects.count() == 0


def test_sending_one_reward_makes_a_one_row_batch_and_opens_its_page(as_marketer, campaign):
    response = as_marketer.post(SEND_ONE, one(campaign, mode="link"))
    batch = Batch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("rewards:batch_detail", args=[batch.pk])
    assert (batch.source, batch.mode, batch.campaign_id) == ("single", "link", campaign.pk)
    assert list(batch.sends.values_list("row_number", "recipient", "name")) == [
        (1, "sally@example.com", "Sally Chan")
    ]
    page = as_marketer.get(response["Location"]).content.decode()
    assert "Reward to sally@example.com" in page
    # The reward's part of the live fragment, filled in as the worker makes it.
    assert 'id="single-state"' in page and 'id="single-remote-id"' in page


def test_a_double_submitted_form_makes_one_batch(as_marketer, campaign):
    first = as_marketer.post(SEND_ONE, one(campaign))
    second = as_marketer.post(SEND_ONE, one(campaign))
    assert Batch.objects.count() == 1
    assert Send.objects.count() == 1
    assert first["Location"] == second["Location"]


def test_a_form_brought_back_and_changed_sends_nothing_and_asks_again(as_marketer, campaign):
    as_marketer.post(SEND_ONE, one(campaign))
    response = as_marketer.post(SEND_ONE, one(campaign, recipient="bob@example.com"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "already used to send a reward to sally@example.com" in page
    assert Send.objects.count() == 1
    fresh = re.search(r'name="one-idempotency_key" value="([0-9a-f]{32})"', page).group(1)
    assert fresh != "a" * 32
    as_marketer.post(SEND_ONE, one(campaign, recipient="bob@example.com", idempotency_key=fresh))
    assert sorted(Send.objects.values_list("recipient", flat=True)) == [
        "bob@example.com",
        "sally@example.com",
    ]


# --- Bulk: upload and preview ---------------------------------------------------------------

FLAGGED = (
    "Email Address;Full Name\n"
    "sally@example.com;Sally Chan\n"
    "bob@example;Bob\n"
    "\n"
    "carol@example.com;Carol <boss>\n"
    "SALLY@example.com;Sally again\n"
    "dan@example.com;Dan\n"
)


def test_an_upload_opens_a_preview_with_the_count_first_rows_and_every_problem(
    as_marketer, campaign
):
    response = upload(as_marketer, campaign, FLAGGED)
    assert response.status_code == 302
    page = as_marketer.get(response["Location"]).content.decode()
    assert Batch.objects.count() == 0  # nothing is sent before confirming
    assert re.search(r'data-testid="total-rows">5<', page)
    assert re.search(r'data-testid="passed-rows">2<', page)
    assert re.search(r'data-testid="left-out-rows">3<', page)
    problems = re.findall(
        r'<tr class="problem (\w+)"><td class="text-end">(\d+)</td><td>([^<]+)</td>', page
    )
    assert problems == [
        ("bad_email", "3", "Email Address"),
        ("bad_name", "5", "Full Name"),
        ("duplicate", "6", "Email Address"),
    ]
    assert "already in row 2" in page
    assert "dan@example.com" in page
    assert 'Send to the <span id="send-count">2</span> <span id="send-rows">rows</span>' in page


def test_the_preview_leaves_out_a_quoted_address_the_send_would_refuse(as_marketer, campaign):
    # The cell as a spreadsheet writes "<img/src=x>"@example.com: valid by RFC 5322, and a
    # recipient_list cannot carry its "<" and ">".
    text = 'email,name\n"""<img/src=x>""@example.com",Mallory\nsally@example.com,Sally\n'
    location = upload(as_marketer, campaign, text)["Location"]
    page = as_marketer.get(location).content.decode()
    assert re.search(r'data-testid="passed-rows">1<', page)
    assert re.search(r'data-testid="left-out-rows">1<', page)
    problems = re.findall(
        r'<tr class="problem (\w+)"><td class="text-end">(\d+)</td><td>([^<]+)</td><td>([^<]+)<',
        page,
    )
    assert problems == [
        (
            "bad_email",
            "2",
            "email",
            "The email address holds “&lt;”, which Mokugift&#x27;s recipient list cannot carry.",
        )
    ]
    as_marketer.post(location, {})
    assert list(Batch.objects.get().sends.values_list("recipient", flat=True)) == [
        "sally@example.com"
    ]


def test_pasted_rows_give_the_same_preview_as_a_file(as_marketer, campaign):
    response = as_marketer.post(
        UPLOAD,
        {"bulk-campaign": campaign.pk, "bulk-mode": "email", "bulk-text": FLAGGED},
    )
    page = as_marketer.get(response["Location"]).content.decode()
    assert re.search(r'data-testid="passed-rows">2<', page)
    assert "pasted text" in page


def test_pasted_rows_over_the_request_limit_are_refused_on_the_form_with_the_limit(
    as_marketer, campaign, settings
):
    # Past DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) Django refuses the whole form, as soon as
    # anything reads it, with a bare "Bad Request (400)".
    rows = "".join(f"recipient-{n}@example.com\n" for n in range(100_000))
    assert len(rows) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2.5 * 1024 * 1024
    response = as_marketer.post(
        UPLOAD, {"bulk-campaign": campaign.pk, "bulk-mode": "email", "bulk-text": "email\n" + rows}
    )
    assert response.status_code == 413
    page = response.content.decode()
    error = re.search(r'<div class="invalid-feedback d-block">([^<]+)</div>', page).group(1)
    assert "more than 2.5 MB" in error and "upload them as a CSV file" in error
    assert "one address per line, at most 2.5 MB." in page  # said before anyone tries
    assert Batch.objects.count() == 0


def test_the_upload_still_checks_the_csrf_token(marketer, campaign):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(marketer)
    response = browser.post(
        UPLOAD, {"bulk-campaign": campaign.pk, "bulk-mode": "email", "bulk-text": FLAGGED}
    )
    assert response.status_code == 403
    browser.get(SEND)
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        UPLOAD,
        {
            "bulk-campaign": campaign.pk,
            "bulk-mode": "email",
            "bulk-text": FLAGGED,
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302


def test_an_upload_with_neither_file_nor_text_asks_for_one(as_marketer, campaign):
    response = as_marketer.post(UPLOAD, {"bulk-campaign": campaign.pk, "bulk-mode": "email"})
    assert "Choose a CSV or Excel file, or paste the rows" in response.content.decode()


def test_a_windows_1252_file_is_previewed_saying_how_it_was_read(as_marketer, campaign):
    data = "email;name\nzoe@example.com;Zoë\n".encode("cp1252")
    response = upload(as_marketer, campaign, data)
    page = as_marketer.get(response["Location"]).content.decode()
    assert "Read as Windows-1252, separated by semicolons" in page
    assert "<td>Zoë</td>" in page
    # The other reading, to choose if the names look wrong.
    assert "Mac Roman" in page and "ZoÎ" in page


def test_a_file_over_fifty_thousand_rows_is_refused_with_the_limit(as_marketer, campaign):
    rows = "".join(f"r{n}@example.com\n" for n in range(50_001))
    response = upload(as_marketer, campaign, "email\n" + rows)
    assert response.status_code == 200
    assert "more than 50,000 rows" in response.content.decode()


def test_a_preview_belongs_to_the_person_who_uploaded_and_is_a_404_for_anyone_else(
    client, as_marketer, campaign, django_user_model
):
    location = upload(as_marketer, campaign, FLAGGED)["Location"]
    other = django_user_model.objects.create_user(username="maria", password=PASSWORD)
    other.groups.add(*django_user_model.objects.get(username="mark-marketer").groups.all())
    client.logout()
    client.force_login(other)
    assert client.get(location).status_code == 404
    assert client.get(location + "problems.csv").status_code == 404
    assert client.post(location, {}).status_code == 404
    assert Batch.objects.count() == 0


def test_a_preview_survives_logging_out_and_in_again(client, marketer, campaign):
    client.force_login(marketer)
    location = upload(client, campaign, FLAGGED)["Location"]
    client.post(reverse("account_logout"))
    assert client.get(location).status_code == 302  # to the login page
    # The real login form (django-axes wants the request), as a person logs in again.
    client.post(reverse("account_login"), {"login": marketer.username, "password": PASSWORD})
    page = client.get(location)
    assert page.status_code == 200
    assert re.search(r'data-testid="passed-rows">2<', page.content.decode())
    assert client.get(location + "problems.csv").status_code == 200
    client.post(location, {})
    assert list(Batch.objects.get().sends.values_list("row_number", flat=True)) == [2, 7]


def test_a_confirmed_upload_is_a_404_for_anyone_else(
    client, as_marketer, campaign, django_user_model
):
    location = upload(as_marketer, campaign, FLAGGED)["Location"]
    as_marketer.post(location, {})
    assert as_marketer.get(location).status_code == 302
    other = django_user_model.objects.create_user(username="maria", password=PASSWORD)
    other.groups.add(*django_user_model.objects.get(username="mark-marketer").groups.all())
    client.force_login(other)
    assert client.get(location).status_code == 404


def test_the_problems_csv_lists_every_problem(as_marketer, campaign):
    location = upload(as_marketer, campaign, FLAGGED)["Location"]
    body = as_marketer.get(location + "problems.csv").content.decode()
    lines = body.strip().splitlines()
    assert lines[0] == "row,column,problem"
    assert [line.split(",")[0] for line in lines[1:]] == ["3", "5", "6"]


@pytest.mark.parametrize(
    ("mode", "header"),
    [("email", "email,name"), ("link", "email,name"), ("link-id", "recipient_id,name")],
)
def test_each_mode_has_a_csv_template_to_download(as_marketer, mode, header):
    response = as_marketer.get(reverse("rewards:send_template", args=[mode]))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert response.content.decode().splitlines()[0] == header


# --- Bulk: confirming -----------------------------------------------------------------------


def test_confirming_sends_only_the_rows_that_passed_and_keeps_the_left_out(as_marketer, campaign):
    location = upload(as_marketer, campaign, FLAGGED, name="spring.csv")["Location"]
    response = as_marketer.post(location, {})
    batch = Batch.objects.get()
    assert response["Location"] == reverse("rewards:batch_detail", args=[batch.pk])
    assert list(batch.sends.values_list("row_number", "recipient", "name")) == [
        (2, "sally@example.com", "Sally Chan"),
        (7, "dan@example.com", "Dan"),
    ]
    assert [item["row"] for item in batch.left_out] == [3, 5, 6]
    assert (batch.source, batch.filename, batch.send_anyway_by) == ("csv", "spring.csv", None)
    page = as_marketer.get(response["Location"]).content.decode()
    assert "3 rows of the upload left out" in page


def test_confirming_twice_makes_one_batch(as_marketer, campaign):
    location = upload(as_marketer, campaign, FLAGGED)["Location"]
    first = as_marketer.post(location, {})
    second = as_marketer.post(location, {})
    assert Batch.objects.count() == 1
    assert first["Location"] == second["Location"]


def _recently_rewarded(campaign, recipient: str):
    from datetime import timedelta

    from django.utils import timezone

    batch = Batch.objects.create(campaign=campaign, mode="email", source="single")
    Send.objects.create(
        batch=batch,
        row_number=1,
        recipient=recipient,
        state="sent",
        sent_at=timezone.now() - timedelta(days=2),
    )


def test_recently_rewarded_rows_are_left_out_unless_someone_says_send_anyway(as_marketer, campaign):
    _recently_rewarded(campaign, "dan@example.com")
    location = upload(as_marketer, campaign, FLAGGED)["Location"]
    page = as_marketer.get(location).content.decode()
    assert "Send anyway to the 1 recipient rewarded by this campaign in the last 30 days" in page
    assert '<tr class="problem recently_rewarded"><td class="text-end">7</td>' in page
    as_marketer.post(location, {})
    batch = Batch.objects.get(source="csv")
    assert list(batch.sends.values_list("recipient", flat=True)) == ["sally@example.com"]
    assert 7 in [item["row"] for item in batch.left_out]
    assert batch.send_anyway_by is None


def test_send_anyway_is_recorded_with_who_said_so(as_marketer, campaign, marketer):
    _recently_rewarded(campaign, "dan@example.com")
    location = upload(as_marketer, campaign, FLAGGED)["Location"]
    as_marketer.post(location, {"send_anyway": "on"})
    batch = Batch.objects.get(source="csv")
    assert list(batch.sends.values_list("recipient", flat=True)) == [
        "sally@example.com",
        "dan@example.com",
    ]
    assert batch.send_anyway_by == marketer
    assert batch.send_anyway_at is not None
    assert 7 not in [item["row"] for item in batch.left_out]


def test_an_upload_is_parsed_once_and_the_preview_and_confirm_read_what_it_found(
    as_marketer, campaign, monkeypatch
):
    # 15 MB of blank lines took 6 s to parse on every view. Counted at the first step of a
    # parse (the real function runs), whoever calls it.
    from rewards.services import csv_import

    decoded = []
    read = csv_import.table_read
    monkeypatch.setattr(
        csv_import, "table_read", lambda **kwargs: decoded.append(kwargs) or read(**kwargs)
    )
    location = upload(as_marketer, campaign, FLAGGED)["Location"]
    assert len(decoded) == 1
    pages = [as_marketer.get(location).content.decode() for _ in range(2)]
    problems_csv = as_marketer.get(location + "problems.csv").content.decode()
    assert len(decoded) == 1
    for page in pages:
        assert re.search(r'data-testid="passed-rows">2<', page)
        assert re.search(r'data-testid="left-out-rows">3<', page)
        assert 'Send to the <span id="send-count">2</span>' in page
    assert [line.split(",")[0] for line in problems_csv.splitlines()[1:]] == ["3", "5", "6"]
    as_marketer.post(location, {})
    assert len(decoded) == 1
    batch = Batch.objects.get()
    assert list(batch.sends.values_list("row_number", flat=True)) == [2, 7]
    assert [item["row"] for item in batch.left_out] == [3, 5, 6]


def test_a_recipient_sent_between_the_preview_and_the_confirm_is_left_out_at_confirm(
    as_marketer, campaign
):
    # The recently rewarded are looked up on each read, not kept with the upload: the same
    # file confirmed from two tabs must not reward everyone twice.
    location = upload(as_marketer, campaign, FLAGGED)["Location"]
    preview = as_marketer.get(location).content.decode()
    assert 'Send to the <span id="send-count">2</span>' in preview
    _recently_rewarded(campaign, "dan@example.com")
    as_marketer.post(location, {})
    batch = Batch.objects.get(source="csv")
    assert list(batch.sends.values_list("recipient", flat=True)) == ["sally@example.com"]
    assert 7 in [item["row"] for item in batch.left_out]


def test_a_file_where_no_row_passed_cannot_be_confirmed(as_marketer, campaign):
    location = upload(as_marketer, campaign, "email\nnope\n,\n@x\n")["Location"]
    page = as_marketer.get(location).content.decode()
    assert "No row passed" in page
    response = as_marketer.post(location, {}, follow=True)
    assert "nothing to send" in response.content.decode()
    assert Batch.objects.count() == 0


# --- Random bytes ---------------------------------------------------------------------------


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_random_bytes_as_an_upload_give_a_clear_error_or_a_preview_never_a_500(
    as_marketer, campaign, data
):
    response = upload(as_marketer, campaign, data)
    if response.status_code == 200:  # refused on the form, with why
        page = response.content.decode()
        assert 'class="alert alert-danger"' in page or 'class="invalid-feedback' in page
    else:
        assert response.status_code == 302
        preview = as_marketer.get(response["Location"])
        assert preview.status_code == 200
        assert "Preview before sending" in preview.content.decode()
