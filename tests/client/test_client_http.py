"""The client over real HTTP against a tiny local server: what it sends, and how each transport
failure (refused, timeout, reset, 5xx, a cut stream, a body that is not XML) is reported."""

from __future__ import annotations

import os
import re
import time
from html import escape

import pytest

import mokudash
from rewards import mokugift
from rewards.mokugift import (
    MAX_RECIPIENTS_PER_CALL,
    ApiError,
    MokugiftClient,
    MokugiftError,
    ProtocolError,
    Recipient,
    RecipientRefused,
    TransportError,
)
from tests.client import bodies
from tests.client.server import (
    body,
    chunks,
    closed_port,
    delay,
    keepalive,
    local_server,
    redirect,
    reset,
    status,
    unaccepting_port,
)

PASSCODE = "s3cr3t-Passcode/+&="


@pytest.fixture
def server():
    with local_server() as running:
        yield running


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


def _client(server, sleeps=None, *, timeout=(2.0, 2.0), campaign_id="c-1") -> MokugiftClient:
    return MokugiftClient(
        base_url=server.url,
        campaign_id=campaign_id,
        passcode=PASSCODE,
        timeout=timeout,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def _assert_no_passcode(error: BaseException) -> None:
    for text in (str(error), repr(error), repr(error.args), repr(vars(error))):
        assert PASSCODE not in text
        assert "s3cr3t" not in text


# --- What is sent -------------------------------------------------------------------------


def test_create_reward_posts_the_form_of_the_document_with_our_user_agent(server):
    server.then(body(bodies.REWARD_URL))

    result = _client(server).create_reward(mode="link", recipient="sally@chan.com", name="Sally")

    assert result.reward.url == "http://www.mokugift.com/r/r-2"
    [request] = server.received
    assert (request.method, request.path) == ("POST", "/api/reward_url/c-1")
    assert request.form == {
        "passcode": PASSCODE,
        "recipient_email": "sally@chan.com",
        "recipient_name": "Sally",
    }
    assert request.headers["User-Agent"] == f"mokudash/{mokudash.__version__}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("mode", "path", "field"),
    [
        ("email", "/api/reward/c-1", "recipient_email"),
        ("link", "/api/reward_url/c-1", "recipient_email"),
        ("link-id", "/api/reward_url2/c-1", "recipient_id"),
    ],
)
def test_each_mode_of_a_single_create_calls_its_own_path(server, mode, path, field):
    answer = {"email": bodies.REWARD, "link": bodies.REWARD_URL, "link-id": bodies.REWARD_URL2}
    server.then(body(answer[mode]))

    _client(server).create_reward(mode=mode, recipient="x")

    assert server.received[0].path == path
    assert server.received[0].form == {"passcode": PASSCODE, field: "x"}


@pytest.mark.parametrize(
    ("mode", "path"),
    [
        ("email", "/api/multi_rewards/c-1"),
        ("link", "/api/multi_reward_urls/c-1"),
        ("link-id", "/api/multi_reward_urls2/c-1"),
    ],
)
def test_create_rewards_builds_the_recipient_list_of_the_document(server, mode, path):
    answer = {
        "email": bodies.MULTI_REWARDS,
        "link": bodies.MULTI_REWARD_URLS,
        # One made and one unsent: an answer for the two recipients asked for.
        "link-id": re.sub(
            r"\s*<unsent_reward>\s*<recipient>user0000</recipient>.*?</unsent_reward>",
            "",
            bodies.MULTI_REWARD_URLS2_PART_FAILED,
            flags=re.DOTALL,
        ),
    }
    assert answer["link-id"].count("<unsent_reward>") == 1
    server.then(body(answer[mode]))

    _client(server).create_rewards(
        mode=mode, recipients=[Recipient("  sally@chan.com "), Recipient("john", " John Smith ")]
    )

    assert server.received[0].path == path
    assert server.received[0].form == {
        "passcode": PASSCODE,
        "recipient_list": "sally@chan.com,John Smith <john>",
    }


def test_the_campaign_id_is_escaped_in_the_path(server):
    server.then(body(bodies.REWARD))

    _client(server, campaign_id="a b/c").create_reward(mode="email", recipient="x@y.com")

    assert server.received[0].path == "/api/reward/a%20b%2Fc"


def test_the_query_paths_carry_month_and_year_or_neither(server):
    server.then(body(bodies.QUERY), body(bodies.QUERY), body(bodies.QUERY))
    client = _client(server)

    assert len(list(client.rewards_in_month(month=5, year=2026))) == 2
    assert len(list(client.rewards_in_month())) == 2
    assert len(list(client.all_rewards())) == 2

    assert [(r.method, r.path) for r in server.received] == [
        ("GET", "/api/rewards_in_month/c-1/5/2026"),
        ("GET", "/api/rewards_in_month/c-1"),
        ("GET", "/api/all_rewards/c-1"),
    ]
    assert all("passcode" not in r.path for r in server.received)


