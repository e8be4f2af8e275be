"""Each fault of the sandbox as a plain HTTP client sees it, and what it left behind."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.models import SandboxReward
from tests.sandbox.helpers import TIMEOUT, assert_failed, get, parse, post

PASS = "pass-1"


def _count(recipient: str = "a@b.com") -> int:
    return SandboxReward.objects.filter(
        campaign__campaign_id="c-1", recipient_email=recipient
    ).count()


def _reward(sandbox, **headers) -> requests.Response:
    return requests.post(
        sandbox.api_url + "reward_url/c-1",
        data={"passcode": PASS, "recipient_email": "a@b.com"},
        headers=headers,
        timeout=TIMEOUT,
    )


def test_http500_answers_a_500_and_makes_nothing(sandbox):
    sandbox.campaign("c-1", PASS, fault="http500")

    response = _reward(sandbox)

    assert response.status_code == 500
    assert _count() == 0


def test_error110_answers_api_error_110_and_makes_nothing(sandbox):
    sandbox.campaign("c-1", PASS, fault="error110")

    assert_failed(_reward(sandbox), 110)
    assert _count() == 0


def test_drop_before_closes_the_connection_with_no_answer_and_makes_nothing(sandbox):
    sandbox.campaign("c-1", PASS, fault="drop-before")

    with pytest.raises(requests.ConnectionError):
        _reward(sandbox)
    assert _count() == 0


def test_drop_after_closes_the_connection_with_no_answer_after_making_the_reward(sandbox):
    sandbox.campaign("c-1", PASS, fault="drop-after")

    with pytest.raises(requests.ConnectionError):
        _reward(sandbox)
    assert _count() == 1


def test_drop_after_on_a_multi_call_makes_every_reward(sandbox):
    sandbox.campaign("c-1", PASS, fault="drop-after")

    with pytest.raises(requests.ConnectionError):
        post(sandbox, "multi_rewards/c-1", passcode=PASS, recipient_list="a@b.com,c@d.com")
    assert _count("a@b.com") == 1
    assert _count("c@d.com") == 1


def test_a_dropped_connection_leaves_the_server_serving_the_next_call(sandbox):
    sandbox.campaign("c-1", PASS, fault="drop-after")
    with requests.Session() as session:
        for _ in range(2):
            with pytest.raises(requests.ConnectionError):
                session.post(
                    sandbox.api_url + "reward/c-1",
                    data={"passcode": PASS, "recipient_email": "a@b.com"},
                    timeout=TIMEOUT,
                )
        # Queries stay honest whatever the fault.
        root = parse(session.get(sandbox.api_url + "all_rewards/c-1", timeout=TIMEOUT))
    assert root.findtext("summary/reward_count") == "2"


def test_timeout_after_makes_the_reward_then_answers_too_late(sandbox):
    sandbox.campaign("c-1", PASS, fault="timeout-after", fault_delay=1.5)

    started = time.perf_counter()
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            sandbox.api_url + "reward/c-1",
            data={"passcode": PASS, "recipient_email": "a@b.com"},
            timeout=(5, 0.5),
        )
    assert time.perf_counter() - started < 1.5
    assert _count() == 1


def test_timeout_after_still_answers_a_patient_client(sandbox):
    sandbox.campaign("c-1", PASS, fault="timeout-after", fault_delay=0.3)

    started = time.perf_counter()
    root = parse(_reward(sandbox))

    assert time.perf_counter() - started >= 0.3
    assert root.findtext("status") == "Success"


def test_the_fault_rate_decides_how_many_calls_suffer(sandbox):
    sandbox.campaign("c-1", PASS, fault="error110", fault_rate=0)
    assert parse(_reward(sandbox)).findtext("status") == "Success"

    sandbox.campaign("c-1", PASS, fault_rate=0.5)
    statuses = [parse(_reward(sandbox)).findtext("status") for _ in range(40)]

    # Each outcome has odds of 1 in 2**40 to be missing.
    assert "Success" in statuses
    assert "Failed" in statuses
    assert _count() == 1 + statuses.count("Success")


def test_a_call_may_ask_for_its_own_fault_by_header(sandbox):
    sandbox.campaign("c-1", PASS)

    with pytest.raises(requests.ConnectionError):
        _reward(sandbox, **{"X-Sandbox-Fault": "drop-after"})
    assert _reward(sandbox, **{"X-Sandbox-Fault": "http500"}).status_code == 500
    assert _count() == 1


def test_faults_do_not_touch_the_query_calls(sandbox):
    sandbox.campaign("c-1", PASS, fault="http500")

    assert parse(get(sandbox, "all_rewards/c-1")).findtext("status") == "Success"
    assert parse(get(sandbox, "rewards_in_month/c-1")).findtext("status") == "Success"


def test_faults_come_after_the_checks_of_the_call(sandbox):
    sandbox.campaign("c-1", PASS, fault="drop-before")

    assert_failed(post(sandbox, "reward/c-1", passcode="wrong", recipient_email="a@b.com"), 102)


def test_a_fixed_latency_delays_every_call(sandbox):
    sandbox.campaign("c-1", PASS, latency_ms=300)

    started = time.perf_counter()
    parse(_reward(sandbox))
    parse(get(sandbox, "all_rewards/c-1"))

    assert time.perf_counter() - started >= 0.6


def test_a_latency_range_delays_each_call_within_it(sandbox):
    sandbox.campaign("c-1", PASS, latency_ms=(100, 200))

    started = time.perf_counter()
    parse(_reward(sandbox))
    elapsed = time.perf_counter() - started

    assert 0.1 <= elapsed < 2
