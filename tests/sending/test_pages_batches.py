"""The batch pages: the list, one batch with its progress and results, and the results CSV."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from rewards.models import Batch, Send
from rewards.selectors.sending import NO_REASON, FailureReason, batches_failure_reasons
from rewards.services.sending import api_error_words
from tests.sending.conftest import PASSCODE


def make_batch(campaign, states: list[str], *, mode="link", source="csv", **fields) -> Batch:
    """A batch with one ledger row per state given, as the workers would have left them."""
    batch = Batch.objects.create(campaign=campaign, mode=mode, source=source, **fields)
    now = timezone.now()
    Send.objects.bulk_create(
        Send(
            batch=batch,
            row_number=n + 2,
            recipient=f"r{n}@example.com",
            name=f"Person {n}",
            state=state,
            remote_id=f"RW{batch.pk}-{n}" if state == "sent" else "",
            url=f"https://sandbox.example/r/{batch.pk}-{n}" if state == "sent" else "",
            sent_at=now if state == "sent" else None,
            error_code=112 if state == "failed" else None,
            error_message="Invalid email" if state == "failed" else "",
        )
        for n, state in enumerate(states)
    )
    return batch


def detail(batch) -> str:
    return reverse("rewards:batch_detail", args=[batch.pk])


def status(client, batch, query: str = "") -> str:
    """The live part of the batch page, as the page's polling fetches it."""
    response = client.get(reverse("rewards:batch_status", args=[batch.pk]) + query)
    assert response.status_code == 200
    return response.content.decode()


def polls(fragment: str) -> bool:
    return "hx-trigger=" in fragment.split(">", 1)[0]


def results_csv(client, batch, query: str = "") -> list[list[str]]:
    response = client.get(reverse("rewards:batch_results_csv", args=[batch.pk]) + query)
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(body)))


def test_only_people_who_send_rewards_see_batches(client, cast, campaign):
    batch = make_batch(campaign, ["sent"])
    client.force_login(cast["outsider"])
    for name in ["rewards:batch_detail", "rewards:batch_status", "rewards:batch_results_csv"]:
        assert client.get(reverse(name, args=[batch.pk])).status_code == 403
    assert client.get(reverse("rewards:batch_list")).status_code == 403
    assert client.post(reverse("rewards:batch_cancel", args=[batch.pk])).status_code == 403


def test_a_manager_reads_batches_to_approve_them_but_steers_none(client, cast, campaign):
    batch = make_batch(campaign, ["waiting"])
    client.force_login(cast["manager"])
    for name in ["rewards:batch_detail", "rewards:batch_status", "rewards:batch_list"]:
        args = [] if name == "rewards:batch_list" else [batch.pk]
        assert client.get(reverse(name, args=args)).status_code == 200
    # The results file stays with those who send (and export from the rewards page).
    assert client.get(reverse("rewards:batch_results_csv", args=[batch.pk])).status_code == 403
    page = client.get(reverse("rewards:batch_detail", args=[batch.pk])).content.decode()
    assert 'id="results-csv"' not in page and 'id="cancel-batch"' not in page
    assert client.post(reverse("rewards:batch_cancel", args=[batch.pk])).status_code == 403


def test_the_batch_list_says_what_to_do_when_there_is_none(as_marketer, db):
    page = as_marketer.get(reverse("rewards:batch_list")).content.decode()
    assert "No batches yet" in page


def test_the_batch_list_shows_recent_batches_with_progress_in_a_few_queries(
    as_marketer, campaign, django_assert_max_num_queries
):
    for _ in range(30):
        make_batch(campaign, ["sent", "sent", "failed", "waiting"])
    # One of them reads the campaigns the marketer may see, one the batches still to go out,
    # one the bell's unread notices.
    with django_assert_max_num_queries(11):
        page = as_marketer.get(reverse("rewards:batch_list")).content.decode()
    assert page.count('aria-valuenow="75"') == 25
    assert "2 sent" in page and "1 failed" in page
    assert "Page 1 of 2" in page


def test_the_batch_page_shows_counts_by_state_and_the_progress(as_marketer, campaign):
    batch = make_batch(
        campaign, ["sent", "sent", "sent", "failed", "waiting", "sending", "unknown"]
    )
    page = as_marketer.get(detail(batch)).content.decode()
    for state, n in [("waiting", 1), ("sending", 1), ("sent", 3), ("failed", 1), ("unknown", 1)]:
        assert f'data-count="{state}">{n}<' in page
    assert 'aria-valuenow="57"' in page  # 4 of 7 finished
    status_url = reverse("rewards:batch_status", args=[batch.pk])
    assert f'hx-get="{status_url}" hx-trigger="every 1s" hx-swap="outerHTML"' in page