def test_only_one_of_month_and_year_is_refused_before_sending(server):
    with pytest.raises(ValueError, match="both month and year"):
        _client(server).rewards_in_month(month=5)
    assert server.received == []


def test_an_unknown_mode_is_refused_before_sending(server):
    with pytest.raises(ValueError, match="unknown mode"):
        _client(server).create_reward(mode="fax", recipient="x")
    assert server.received == []


def test_the_timeouts_default_to_the_settings(settings):
    settings.MOKUGIFT_CONNECT_TIMEOUT = 1.5
    settings.MOKUGIFT_READ_TIMEOUT = 7.0

    client = MokugiftClient(base_url="http://127.0.0.1:1/api", campaign_id="c-1")

    assert client.timeout == (1.5, 7.0)
    assert client.base_url == "http://127.0.0.1:1/api/"


# The fork happens in a test process that has threads (earlier tests' servers); the child
# only makes a session and exits.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_one_session_per_process_and_a_new_one_in_a_forked_child():
    session = mokugift.session_get()
    assert mokugift.session_get() is session
    assert session.get_adapter("http://x/").max_retries.total == 0

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new session, not the parent's pool
        os.close(read)
        os.write(write, b"new" if mokugift.session_get() is not session else b"same")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 10)
    os.close(read)
    os.waitpid(pid, 0)

    assert answer == b"new"


# --- Refused before sending ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipient", "index_of_bad", "reason"),
    [
        (Recipient("a@b.com", "Smith, John"), 1, "The name holds a comma"),
        (Recipient("a@b.com", "John <Boss>"), 1, "The name holds “<”"),
        (Recipient("a@b.com", "John Boss>"), 1, "The name holds “>”"),
        (Recipient("a@b.com", "John\nSmith"), 1, "The name holds a line break"),
        (Recipient("a b@c.com"), 1, "The email address holds a space"),
        (Recipient("a,b@c.com"), 1, "The email address holds a comma"),
        (Recipient("<a@b.com>"), 1, "The email address holds “<”"),
        (Recipient("   "), 1, "The email address is missing"),
    ],
)
def test_a_recipient_the_list_cannot_carry_is_refused_before_sending(
    server, recipient, index_of_bad, reason
):
    recipients = [Recipient("ok@example.com", "Ok"), recipient]

    with pytest.raises(RecipientRefused) as caught:
        _client(server).create_rewards(mode="link", recipients=recipients)

    assert caught.value.index == index_of_bad
    assert reason in caught.value.reason
    assert str(caught.value).startswith("recipient 2: ")
    assert isinstance(caught.value, ValueError)
    assert caught.value.outcome_unknown is False
    assert server.received == []


def test_a_recipient_id_with_a_space_is_refused_before_sending(server):
    with pytest.raises(RecipientRefused, match="The recipient ID holds a space"):
        _client(server).create_rewards(mode="link-id", recipients=[Recipient("user 1")])
    assert server.received == []


def test_more_than_a_thousand_recipients_are_refused_before_sending(server):
    recipients = [Recipient(f"u{n}@example.com") for n in range(MAX_RECIPIENTS_PER_CALL + 1)]

    with pytest.raises(RecipientRefused, match="1001 recipients: at most 1000") as caught:
        _client(server).create_rewards(mode="email", recipients=recipients)

    assert caught.value.index is None
    assert server.received == []


def test_no_recipient_at_all_is_refused_before_sending(server):
    with pytest.raises(RecipientRefused, match="at least one"):
        _client(server).create_rewards(mode="email", recipients=[])
    assert server.received == []


# --- Transport failures of a create call ---------------------------------------------------


def test_a_refused_connection_never_reached_the_server_and_made_nothing():
    client = MokugiftClient(
        base_url=f"http://127.0.0.1:{closed_port()}/api/",
        campaign_id="c-1",
        passcode=PASSCODE,
        timeout=(2, 2),
    )

    with pytest.raises(TransportError) as caught:
        client.create_reward(mode="email", recipient="a@b.com")

    error = caught.value
    assert not isinstance(error, ProtocolError)
    assert error.reached_server is False
    assert error.outcome_unknown is False
    assert error.retryable is True
    assert "could not connect" in str(error)
    assert error.__context__ is None and error.__cause__ is None
    _assert_no_passcode(error)


