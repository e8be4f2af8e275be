"""The client against the sandbox over real HTTP (pytest-django's live server): every call,
every error code, a Part_Failed multi call, 1,000 recipients and the 1,001 refusal, and each
fault kind seen as the right error, with what the sandbox really made."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests

from rewards.mokugift import (
    MAX_RECIPIENTS_PER_CALL,
    ApiError,
    MokugiftClient,
    ProtocolError,
    Recipient,
    RecipientRefused,
    RewardRecord,
    Summary,
    TransportError,
)
from rewards.mokugift.parser import _Call
from sandbox.models import SandboxReward

PASS = "pass-1"


@pytest.fixture
def campaign(sandbox):
    return sandbox.campaign("c-1", PASS, trees_per_reward=2)


@pytest.fixture
def client(campaign):
    return MokugiftClient.for_campaign(campaign, sleep=lambda seconds: None)


def _made(recipient: str | None = None) -> list[SandboxReward]:
    rewards = SandboxReward.objects.filter(campaign__campaign_id="c-1")
    if recipient is not None:
        rewards = rewards.filter(recipient_email=recipient) | rewards.filter(recipient_id=recipient)
    return list(rewards.order_by("pk"))


def _api_error(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


# --- Every call ---------------------------------------------------------------------------


def test_create_reward_by_email_makes_an_emailed_reward(client):
    result = client.create_reward(mode="email", recipient="sally@chan.com", name="Sally Chan")

    [made] = _made()
    assert result.reward.id == made.remote_id
    assert result.reward.recipient == "sally@chan.com"
    assert result.reward.url is None
    assert result.transaction_id == made.transaction_id
    assert (made.name, made.emailed) == ("Sally Chan", True)


def test_create_reward_as_a_link_answers_the_url_of_the_reward_page(client):
    result = client.create_reward(mode="link", recipient="sally@chan.com", name="Sally Chan")

    [made] = _made()
    assert (result.reward.id, result.reward.url) == (made.remote_id, made.url)
    assert made.emailed is False
    page = requests.get(result.reward.url, timeout=(5, 30))
    assert page.status_code == 200
    assert "Sally Chan" in page.text


def test_create_reward_by_recipient_id_makes_a_reward_for_that_id(client):
    result = client.create_reward(mode="link-id", recipient="user6789")

    [made] = _made()
    assert result.reward.recipient == made.recipient_id == "user6789"
    assert result.reward.url == made.url


@pytest.mark.parametrize(
    ("mode", "addresses", "emailed"),
    [
        ("email", ["a@example.com", "b@example.com"], True),
        ("link", ["a@example.com", "b@example.com"], False),
        ("link-id", ["user1", "user2"], False),
    ],
)
def test_create_rewards_makes_one_reward_per_recipient_in_each_mode(
    client, mode, addresses, emailed
):
    recipients = [Recipient(addresses[0], "Ann Example"), Recipient(addresses[1])]

    result = client.create_rewards(mode=mode, recipients=recipients)

    made = _made()
    assert result.status == "Success"
    assert result.unsent == []
    assert [r.recipient for r in result.rewards] == addresses
    assert [r.id for r in result.rewards] == [m.remote_id for m in made]
    assert [m.name for m in made] == ["Ann Example", ""]
    assert all(m.emailed is emailed for m in made)
    assert all(m.transaction_id == result.transaction_id for m in made)
    if mode == "email":
        assert all(r.url is None for r in result.rewards)
    else:
        assert [r.url for r in result.rewards] == [m.url for m in made]


def test_a_multi_call_with_a_bad_address_is_part_failed_and_names_it(client):
    result = client.create_rewards(
        mode="link",
        recipients=[Recipient("a@example.com"), Recipient("not-an-email", "Bad Address")],
    )

    assert result.status == "Part_Failed"
    assert [r.recipient for r in result.rewards] == ["a@example.com"]
    [unsent] = result.unsent
    assert (unsent.recipient, unsent.given) == ("not-an-email", "Bad Address <not-an-email>")
    assert (unsent.code, unsent.description) == (112, "Invalid email")
    assert [m.recipient_email for m in _made()] == ["a@example.com"]


def test_coins_running_out_mid_list_leave_the_rest_unsent_with_105(sandbox):
    client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, coins=1))

    result = client.create_rewards(
        mode="email", recipients=[Recipient("a@example.com"), Recipient("b@example.com")]
    )

    assert result.status == "Part_Failed"
    assert [(u.recipient, u.code) for u in result.unsent] == [("b@example.com", 105)]


def test_a_call_of_a_thousand_recipients_makes_a_thousand_rewards(client):
    recipients = [Recipient(f"user{n}@example.com", f"User {n}") for n in range(1000)]

    result = client.create_rewards(mode="link", recipients=recipients)

    assert result.status == "Success"
    assert len(result.rewards) == MAX_RECIPIENTS_PER_CALL == len(_made())
    assert {r.recipient for r in result.rewards} == {r.address for r in recipients}


def test_a_call_of_1001_recipients_is_refused_and_nothing_is_sent(client):
    recipients = [Recipient(f"user{n}@example.com") for n in range(1001)]

    with pytest.raises(RecipientRefused, match="at most 1000"):
        client.create_rewards(mode="email", recipients=recipients)

    assert _made() == []


def test_the_queries_list_what_was_made_with_dates_trees_and_a_summary(client):
    by_email = client.create_reward(mode="email", recipient="a@example.com")
    by_id = client.create_reward(mode="link-id", recipient="user1")
    now = dt.datetime.now(dt.UTC)

    with client.all_rewards() as stream:
        records = list(stream)
        summary = stream.summary
    with client.rewards_in_month() as stream:
        this_month = list(stream)
    with client.rewards_in_month(month=now.month, year=now.year) as stream:
        same_month = list(stream)
    with client.rewards_in_month(month=1, year=2001) as stream:
        long_ago = list(stream)
        long_ago_summary = stream.summary

    assert [r.id for r in records] == [by_email.reward.id, by_id.reward.id]
    first, second = records
    assert (first.recipient_email, first.recipient_id) == ("a@example.com", "")
    assert (second.recipient_email, second.recipient_id) == ("", "user1")
    assert all(isinstance(r, RewardRecord) and r.tree_count == 2 for r in records)
    assert all(abs(r.date - now) < dt.timedelta(minutes=1) for r in records)
    assert all(r.date.tzinfo is not None for r in records)
    assert summary == Summary(reward_count=2, tree_count=4)
    assert this_month == same_month == records
    assert long_ago == []
    assert long_ago_summary == Summary(reward_count=0, tree_count=0)


# --- Every error code ---------------------------------------------------------------------


def test_a_wrong_http_method_is_error_100(client):
    # The client always uses the right method; to see 100 it GETs a create path.
    stream = client._query(path="reward/c-1", label="reward/c-1 by GET")

    error = _api_error(lambda: list(stream))

    assert (error.code, error.description) == (100, "Incorrect HTTP Method")


def test_an_unknown_campaign_is_error_101_on_every_call(sandbox, campaign):
    client = MokugiftClient(base_url=sandbox.api_url, campaign_id="nope", passcode=PASS)

    for call in (
        lambda: client.create_reward(mode="email", recipient="a@example.com"),
        lambda: client.create_rewards(mode="link", recipients=[Recipient("a@example.com")]),
        lambda: list(client.all_rewards()),
        lambda: list(client.rewards_in_month()),
    ):
        error = _api_error(call)
        assert (error.code, error.retryable, error.outcome_unknown) == (101, False, False)


def test_a_wrong_passcode_is_error_102_and_no_message_holds_it(sandbox, campaign):
    client = MokugiftClient(base_url=sandbox.api_url, campaign_id="c-1", passcode="not-the-pass-1")

    error = _api_error(lambda: client.create_reward(mode="email", recipient="a@example.com"))

    assert (error.code, error.description) == (102, "Incorrect Passcode")
    assert "not-the-pass-1" not in f"{error} {error!r} {error.args} {vars(error)}"
    assert _made() == []


def test_a_disabled_campaign_is_error_103_and_its_queries_still_answer(sandbox):
    client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, enabled=False))

    error = _api_error(lambda: client.create_reward(mode="email", recipient="a@example.com"))

    assert error.code == 103
    assert list(client.all_rewards()) == []


def test_an_expired_campaign_is_error_104(sandbox):
    client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, expires="2001-01-01"))

    error = _api_error(
        lambda: client.create_rewards(mode="email", recipients=[Recipient("a@b.co")])
    )

    assert (error.code, error.description) == (104, "Campaign is expired (by date or budget)")


def test_no_coins_left_is_error_105_which_a_top_up_cures(sandbox):
    client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, coins=0))

    error = _api_error(lambda: client.create_reward(mode="link", recipient="a@example.com"))

    assert (error.code, error.no_coins, error.retryable) == (105, True, True)
    assert error.outcome_unknown is False
    sandbox.campaign("c-1", PASS, coins=5)
    assert client.create_reward(mode="link", recipient="a@example.com").reward.id


def test_error_110_on_a_create_is_outcome_unknown_and_not_retried(sandbox):
    client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, fault="error110"))

    error = _api_error(lambda: client.create_reward(mode="email", recipient="a@example.com"))

    assert (error.code, error.retryable, error.outcome_unknown) == (110, True, True)
    assert _made() == []


def test_a_missing_recipient_is_error_111(client):
    error = _api_error(lambda: client.create_reward(mode="email", recipient=""))

    assert (error.code, error.description) == (111, "Missing recipient email/ID")


def test_an_invalid_email_is_error_112(client):
    error = _api_error(lambda: client.create_reward(mode="link", recipient="not-an-email"))

    assert (error.code, error.description) == (112, "Invalid email")


def test_invalid_parameters_are_error_113(client):
    on_create = _api_error(
        lambda: client.create_reward(mode="email", recipient="a@example.com", name="N" * 201)
    )
    on_query = _api_error(lambda: list(client.rewards_in_month(month=13, year=2026)))

    assert on_create.code == on_query.code == 113
    assert on_query.outcome_unknown is False


def test_over_a_thousand_rewards_is_error_114_when_the_client_check_is_bypassed(client):
    # The public method refuses 1,001 before sending; the low-level call shows the server's
    # answer to it.
    recipient_list = ",".join(f"user{n}@example.com" for n in range(1001))

    error = _api_error(
        lambda: client._send(
            _Call(kind="multi", label="multi_rewards/c-1", mode="email"),
            path="multi_rewards/c-1",
            data={"passcode": PASS, "recipient_list": recipient_list},
            asked=1001,
        )
    )

    assert (error.code, error.description) == (114, "Over max. number of rewards")
    assert _made() == []


# --- Every fault kind ---------------------------------------------------------------------


def test_http500_is_a_transport_error_and_nothing_was_made(sandbox):
    client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, fault="http500"))

    with pytest.raises(TransportError) as caught:
        client.create_reward(mode="email", recipient="a@example.com")

    assert not isinstance(caught.value, ProtocolError)
    assert "HTTP 5xx 500" in str(caught.value)
    # A 500 came from the server: by itself a client cannot know nothing was made.
    assert caught.value.reached_server is True
    assert caught.value.outcome_unknown is True
    assert _made() == []


def test_drop_before_is_outcome_unknown_and_nothing_was_made(sandbox):
    client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, fault="drop-before"))

    with pytest.raises(TransportError) as caught:
        client.create_reward(mode="link", recipient="a@example.com")

    # A dropped connection before the reward looks the same as one after it: outcome unknown.
    assert caught.value.reached_server is True
    assert caught.value.outcome_unknown is True
    assert _made() == []


def test_drop_after_is_outcome_unknown_and_the_reward_exists(sandbox):
    client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, fault="drop-after"))

    with pytest.raises(TransportError) as caught:
        client.create_reward(mode="email", recipient="a@example.com")

    assert caught.value.outcome_unknown is True
    assert len(_made("a@example.com")) == 1


def test_drop_after_on_a_multi_call_is_outcome_unknown_and_every_reward_exists(sandbox):
    client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, fault="drop-after"))

    with pytest.raises(TransportError) as caught:
        client.create_rewards(
            mode="link", recipients=[Recipient("a@example.com"), Recipient("b@example.com")]
        )

    assert caught.value.outcome_unknown is True
    assert [m.recipient_email for m in _made()] == ["a@example.com", "b@example.com"]


def test_timeout_after_is_outcome_unknown_and_the_reward_exists(sandbox):
    campaign = sandbox.campaign("c-1", PASS, fault="timeout-after", fault_delay=1.5)
    client = MokugiftClient.for_campaign(campaign, timeout=(5, 0.5))

    started = time.perf_counter()
    with pytest.raises(TransportError, match="read timeout") as caught:
        client.create_reward(mode="email", recipient="a@example.com")

    assert time.perf_counter() - started < 1.5
    assert caught.value.reached_server is True
    assert caught.value.outcome_unknown is True
    assert len(_made("a@example.com")) == 1


def test_after_a_lost_answer_the_query_finds_the_reward_that_was_made(sandbox):
    client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, fault="drop-after"))

    with pytest.raises(TransportError):
        client.create_reward(mode="email", recipient="a@example.com")

    # Faults touch only the create calls: the query tells what happened.
    [record] = list(client.rewards_in_month())
    assert record.recipient_email == "a@example.com"
    assert record.id == _made()[0].remote_id


def test_the_client_sends_nothing_twice_whatever_the_fault(sandbox):
    for fault in ("http500", "error110", "drop-before", "drop-after"):
        client = MokugiftClient.for_campaign(sandbox.campaign("c-1", PASS, fault=fault))
        with pytest.raises((TransportError, ApiError)):
            client.create_reward(mode="email", recipient=f"{fault}@example.com")

    made = [m.recipient_email for m in _made()]
    assert made == ["drop-after@example.com"]