def _csrf_free(html: str) -> str:
    # Each render masks the CSRF token afresh: the only part of the fragment allowed to differ.
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)


@pytest.mark.parametrize("query", ["", "?state=failed", "?page=2"])
def test_the_status_view_renders_the_same_fragment_as_the_page(as_marketer, campaign, query):
    batch = make_batch(campaign, ["sent"] * 120 + ["failed", "waiting"])
    page = as_marketer.get(detail(batch) + query).content.decode()
    fragment = status(as_marketer, batch, query)
    assert fragment.lstrip().startswith('<div id="batch"')
    assert "<html" not in fragment and "<body" not in fragment
    assert _csrf_free(fragment.strip()) in _csrf_free(page)
    # The poll asks for the same tab and page the reader is on.
    status_url = reverse("rewards:batch_status", args=[batch.pk])
    assert f'hx-get="{status_url}{query}"' in fragment


def test_the_fragment_gives_counts_percent_time_left_and_the_tabs(as_marketer, marketer, campaign):
    batch = make_batch(campaign, ["sent", "sent", "failed", "waiting"], created_by=marketer)
    # The pace is counted from the first claim.
    batch.sends.update(first_attempt_at=timezone.now() - timezone.timedelta(seconds=30))
    fragment = status(as_marketer, batch)
    for state, n in [("waiting", 1), ("sending", 0), ("sent", 2), ("failed", 1), ("unknown", 0)]:
        assert f'data-count="{state}">{n}<' in fragment
    assert 'aria-valuenow="75"' in fragment and "75 %" in fragment
    assert re.search(r"about (\d+) s left", fragment)  # 3 rows in 30 s, 1 left
    assert 5 <= int(re.search(r"about (\d+) s left", fragment)[1]) <= 15
    # Tabs for the states that have rows, each with its count.
    assert re.search(r'data-tab="failed"[^>]*>Failed <span[^>]*>1</span>', fragment)
    assert 'data-tab="unknown"' not in fragment
    assert polls(fragment) and 'id="cancel-batch"' in fragment


def test_a_finished_batch_stops_polling_and_offers_no_cancel(as_marketer, campaign):
    batch = make_batch(campaign, ["sent", "sent", "cancelled"], state="done")
    fragment = status(as_marketer, batch)
    assert not polls(fragment)
    assert 'id="cancel-batch"' not in fragment and "100 %" in fragment
    assert 'data-outcome="done"' in fragment and ">Done</span>" in fragment
    assert "does not update by itself" not in fragment


def test_a_batch_with_failures_never_looks_like_a_success(as_marketer, campaign):
    batch = make_batch(campaign, ["sent", "failed", "failed", "failed"], state="done")
    Send.objects.filter(batch=batch, state="failed", row_number=3).update(
        error_code=105, error_message=api_error_words(code=105)
    )
    fragment = status(as_marketer, batch)
    badge = re.search(r'<span class="([^"]*)"[^>]*data-outcome="failures">([^<]*)<', fragment)
    assert badge[2] == "Done, 3 failed" and "warning" in badge[1]
    assert "Why 3 rows failed" in fragment
    assert "<strong>2 ×</strong> Invalid email" in fragment
    assert "<strong>1 ×</strong> No moku-coins left (Mokugift error 105)" in fragment
    assert fragment.index("2 ×") < fragment.index("1 ×")  # most frequent first
    assert 'class="progress-bar bg-warning"' in fragment

    listing = as_marketer.get(reverse("rewards:batch_list")).content.decode()
    outcome = r'warning-emphasis batch-outcome" data-outcome="failures">Done, 3 failed<'
    assert re.search(outcome, listing)
    assert "<strong>2 ×</strong> Invalid email" in listing
    assert "<strong>1 ×</strong> No moku-coins left (Mokugift error 105)" in listing