def test_a_connect_timeout_never_reached_the_server_and_made_nothing():
    with unaccepting_port() as port:
        client = MokugiftClient(
            base_url=f"http://127.0.0.1:{port}/api/",
            campaign_id="c-1",
            passcode=PASSCODE,
            timeout=(0.3, 2),
        )
        started = time.perf_counter()
        with pytest.raises(TransportError) as caught:
            client.create_rewards(mode="email", recipients=[Recipient("a@b.com")])

    assert time.perf_counter() - started < 2
    assert "connect timeout" in str(caught.value)
    assert caught.value.reached_server is False
    assert caught.value.outcome_unknown is False
    _assert_no_passcode(caught.value)


def test_a_read_timeout_on_a_create_is_outcome_unknown(server):
    server.then(delay(1.0, then=body(bodies.REWARD)))

    started = time.perf_counter()
    with pytest.raises(TransportError) as caught:
        _client(server, timeout=(2, 0.3)).create_reward(mode="email", recipient="a@b.com")

    assert time.perf_counter() - started < 1.0
    assert caught.value.reached_server is True
    assert caught.value.outcome_unknown is True
    assert "read timeout (outcome unknown)" in str(caught.value)
    _assert_no_passcode(caught.value)


def test_a_reset_after_the_request_is_outcome_unknown(server):
    server.then(reset)

    with pytest.raises(TransportError) as caught:
        _client(server).create_reward(mode="email", recipient="a@b.com")

    assert caught.value.reached_server is True
    assert caught.value.outcome_unknown is True
    assert caught.value.__context__ is None
    _assert_no_passcode(caught.value)


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_an_http_5xx_on_a_create_is_outcome_unknown(server, code):
    server.then(status(code))

    with pytest.raises(TransportError) as caught:
        _client(server).create_rewards(mode="email", recipients=[Recipient("a@b.com")])

    assert not isinstance(caught.value, ProtocolError)
    assert f"HTTP 5xx {code}" in str(caught.value)
    assert caught.value.outcome_unknown is True


@pytest.mark.parametrize("behaviour", [status(404, "Not Found"), redirect()])
def test_another_http_status_is_a_transport_error_and_redirects_are_not_followed(server, behaviour):
    server.then(behaviour)

    with pytest.raises(TransportError, match="unexpected HTTP status") as caught:
        _client(server).create_reward(mode="email", recipient="a@b.com")

    assert caught.value.outcome_unknown is True
    assert len(server.received) == 1


def test_a_200_that_is_not_xml_is_a_protocol_error_and_outcome_unknown(server):
    server.then(body("<html><body>Maintenance</body></html>", content_type="text/html"))

    with pytest.raises(ProtocolError, match="root element is <html>") as caught:
        _client(server).create_reward(mode="email", recipient="a@b.com")

    assert caught.value.outcome_unknown is True


def test_an_answer_cut_in_the_middle_is_a_transport_error_and_outcome_unknown(server):
    data = bodies.MULTI_REWARDS.encode()
    server.then(chunks([data[:100], data[100:]], cut=True))

    with pytest.raises(TransportError) as caught:
        _client(server).create_rewards(mode="email", recipients=[Recipient("a@b.com")])

    assert caught.value.outcome_unknown is True


def test_a_create_after_a_pause_opens_a_new_connection_not_one_the_server_may_be_closing(
    server,
):
    # The server keeps a connection 1.5 s (gunicorn 2 s): a create sent on a connection idle
    # longer than that meets the server's close and is outcome unknown. It once left 250 rows
    # unknown after a worker's pause.
    server.always("", keepalive(1.5, body(bodies.REWARD_URL)))
    client = _client(server)
    client.create_reward(mode="link", recipient="a@chan.com", name="A")
    time.sleep(1.6)

    client.create_reward(mode="link", recipient="b@chan.com", name="B")

    first, second = server.received
    assert first.port != second.port


def test_a_connection_is_reused_between_calls_close_together(server):
    server.always("", keepalive(1.5, body(bodies.REWARD_URL)))
    client = _client(server)
    client.create_reward(mode="link", recipient="a@chan.com", name="A")
    time.sleep(0.2)
    client.create_reward(mode="link", recipient="b@chan.com", name="B")

    first, second = server.received
    assert first.port == second.port


def test_a_create_call_is_never_retried(server, sleeps):
    server.then(status(500), body(bodies.REWARD))

    with pytest.raises(TransportError):
        _client(server, sleeps).create_reward(mode="email", recipient="a@b.com")

    assert len(server.received) == 1
    assert sleeps == []


def test_a_create_answered_110_is_not_retried_and_outcome_unknown(server, sleeps):
    server.then(body(bodies.failed(110, "Internal error")), body(bodies.REWARD))

    with pytest.raises(ApiError) as caught:
        _client(server, sleeps).create_reward(mode="email", recipient="a@b.com")

    assert caught.value.outcome_unknown is True
    assert caught.value.retryable is True
    assert len(server.received) == 1


