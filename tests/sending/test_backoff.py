"""A campaign whose endpoint misbehaves is backed off; the sweep makes no call itself, and
gives up on a call only after its deadline. The task bodies run in this process against the
scripted local server over real HTTP; what they enqueue is captured, not run."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from rewards.models import Batch, CampaignBackoff, Send
from rewards.services.backoff import (
    campaign_backoff_record,
    campaign_sending_resume,
)
from rewards.services.chunk import batch_send_chunk, sends_claim
from rewards.services.reconcile import campaign_reconcile
from rewards.services.sending import RecipientRow, batch_create
from rewards.services.sweep import sends_stuck_to_unknown, sends_sweep
from rewards.tasks.sending import campaign_reconcile as campaign_reconcile_task
from tests.client import bodies
from tests.client.server import body, dribble, local_server, status
from tests.sending.test_pages_batches import status as batch_status


@pytest.fixture
def server(settings):
    with local_server() as running:
        settings.MOKUGIFT_SANDBOX_URL = running.url
        settings.MOKUGIFT_CONNECT_TIMEOUT, settings.MOKUGIFT_READ_TIMEOUT = 1.0, 1.0
        settings.MOKUGIFT_CALL_DEADLINE = 1.0
        settings.MOKUGIFT_CAMPAIGN_BACKOFF, settings.MOKUGIFT_CAMPAIGN_BACKOFF_MAX = 10.0, 60.0
        settings.MOKUGIFT_CHUNK_SIZE = 4
        settings.MOKUGIFT_RECONCILE_SETTLE = 0
        yield running


@pytest.fixture(autouse=True)
def _no_pass_scheduled(campaign):
    # What reconcile_enqueue and the reconcile task keep in the cache outlives a test's
    # transaction (and a campaign's primary key may come back in the next test).
    keys = [f"rewards:reconcile-scheduled:{campaign.pk}", f"rewards:reconciling:{campaign.pk}"]
    cache.delete_many(keys)
    yield
    cache.delete_many(keys)


def batch_of(campaign, n: int) -> Batch:
    rows = [RecipientRow(row_number=i + 2, recipient=f"p{i}@example.com") for i in range(n)]
    return batch_create(campaign=campaign, mode="email", rows=rows, source="csv")


def made(first: int, count: int) -> str:
    """A multi call's answer: rewards for p<first>... p<first + count - 1>@example.com."""
    items = "".join(
        f"<reward><id>r-{n}</id><recipient_email>p{n}@example.com</recipient_email></reward>"
        for n in range(first, first + count)
    )
    return (
        f"{bodies.DECLARATION}<result><version>1.0</version><status>Success</status>"
        f"<transaction_id>tx</transaction_id><rewards>{items}</rewards></result>"
    )


def queued(callbacks) -> list[tuple[str, list, float | None]]:
    """The tasks the captured on-commit callbacks would publish: (name, args, countdown)."""
    return [
        (c.args[0].name, c.keywords["args"], c.keywords.get("countdown"))
        for c in callbacks
        if getattr(c, "func", None) is not None and c.func.__name__ == "task_publish"
    ]


def test_a_call_past_its_deadline_backs_the_campaign_off_and_its_chunks_wait(
    server, campaign, django_capture_on_commit_callbacks
):
    batch = batch_of(campaign, 8)
    server.then(dribble(bodies.MULTI_REWARDS.encode(), every=0.2, headers_first=True))
    started = time.monotonic()

    with django_capture_on_commit_callbacks() as callbacks:
        batch_send_chunk(batch_id=batch.pk)

    assert time.monotonic() - started < 1.8
    unknown = batch.sends.filter(state="unknown")
    assert unknown.count() == 4
    said = unknown.first().error_message
    assert said.startswith("Outcome unknown: ") and said.endswith("; checking with Mokugift.")
    assert "within the call's deadline of 1 s;" in said
    assert said.lower().count("outcome unknown") == 1  # said once
    backoff = CampaignBackoff.objects.get(campaign=campaign)
    assert backoff.failures == 1 and "deadline" in backoff.reason
    assert 9 < (backoff.until - timezone.now()).total_seconds() <= 10
    tasks = queued(callbacks)
    # The end of the wait brings the campaign back; its unknown rows are reconciled; and this
    # chain does not go on (no successor chunk now).
    assert ("rewards.campaign_sending_resume", [campaign.pk]) in [t[:2] for t in tasks]
    assert 9 < {t[0]: t[2] for t in tasks}["rewards.campaign_sending_resume"] <= 10
    assert "rewards.batch_send_chunk" not in [t[0] for t in tasks]

    # Another chain of the batch, meanwhile: no call, no row claimed.
    with django_capture_on_commit_callbacks() as callbacks:
        batch_send_chunk(batch_id=batch.pk)
    assert len(server.received) == 1
    assert batch.sends.filter(state="waiting").count() == 4
    assert queued(callbacks) == []