def test_failure_reasons_are_grouped_counted_and_ordered_per_batch(
    campaign, django_assert_num_queries
):
    one = make_batch(campaign, ["failed"] * 5 + ["sent", "waiting"])
    two = make_batch(campaign, ["failed", "failed", "failed", "sent"])
    clean = make_batch(campaign, ["sent"])
    Send.objects.filter(batch=one, row_number__in=[2, 3]).update(error_message="Zeta reason")
    Send.objects.filter(batch=one, row_number=4).update(error_message="")
    Send.objects.filter(batch=two).update(error_message="Alpha reason")
    with django_assert_num_queries(1):
        reasons = batches_failure_reasons(batch_ids=[one.pk, two.pk, clean.pk])
    assert reasons == {
        # By count, then by text; a row without a text still counts, under a plain reason.
        one.pk: [
            FailureReason("Invalid email", 2),
            FailureReason("Zeta reason", 2),
            FailureReason(NO_REASON, 1),
        ],
        two.pk: [FailureReason("Alpha reason", 3)],
    }


def test_a_row_error_says_each_thing_once_on_the_page_and_in_the_csv(as_marketer, campaign):
    batch = make_batch(campaign, ["failed"], state="done")
    Send.objects.filter(batch=batch).update(
        error_code=103, error_message=api_error_words(code=103, description="Campaign disabled")
    )
    row = re.search(r'<tr data-state="failed".*?</tr>', status(as_marketer, batch), re.S)[0]
    cell = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[-1]
    assert cell == "Campaign disabled (Mokugift error 103)"
    assert results_csv(as_marketer, batch)[1][6] == "Campaign disabled (Mokugift error 103)"


def test_the_fragment_of_one_reward_carries_its_id_and_link_as_they_become_known(
    as_marketer, campaign
):
    batch = make_batch(campaign, ["waiting"], source="single")
    assert '<code id="single-remote-id">—</code>' in status(as_marketer, batch)
    Send.objects.filter(batch=batch).update(
        state="sent", remote_id="RW-42", url="https://sandbox.example/r/42"
    )
    fragment = status(as_marketer, batch)
    assert '<code id="single-remote-id">RW-42</code>' in fragment
    assert 'value="https://sandbox.example/r/42"' in fragment
    page = as_marketer.get(detail(batch)).content.decode()
    assert 'value="https://sandbox.example/r/42"' in page
    assert 'id="copy-url"' in page


def test_a_paused_batch_shows_why_and_a_resume_button(as_marketer, marketer, campaign):
    batch = make_batch(
        campaign,
        ["sent", "waiting"],
        created_by=marketer,
        state="paused",
        paused_reason="Mokugift says: Lack of moku-coins. Top up the account, then resume.",
    )
    page = as_marketer.get(detail(batch)).content.decode()
    assert "Lack of moku-coins" in page
    assert 'id="paused-banner" role="status"' in page  # not hidden
    assert reverse("rewards:batch_resume", args=[batch.pk]) in page
    fragment = status(as_marketer, batch)
    assert "Mokugift says: Lack of moku-coins" in fragment
    assert 'hx-trigger="every 5s"' in fragment  # nothing moves until someone resumes


def test_a_row_whose_link_was_not_recovered_says_so_plainly_with_its_reward_id(
    as_marketer, campaign
):
    batch = make_batch(campaign, ["sent"])
    Send.objects.filter(batch=batch).update(url="", link_not_recovered=True)
    page = as_marketer.get(detail(batch)).content.decode()
    assert "Link not recovered" in page
    assert f"RW{batch.pk}-0" in page
    row = results_csv(as_marketer, batch)[1]
    assert row[4] == f"RW{batch.pk}-0" and row[5] == ""
    assert row[6].startswith("Link not recovered")


def test_the_results_table_filters_by_state_and_pages(as_marketer, campaign):
    batch = make_batch(campaign, ["sent"] * 150 + ["failed"] * 3)
    failed = as_marketer.get(detail(batch) + "?state=failed").content.decode()
    assert failed.count('<tr data-state="failed" ') == 3
    assert '<tr data-state="sent" ' not in failed
    everything = as_marketer.get(detail(batch)).content.decode()
    assert everything.count("<tr data-state=") == 100
    assert "Page 1 of 2" in everything
    second = as_marketer.get(detail(batch) + "?page=2").content.decode()
    assert second.count("<tr data-state=") == 53
    empty = as_marketer.get(detail(batch) + "?state=unknown").content.decode()
    assert "No row is unknown" in empty