# --- Queries: retried with backoff until the first reward ----------------------------------


def test_a_query_is_retried_with_growing_waits_after_5xx_and_110(server, sleeps):
    server.then(status(503), body(bodies.failed(110, "Internal error")), body(bodies.QUERY))

    with _client(server, sleeps).all_rewards() as stream:
        records = list(stream)

    assert [r.id for r in records] == ["r-1", "r-3"]
    assert len(server.received) == 3
    assert len(sleeps) == 2
    # Backoff 0.5 s then 1 s, each with jitter of +-50 %.
    assert 0.25 <= sleeps[0] <= 0.75
    assert 0.5 <= sleeps[1] <= 1.5


def test_a_query_gives_up_after_three_tries(server, sleeps):
    server.then(status(500), status(500), status(500), body(bodies.QUERY))

    with pytest.raises(TransportError) as caught:
        list(_client(server, sleeps).rewards_in_month(month=1, year=2026))

    assert len(server.received) == 3
    assert len(sleeps) == 2
    assert caught.value.outcome_unknown is False


def test_a_query_is_retried_after_a_refused_connection(sleeps):
    client = MokugiftClient(
        base_url=f"http://127.0.0.1:{closed_port()}/api/",
        campaign_id="c-1",
        timeout=(2, 2),
        sleep=sleeps,
    )

    with pytest.raises(TransportError) as caught:
        list(client.all_rewards())

    assert len(sleeps) == 2
    assert caught.value.reached_server is False


def test_a_final_api_error_of_a_query_is_not_retried(server, sleeps):
    server.then(body(bodies.failed(101, "Invalid campaign ID")), body(bodies.QUERY))

    with pytest.raises(ApiError) as caught:
        list(_client(server, sleeps).all_rewards())

    assert caught.value.code == 101
    assert len(server.received) == 1
    assert sleeps == []


def test_a_query_cut_after_its_first_rewards_is_raised_not_retried(server, sleeps):
    # 3,000 rewards in chunks of 500; the connection is reset before the last two chunks.
    parts = list(bodies.query_chunks(3000))
    server.then(chunks(parts[:-2], cut=True), body(bodies.QUERY))

    seen = []
    stream = _client(server, sleeps).all_rewards()
    with pytest.raises(TransportError) as caught, stream:
        seen.extend(stream)

    assert 0 < len(seen) < 3000
    assert caught.value.outcome_unknown is False
    assert len(server.received) == 1
    assert sleeps == []


def test_closing_a_stream_closes_the_connection(server):
    endless = (bodies.query_reward(n).encode() * 50 for n in range(10**6))
    server.then(chunks(_header_then(endless)))

    with _client(server).all_rewards() as stream:
        first = next(stream)

    assert first.id == "r-0"
    # The server finds the client gone as soon as the socket buffers are full.
    assert server.client_went_away.wait(timeout=20)
    with pytest.raises(StopIteration):
        next(stream)


def _header_then(parts):
    yield next(bodies.query_chunks(0))
    yield from parts


def test_a_stream_opens_lazily_and_raises_at_the_with_line(server):
    server.then(body(bodies.failed(101, "Invalid campaign ID")))
    stream = _client(server).all_rewards()
    assert server.received == []

    with pytest.raises(ApiError), stream:
        pytest.fail("the with block must not be entered")

    assert len(server.received) == 1


# --- The passcode in messages --------------------------------------------------------------


def test_no_error_message_ever_holds_the_passcode(server):
    # A server that echoes the passcode back in its error description, and every failure.
    server.then(
        body(bodies.failed(102, f"Incorrect Passcode {escape(PASSCODE)}")),
        body(f"<result><version>1.0</version><status>{escape(PASSCODE)}</status></result>"),
        status(500, PASSCODE),
        reset,
        delay(1.0),
    )
    client = _client(server, timeout=(2, 0.3))
    errors = []
    for _ in range(5):
        with pytest.raises(MokugiftError) as caught:
            client.create_reward(mode="email", recipient="a@b.com", name=PASSCODE[:4])
        errors.append(caught.value)
    refused = MokugiftClient(
        base_url=f"http://127.0.0.1:{closed_port()}/", campaign_id="c", passcode=PASSCODE
    )
    with pytest.raises(TransportError) as caught:
        refused.create_reward(mode="email", recipient="a@b.com")
    errors.append(caught.value)

    assert [type(e).__name__ for e in errors] == [
        "ApiError",
        "ProtocolError",
        "TransportError",
        "TransportError",
        "TransportError",
        "TransportError",
    ]
    assert "[passcode]" in errors[0].description
    for error in errors:
        _assert_no_passcode(error)
        assert error.__context__ is None
    assert PASSCODE not in repr(client)