def test_the_batch_page_says_why_its_rows_wait(server, campaign, as_marketer):
    batch = batch_of(campaign, 2)
    campaign_backoff_record(
        campaign_pk=campaign.pk,
        reason="Mokugift multi_rewards/spring-1: read timeout (outcome unknown)",
        call_started_at=timezone.now(),
    )

    fragment = batch_status(as_marketer, batch)
    note = re.search(r'<span id="backoff-note">(.*?)</span>', fragment)[1]
    page = as_marketer.get(reverse("rewards:batch_detail", args=[batch.pk])).content.decode()

    assert note.startswith("Waiting: Mokugift&#x27;s endpoint for this campaign misbehaves")
    assert "1 failed call in a row; the last: Mokugift multi_rewards/spring-1: read timeout" in note
    assert "Sending tries again in about 10 s." in note
    assert 'id="backoff-banner" role="status"' in page  # shown, not hidden
    assert "read timeout (outcome unknown)" in page


def test_calls_failing_together_double_the_wait_once_and_it_stops_at_the_cap(campaign, settings):
    settings.MOKUGIFT_CAMPAIGN_BACKOFF, settings.MOKUGIFT_CAMPAIGN_BACKOFF_MAX = 10.0, 60.0
    t0 = timezone.now()

    def fail(started, at):
        return campaign_backoff_record(
            campaign_pk=campaign.pk, reason="x", call_started_at=started, now=at
        )

    first = fail(t0, t0 + timedelta(seconds=1))
    # Started before the first failure was recorded: the same episode, the same wait.
    together = fail(t0, t0 + timedelta(seconds=1.5))
    # A try made after it: it failed again.
    again = fail(t0 + timedelta(seconds=12), t0 + timedelta(seconds=13))
    assert (first.failures, first.escalated) == (1, True)
    assert (together.failures, together.escalated, together.until) == (1, False, first.until)
    assert again.failures == 2
    assert again.until == t0 + timedelta(seconds=13 + 20)
    for n in range(3, 8):
        last = fail(t0 + timedelta(seconds=100 * n), t0 + timedelta(seconds=100 * n + 1))
    assert last.until == t0 + timedelta(seconds=100 * 7 + 1 + 60)


def test_an_answer_once_the_wait_is_over_ends_the_backoff_and_brings_the_chains_back(
    server, campaign, django_capture_on_commit_callbacks
):
    batch = batch_of(campaign, 8)
    campaign_backoff_record(
        campaign_pk=campaign.pk, reason="x", call_started_at=timezone.now(), now=timezone.now()
    )
    CampaignBackoff.objects.filter(campaign=campaign).update(
        until=timezone.now() - timedelta(seconds=1)
    )
    server.then(body(made(0, 4)))

    with django_capture_on_commit_callbacks() as callbacks:
        batch_send_chunk(batch_id=batch.pk)

    assert len(server.received) == 1
    assert batch.sends.filter(state="sent").count() == 4
    assert CampaignBackoff.objects.get(campaign=campaign).failures == 0
    # The batch gets its chains back for the 4 rows left (one per chunk, up to parallelism).
    assert [t[:2] for t in queued(callbacks)] == [("rewards.batch_send_chunk", [batch.pk])]


def test_once_the_wait_is_over_a_campaign_makes_one_call_at_a_time_until_it_answers(
    server, campaign
):
    trying, other = batch_of(campaign, 4), batch_of(campaign, 4)
    campaign_backoff_record(campaign_pk=campaign.pk, reason="x", call_started_at=timezone.now())
    CampaignBackoff.objects.filter(campaign=campaign).update(
        until=timezone.now() - timedelta(seconds=1)
    )
    sends_claim(batch_id=trying.pk, limit=1)  # the try, in flight

    batch_send_chunk(batch_id=other.pk)

    assert server.received == []
    assert other.sends.filter(state="waiting").count() == 4