def test_the_results_csv_matches_the_rows(as_marketer, campaign):
    batch = make_batch(campaign, ["sent", "failed", "sent", "cancelled"])
    rows = results_csv(as_marketer, batch)
    assert rows[0] == ["row", "recipient", "name", "state", "reward_id", "url", "error"]
    expected = [
        [
            str(s.row_number),
            s.recipient,
            s.name,
            s.state,
            s.remote_id,
            s.url,
            s.error_message,
        ]
        for s in batch.sends.order_by("row_number")
    ]
    assert rows[1:] == expected
    assert [r[0] for r in results_csv(as_marketer, batch, "?state=sent")[1:]] == ["2", "4"]


def test_the_results_csv_is_the_whole_batch_with_the_left_out_rows_and_their_reason(
    as_marketer, campaign
):
    batch = make_batch(
        campaign,
        ["sent", "failed"],
        left_out=[
            {"row": 4, "column": "email", "message": "“bob@” is not a valid email address."},
            {"row": 6, "column": "name", "message": "The name is too long."},
            {"row": 6, "column": "email", "message": "The recipient is missing."},
        ],
    )
    response = as_marketer.get(reverse("rewards:batch_results_csv", args=[batch.pk]))
    assert f'filename="batch-{batch.pk}-results.csv"' in response["Content-Disposition"]
    rows = results_csv(as_marketer, batch)
    assert [(r[0], r[3]) for r in rows[1:]] == [
        ("2", "sent"),
        ("3", "failed"),
        ("4", "left-out"),
        ("6", "left-out"),
    ]
    assert rows[3][6] == "“bob@” is not a valid email address."
    assert rows[4][6] == "The name is too long. The recipient is missing."


@pytest.mark.parametrize("state", ["failed", "left-out"])
def test_a_filtered_results_csv_says_its_filter_in_its_name(as_marketer, campaign, state):
    batch = make_batch(
        campaign,
        ["sent", "failed"],
        left_out=[{"row": 5, "column": "email", "message": "The recipient is missing."}],
    )
    query = f"?state={state}"
    response = as_marketer.get(reverse("rewards:batch_results_csv", args=[batch.pk]) + query)
    assert f'filename="batch-{batch.pk}-results-{state}.csv"' in response["Content-Disposition"]
    rows = results_csv(as_marketer, batch, query)
    assert [r[3] for r in rows[1:]] == [state]


def test_the_results_csv_neutralises_cells_a_spreadsheet_would_run(as_marketer, campaign):
    batch = make_batch(campaign, ["sent", "sent", "sent", "sent", "sent"])
    for send, name in zip(
        batch.sends.order_by("row_number"),
        ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx"],
        strict=True,
    ):
        Send.objects.filter(pk=send.pk).update(name=name)
    names = [row[2] for row in results_csv(as_marketer, batch)[1:]]
    assert names == ["'=HYPERLINK(1)", "'+1", "'-2", "'@SUM(A1)", "'\tx"]


def test_the_left_out_rows_are_listed_on_the_batch_page(as_marketer, campaign):
    batch = make_batch(
        campaign,
        ["sent"],
        left_out=[{"row": 3, "column": "email", "message": "“bob@” is not a valid email address."}],
    )
    page = as_marketer.get(detail(batch)).content.decode()
    assert "1 row of the upload left out" in page
    assert "is not a valid email address" in page


def test_send_failed_rows_again_is_offered_only_when_some_failed(as_marketer, marketer, campaign):
    ok = make_batch(campaign, ["sent"], created_by=marketer, state="done")
    assert 'id="retry-failed"' not in as_marketer.get(detail(ok)).content.decode()
    some = make_batch(campaign, ["sent", "failed", "failed"], created_by=marketer, state="done")
    assert "Send the 2 failed rows again" in as_marketer.get(detail(some)).content.decode()
    cancelled = make_batch(
        campaign, ["failed", "cancelled"], created_by=marketer, state="cancelled"
    )
    assert 'id="retry-failed"' not in as_marketer.get(detail(cancelled)).content.decode()
    response = as_marketer.post(
        reverse("rewards:batch_retry_failed", args=[cancelled.pk]), follow=True
    )
    assert "This batch was cancelled" in response.content.decode()


def test_send_failed_rows_again_puts_back_only_the_failed_rows(as_marketer, marketer, campaign):
    batch = make_batch(campaign, ["sent", "failed", "failed"], created_by=marketer, state="done")
    response = as_marketer.post(reverse("rewards:batch_retry_failed", args=[batch.pk]))
    assert response.status_code == 302
    states = list(batch.sends.order_by("row_number").values_list("state", flat=True))
    assert states[0] == "sent"
    assert "failed" not in states


