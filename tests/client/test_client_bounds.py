"""Every answer is bounded: a create answer holds at most as many rewards as were asked for, in
a bounded number of bytes, and every call ends by its deadline however slowly the server
answers. Over real HTTP from the scripted local server."""

from __future__ import annotations

import itertools
import threading
import time
import tracemalloc

import pytest

from rewards.mokugift import (
    DeadlineExceeded,
    MokugiftClient,
    ProtocolError,
    Recipient,
    create_body_parse,
    query_body_stream,
)
from tests.client import bodies
from tests.client.server import body, chunks, dribble, local_server

PASSCODE = "b0unds-Passcode"
HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<result><version>1.0</version>'
    b"<status>Success</status><transaction_id>tx-1</transaction_id>"
)


@pytest.fixture
def server():
    with local_server() as running:
        yield running


def _client(server, *, deadline: float = 30.0, timeout=(2.0, 2.0)) -> MokugiftClient:
    return MokugiftClient(
        base_url=server.url,
        campaign_id="c-1",
        passcode=PASSCODE,
        timeout=timeout,
        deadline=deadline,
        answer_bytes_per_reward=4096,
        sleep=lambda _seconds: None,
    )


class Endless:
    """An answer that never ends: `head`, then `item` for ever; counts what it sent."""

    def __init__(self, head: bytes, item: bytes):
        self.head, self.item, self.sent = head, item, 0

    def __iter__(self):
        self.sent += len(self.head)
        yield self.head
        block = self.item * max(1, 16384 // len(self.item))
        for _ in itertools.count():
            self.sent += len(block)
            yield block


def _bounded(call) -> tuple[BaseException, float, int]:
    """Run `call`, which must fail; its error, the seconds it took, Python's peak memory."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ProtocolError) as caught:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return caught.value, time.monotonic() - started, peak


REWARD_ITEM = (
    b"<reward><id>r-1</id><recipient_email>a0@example.com</recipient_email>"
    b"<url>http://www.mokugift.com/r/r-1</url></reward>"
)
UNSENT_ITEM = b"<unsent_reward/>"
FOUR = [Recipient(f"a{n}@example.com") for n in range(4)]


@pytest.mark.parametrize(
    ("head", "item", "reason"),
    [
        (HEAD + b"<rewards>", REWARD_ITEM, "5 rewards and unsent rewards or more, for 4"),
        (
            HEAD.replace(b"Success", b"Part_Failed") + b"<rewards></rewards><unsent_rewards>",
            UNSENT_ITEM,
            "5 rewards and unsent rewards or more, for 4",
        ),
    ],
    ids=["rewards", "unsent-rewards"],
)
def test_an_endless_multi_answer_fails_at_the_reward_past_those_asked_for(
    server, head, item, reason
):
    endless = Endless(head, item)
    server.then(chunks(endless))

    error, seconds, peak = _bounded(
        lambda: _client(server).create_rewards(mode="link", recipients=FOUR)
    )

    assert reason in str(error)
    assert error.outcome_unknown is True
    assert seconds < 2
    assert peak < 2 * 1024 * 1024, peak
    server.client_went_away.wait(5)
    assert server.client_went_away.is_set()  # the client stopped reading; the server gave up
    assert endless.sent < 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (REWARD_ITEM, "more than one <reward> in <result>"),
        # No unsent reward is ever read in a single call's answer: they only pile up.
        (UNSENT_ITEM, "more than 69,632 bytes, longer than an answer for 1 reward can be"),
    ],
    ids=["rewards", "unsent-rewards"],
)
def test_an_endless_single_answer_fails_in_bounded_memory(server, item, reason):
    server.then(chunks(Endless(HEAD, item)))

    error, seconds, peak = _bounded(
        lambda: _client(server).create_reward(mode="link", recipient="a0@example.com")
    )

    assert reason in str(error)
    assert error.outcome_unknown is True
    assert seconds < 2 and peak < 2 * 1024 * 1024, (seconds, peak)


def test_a_create_answer_longer_than_its_rewards_can_take_is_a_protocol_error(server):
    # Blanks are XML, and each piece of text is short: only the byte bound sees it.
    padded = bodies.REWARD_URL.replace("</reward>", "</reward>" + " \n" * 40_000)
    server.then(body(padded))

    error, _seconds, _peak = _bounded(
        lambda: _client(server).create_reward(mode="link", recipient="sally@chan.com")
    )

    assert "more than 69,632 bytes" in str(error)
    assert error.outcome_unknown is True


def test_a_create_answer_of_as_many_rewards_as_asked_for_is_read_in_full():
    items = "".join(
        f"<reward><id>r-{n}</id><recipient_email>a{n}@example.com</recipient_email></reward>"
        for n in range(1000)
    )
    data = (HEAD + b"<rewards>" + items.encode() + b"</rewards></result>").decode()

    result = create_body_parse(
        body=data.encode(), mode="email", multi=True, asked=1000, max_bytes=64 * 1024 + 4096000
    )

    assert len(result.rewards) == 1000
    with pytest.raises(ProtocolError, match="1000 rewards and unsent rewards or more, for 999"):
        create_body_parse(body=data.encode(), mode="email", multi=True, asked=999)


@pytest.mark.parametrize(
    "item",
    [b"<reward><id>r-1</id></reward>", b"<result/>", b"<unsent_reward/>", b"<x/>"],
    ids=["reward-under-result", "result-in-result", "unsent-reward", "other"],
)
def test_elements_piling_up_outside_the_rewards_list_end_a_query_in_bounded_memory(item):
    # Each is an element the parser hears of (or none): none is a reward it can hand out and
    # drop, so they stay in the tree until the quiet guard stops them.
    endless = Endless(HEAD.replace(b"<transaction_id>tx-1</transaction_id>", b""), item)

    tracemalloc.start()
    try:
        stream = query_body_stream(chunks=endless)
        with pytest.raises(ProtocolError, match="holds more than 65536 characters"), stream:
            list(stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert endless.sent < 1024 * 1024
    assert peak < 2 * 1024 * 1024, peak


# --- The deadline ----------------------------------------------------------------------------


@pytest.mark.parametrize("headers_first", [False, True], ids=["from-the-status-line", "body"])
def test_a_slow_loris_create_answer_ends_at_the_deadline_as_outcome_unknown(server, headers_first):
    # A byte every 0.2 s never trips a read timeout of 1 s; the whole answer would take a
    # minute.
    server.then(dribble(bodies.REWARD_URL.encode(), every=0.2, headers_first=headers_first))
    client = _client(server, deadline=1.0, timeout=(1.0, 1.0))
    started = time.monotonic()

    with pytest.raises(DeadlineExceeded) as caught:
        client.create_reward(mode="link", recipient="sally@chan.com")

    assert 0.9 < time.monotonic() - started < 1.6
    assert caught.value.outcome_unknown is True
    assert caught.value.reached_server is True
    assert "no complete answer within the call's deadline of 1 s (outcome unknown)" in str(
        caught.value
    )
    assert PASSCODE not in str(caught.value)


def test_a_slow_loris_query_ends_at_its_deadline_and_is_not_retried(server):
    server.then(dribble(bodies.QUERY.encode(), every=0.2))
    client = _client(server, deadline=1.0, timeout=(1.0, 1.0))
    started = time.monotonic()

    with pytest.raises(DeadlineExceeded) as caught, client.rewards_in_month() as stream:
        list(stream)

    assert 0.9 < time.monotonic() - started < 1.6
    assert caught.value.outcome_unknown is False
    assert len(server.received) == 1


def test_a_query_given_its_own_deadline_keeps_to_it(server):
    server.then(dribble(bodies.QUERY.encode(), every=0.2, headers_first=True))
    client = _client(server, deadline=30.0, timeout=(1.0, 1.0))
    started = time.monotonic()

    with pytest.raises(DeadlineExceeded, match="deadline of 0.7 s"):
        list(client.all_rewards(deadline=0.7))

    assert time.monotonic() - started < 1.3


def test_the_connection_a_deadline_cut_is_not_used_again(server):
    server.then(
        dribble(bodies.REWARD_URL.encode(), every=0.2, headers_first=True),
        body(bodies.REWARD_URL),
        body(bodies.REWARD_URL),
    )
    client = _client(server, deadline=0.8, timeout=(1.0, 1.0))

    with pytest.raises(DeadlineExceeded):
        client.create_reward(mode="link", recipient="sally@chan.com")
    # The same session: the pool hands out a new connection, not the one that was cut.
    assert client.create_reward(mode="link", recipient="sally@chan.com").reward.id == "r-2"
    assert client.create_reward(mode="link", recipient="sally@chan.com").reward.id == "r-2"


def test_a_deadline_does_not_cut_a_call_that_ended_in_time(server):
    server.then(body(bodies.REWARD_URL), body(bodies.REWARD_URL))
    client = _client(server, deadline=0.3)

    assert client.create_reward(mode="link", recipient="sally@chan.com").reward.id == "r-2"
    time.sleep(0.5)  # past the first call's deadline: its timer was stopped with it
    assert client.create_reward(mode="link", recipient="sally@chan.com").reward.id == "r-2"
    assert [r.path for r in server.received] == ["/api/reward_url/c-1"] * 2


def test_closing_a_stream_from_another_thread_ends_the_read_waiting_in_it(server):
    server.then(dribble(bodies.QUERY.encode(), every=0.5, headers_first=True))
    stream = _client(server, deadline=30.0, timeout=(5.0, 5.0)).all_rewards()
    failures = []

    def read() -> None:
        try:
            list(stream)
        except Exception as error:  # noqa: BLE001 - what the reader saw is the test's subject
            failures.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.6)
    started = time.monotonic()
    stream.close()
    reader.join(5)

    assert not reader.is_alive()
    assert time.monotonic() - started < 1
    assert not any(isinstance(failure, DeadlineExceeded) for failure in failures)