def test_the_end_of_the_wait_brings_one_chain_back_per_sending_batch(
    campaign, django_capture_on_commit_callbacks
):
    waiting, paused = batch_of(campaign, 3), batch_of(campaign, 3)
    Batch.objects.filter(pk=paused.pk).update(state=Batch.State.PAUSED)
    campaign_backoff_record(campaign_pk=campaign.pk, reason="x", call_started_at=timezone.now())

    with django_capture_on_commit_callbacks() as callbacks:
        assert campaign_sending_resume(campaign_pk=campaign.pk) == 0  # still waiting
    assert callbacks == []
    CampaignBackoff.objects.filter(campaign=campaign).update(until=timezone.now())
    with django_capture_on_commit_callbacks() as callbacks:
        assert campaign_sending_resume(campaign_pk=campaign.pk) == 1
    assert [t[:2] for t in queued(callbacks)] == [("rewards.batch_send_chunk", [waiting.pk])]


def test_a_query_that_fails_in_transit_backs_the_campaign_off_and_the_next_pass_waits(
    server, campaign, settings, isolated_broker
):
    settings.MOKUGIFT_CALL_DEADLINE = 10.0  # room for the query's three tries
    batch = batch_of(campaign, 1)
    Send.objects.filter(batch=batch).update(
        state="unknown", first_attempt_at=timezone.now(), attempt_started_at=timezone.now()
    )
    server.then(status(503), status(503), status(503))

    report = campaign_reconcile(campaign_pk=campaign.pk)

    assert "HTTP 5xx 503" in report.error and report.pending == 1
    assert CampaignBackoff.objects.get(campaign=campaign).failures == 1
    # The task's next pass, meanwhile, asks nothing: it is parked until the wait is over.
    campaign_reconcile_task(campaign.pk)
    assert len(server.received) == 3  # the query's three tries, no more
    assert batch.sends.get().state == "unknown"


# --- The sweep ---------------------------------------------------------------------------


def test_the_sweep_queues_a_reconcile_task_per_campaign_and_calls_no_endpoint_itself(
    server, campaign, django_capture_on_commit_callbacks
):
    batch = batch_of(campaign, 1)
    Send.objects.filter(batch=batch).update(
        state="unknown", first_attempt_at=timezone.now(), attempt_started_at=timezone.now()
    )
    # The campaign's endpoint stalls: a pass made by the sweep itself would hang on it.
    server.then(dribble(bodies.QUERY.encode(), every=0.2, headers_first=True))
    started = time.monotonic()

    with django_capture_on_commit_callbacks() as callbacks:
        report = sends_sweep()

    assert time.monotonic() - started < 0.5
    assert server.received == []
    assert report.reconciled_campaigns == 1
    # One pass, no follow-ups of its own: the sweep comes back anyway.
    assert [t[:2] for t in queued(callbacks)] == [("rewards.campaign_reconcile", [campaign.pk, 20])]


def test_the_sweep_leaves_a_backed_off_campaign_alone_and_tries_it_once_its_wait_is_over(
    campaign, django_capture_on_commit_callbacks
):
    batch = batch_of(campaign, 8)
    Send.objects.filter(batch=batch, row_number=2).update(
        state="unknown", first_attempt_at=timezone.now()
    )
    campaign_backoff_record(campaign_pk=campaign.pk, reason="x", call_started_at=timezone.now())

    with django_capture_on_commit_callbacks() as callbacks:
        report = sends_sweep()
    assert (report.reconciled_campaigns, report.kicked_batches, queued(callbacks)) == (0, 0, [])

    CampaignBackoff.objects.filter(campaign=campaign).update(until=timezone.now())
    with django_capture_on_commit_callbacks() as callbacks:
        report = sends_sweep()
    # A pass, and one chain for the batch (not its four): a try whether Mokugift answers.
    assert sorted(t[:2] for t in queued(callbacks)) == [
        ("rewards.batch_send_chunk", [batch.pk]),
        ("rewards.campaign_reconcile", [campaign.pk, 20]),
    ]


def test_the_sweep_gives_up_on_a_call_only_after_its_deadline(campaign, settings):
    settings.MOKUGIFT_CONNECT_TIMEOUT, settings.MOKUGIFT_READ_TIMEOUT = 5, 60
    settings.MOKUGIFT_CALL_DEADLINE, settings.MOKUGIFT_SWEEP_MARGIN = 120, 30
    batch = batch_of(campaign, 2)
    slow, dead = sends_claim(batch_id=batch.pk, limit=2)
    now = timezone.now()
    # Past both timeouts and the margin (95 s), but not past the deadline: still a live call
    # (a slow answer outlasts the timeouts, never the deadline).
    Send.objects.filter(pk=slow.pk).update(attempt_started_at=now - timedelta(seconds=140))
    Send.objects.filter(pk=dead.pk).update(attempt_started_at=now - timedelta(seconds=151))

    assert sends_stuck_to_unknown(now=now) == [dead.pk]
    assert Send.objects.get(pk=slow.pk).state == "sending"