def test_send_failed_rows_again_over_the_budget_says_the_numbers_and_moves_nothing(
    as_marketer, marketer, campaign
):
    from rewards.services.controls import budget_month_of

    type(campaign).objects.filter(pk=campaign.pk).update(monthly_budget=2)
    month = budget_month_of(timezone.now())
    make_batch(campaign, ["sent"], created_by=marketer, state="done", budget_month=month)
    batch = make_batch(
        campaign,
        ["sent", "failed", "failed"],
        created_by=marketer,
        state="done",
        budget_month=month,
    )
    response = as_marketer.post(reverse("rewards:batch_retry_failed", args=[batch.pk]), follow=True)
    assert "2 of 2 used this month; this batch needs 2" in response.content.decode()
    assert batch.sends.filter(state="failed").count() == 2


def test_cancel_stops_the_rows_not_yet_claimed(as_marketer, marketer, campaign):
    batch = make_batch(campaign, ["sent", "sending", "waiting", "waiting"], created_by=marketer)
    as_marketer.post(reverse("rewards:batch_cancel", args=[batch.pk]))
    states = list(batch.sends.order_by("row_number").values_list("state", flat=True))
    assert states[:2] == ["sent", "sending"]
    assert states[2:] == ["cancelled", "cancelled"]
    batch.refresh_from_db()
    assert batch.state == "cancelled"
    assert 'id="cancelled-banner">' in as_marketer.get(detail(batch)).content.decode()


def test_the_pages_never_show_a_passcode(as_marketer, campaign, settings, tmp_path):
    settings.UPLOADS_DIR = tmp_path
    batch = make_batch(campaign, ["sent", "failed"], source="single")
    from django.core.files.uploadedfile import SimpleUploadedFile

    preview = as_marketer.post(
        reverse("rewards:send_upload"),
        {
            "bulk-campaign": campaign.pk,
            "bulk-mode": "email",
            "bulk-file": SimpleUploadedFile("a.csv", b"email\na@example.com\nbad\n"),
        },
    )["Location"]
    responses = [
        as_marketer.get(reverse("rewards:send")),
        as_marketer.get(preview),
        as_marketer.get(preview + "problems.csv"),
        as_marketer.get(reverse("rewards:batch_list")),
        as_marketer.get(detail(batch)),
        as_marketer.get(reverse("rewards:batch_status", args=[batch.pk])),
        as_marketer.get(reverse("rewards:batch_results_csv", args=[batch.pk])),
    ]
    assert campaign.passcode == PASSCODE
    for response in responses:
        assert response.status_code == 200
        content = b"".join(response.streaming_content) if response.streaming else response.content
        assert PASSCODE.encode() not in content


@pytest.mark.parametrize(
    ("states", "batch_state", "finished"),
    [
        (["sent", "waiting"], "sending", False),
        (["sent", "waiting"], "paused", False),
        (["sent", "failed"], "done", True),
        # Still being reconciled, but nothing the page could do: it must not reload forever.
        (["sent", "unknown", "cancelled"], "cancelled", True),
    ],
)
def test_the_page_stops_polling_once_the_batch_has_ended(
    as_marketer, campaign, states, batch_state, finished
):
    batch = make_batch(campaign, states, state=batch_state)
    page = as_marketer.get(detail(batch)).content.decode()
    assert (f'data-finished="{"1" if finished else ""}"') in page
    assert polls(status(as_marketer, batch)) is not finished
    # Without JavaScript, a batch still moving says the page does not follow it by itself.
    assert ("does not update by itself" in page) is not finished


def test_the_batch_page_runs_a_bounded_number_of_queries(
    as_marketer, campaign, django_assert_max_num_queries
):
    small = make_batch(campaign, ["sent", "failed", "unknown"], state="sending")
    large = make_batch(campaign, ["sent", "failed", "waiting", "cancelled"] * 60, state="sending")
    as_marketer.get(detail(small))
    with django_assert_max_num_queries(20) as small_queries:
        as_marketer.get(detail(small))
    with django_assert_max_num_queries(len(small_queries)):
        page = as_marketer.get(detail(large)).content.decode()
    # One page of the results table: 100 rows, whatever the size of the batch.
    assert "r99@example.com" in page and "r100@example.com" not in page
