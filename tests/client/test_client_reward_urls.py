"""A reward's URL is a link people click on our pages: only an http(s) address is taken."""

from __future__ import annotations

import logging

import pytest

from rewards.mokugift import create_body_parse
from tests.client import bodies

REFUSED = [
    "javascript:alert(document.domain)//",
    "JavaScript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/r-2",
    "/r/r-2",
    "http:r-2",
    "http://[::1/r-2",
]


def _reward_url(url: str) -> bytes:
    escaped = url.replace("&", "&amp;").replace("<", "&lt;")
    return bodies.REWARD_URL.replace("http://www.mokugift.com/r/r-2", escaped).encode()


@pytest.mark.parametrize("url", REFUSED)
def test_a_reward_whose_url_is_not_a_web_address_is_kept_without_it_and_logged(url, caplog):
    with caplog.at_level(logging.WARNING, logger="rewards.mokugift"):
        result = create_body_parse(body=_reward_url(url), mode="link")
    assert result.reward.id == "r-2"
    assert result.reward.recipient == "sally@chan.com"
    assert result.reward.url is None
    assert "reward_url" in caplog.text and "'r-2'" in caplog.text
    assert "not an http(s) address" in caplog.text


@pytest.mark.parametrize(
    "url", ["http://www.mokugift.com/r/r-2", "HTTPS://www.mokugift.com/r/r-2?x=1&y=2"]
)
def test_an_http_or_https_url_is_taken_as_it_is(url, caplog):
    with caplog.at_level(logging.WARNING, logger="rewards.mokugift"):
        result = create_body_parse(body=_reward_url(url), mode="link")
    assert result.reward.url == url
    assert caplog.text == ""


def test_one_bad_url_in_a_multi_answer_costs_only_that_rewards_link(caplog):
    body = bodies.MULTI_REWARD_URLS.replace(
        "http://www.mokugift.com/r/r-7", "javascript:alert(document.domain)//"
    )
    with caplog.at_level(logging.WARNING, logger="rewards.mokugift"):
        result = create_body_parse(body=body.encode(), mode="link", multi=True)
    assert [(r.id, r.url) for r in result.rewards] == [
        ("r-6", "http://www.mokugift.com/r/r-6"),
        ("r-7", None),
    ]
    assert "'r-7'" in caplog.text and "'r-6'" not in caplog.text
