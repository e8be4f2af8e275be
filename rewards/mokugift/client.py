"""MokugiftClient: one campaign's calls, what each sends and what its answer means. The
request itself goes out through http; a query's answer is a stream.RewardStream."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypedDict, Unpack
from urllib.parse import quote

from rewards.mokugift.errors import (
    CAMPAIGN_REFUSALS,
    MISSING_RECIPIENT,
    ApiError,
    MokugiftError,
    ProtocolError,
    TransportError,
)
from rewards.mokugift.http import _Deadline, http_open
from rewards.mokugift.parser import _CALLS, _Call, _ResultParser
from rewards.mokugift.recipient_list import Recipient, recipient_list_build
from rewards.mokugift.results import CampaignCheck, CreateResult, MultiResult, Summary
from rewards.mokugift.stream import QUERY_BACKOFF, QUERY_TRIES, RewardStream

if TYPE_CHECKING:
    from campaigns.models import Campaign

# What a create answer may hold besides its rewards: the declaration, version, status,
# transaction ID, an error. Its rewards get MOKUGIFT_MAX_ANSWER_BYTES_PER_REWARD each.
ANSWER_ENVELOPE_BYTES = 64 * 1024


class ClientOptions(TypedDict, total=False):
    """MokugiftClient's arguments besides the campaign's own (for `for_campaign`)."""

    timeout: tuple[float, float] | None
    deadline: float | None
    query_tries: int
    query_backoff: float
    sleep: Callable[[float], None]


class MokugiftClient:
    """One Mokugift campaign's calls. Cheap to make: the HTTP pool is the process's."""

    def __init__(
        self,
        *,
        base_url: str,
        campaign_id: str,
        passcode: str | None = None,
        timeout: tuple[float, float] | None = None,
        deadline: float | None = None,
        answer_bytes_per_reward: int | None = None,
        query_tries: int = QUERY_TRIES,
        query_backoff: float = QUERY_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """`timeout` (connect, read) bounds each wait on the network, `deadline` a call as a
        whole (seconds; a query's stream as a whole, retries included); the settings'
        MOKUGIFT_* values when not given."""
        if timeout is None or deadline is None or answer_bytes_per_reward is None:
            from django.conf import settings

            if timeout is None:
                timeout = (settings.MOKUGIFT_CONNECT_TIMEOUT, settings.MOKUGIFT_READ_TIMEOUT)
            if deadline is None:
                deadline = settings.MOKUGIFT_CALL_DEADLINE
            if answer_bytes_per_reward is None:
                answer_bytes_per_reward = settings.MOKUGIFT_MAX_ANSWER_BYTES_PER_REWARD
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.campaign_id = campaign_id
        self.timeout = timeout
        self.deadline = deadline
        self.answer_bytes_per_reward = answer_bytes_per_reward
        self.query_tries = query_tries
        self.query_backoff = query_backoff
        self._passcode = passcode or ""
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"MokugiftClient(base_url={self.base_url!r}, campaign_id={self.campaign_id!r})"

    @classmethod
    def for_campaign(cls, campaign: Campaign, **kwargs: Unpack[ClientOptions]) -> MokugiftClient:
        """The client of a campaigns.Campaign; its passcode is read (decrypted) here."""
        return cls(
            base_url=campaign.api_base_url,
            campaign_id=campaign.campaign_id,
            passcode=campaign.passcode,
            **kwargs,
        )

    # -- create calls (never retried here)

    def create_reward(self, *, mode: str, recipient: str, name: str = "") -> CreateResult:
        """One reward: "email" (reward/), "link" (reward_url/) or "link-id" (reward_url2/)."""
        single_call, _, recipient_field = _calls_of(mode)
        data = {"recipient_name": name} if name else {}
        data[recipient_field] = recipient
        result = self._create(call=single_call, mode=mode, multi=False, data=data, asked=1)
        assert isinstance(result, CreateResult)  # what a single call's parser makes
        return result

    def create_rewards(self, *, mode: str, recipients: Sequence[Recipient]) -> MultiResult:
        """One reward per recipient (at most 1,000), by multi_rewards, multi_reward_urls or
        multi_reward_urls2. Raises RecipientRefused, before sending, for a list it cannot send."""
        _, multi_call, _ = _calls_of(mode)
        recipient_list = recipient_list_build(recipients=recipients, by_id=mode == "link-id")
        result = self._create(
            call=multi_call,
            mode=mode,
            multi=True,
            data={"recipient_list": recipient_list},
            asked=len(recipients),
        )
        assert isinstance(result, MultiResult)  # what a multi call's parser makes
        return result

    def check_campaign(self) -> CampaignCheck:
        """Whether Mokugift accepts this campaign ID and passcode, making nothing.

        A reward_url call with no recipient: Mokugift checks the campaign ID, the passcode,
        whether the campaign is enabled and not expired, and only then the recipient, so 111
        (missing recipient) means all of those passed, and 101-104 says which did not.
        Anything else raises: a TransportError (no answer: we cannot tell), an ApiError with
        another code (110, or a code this call should never get), and a ProtocolError for a
        Success, which would mean Mokugift made a reward for no one.
        """
        try:
            self._create(call="reward_url", mode="link", multi=False, data={}, asked=1)
        except ApiError as error:
            if error.code == MISSING_RECIPIENT:
                return CampaignCheck(accepted=True, code=error.code, description=error.description)
            if error.code in CAMPAIGN_REFUSALS:
                return CampaignCheck(accepted=False, code=error.code, description=error.description)
            raise
        raise ProtocolError(
            f"Mokugift reward_url/{self.campaign_id}: status Success for a call with no "
            "recipient (a reward may have been made for no one)"
        )

    def _create(
        self, *, call: str, mode: str, multi: bool, data: dict[str, str], asked: int
    ) -> CreateResult | MultiResult | Summary | None:
        label = f"{call}/{self.campaign_id}"
        parse_call = _Call(kind="multi" if multi else "single", label=label, mode=mode)
        form = {"passcode": self._passcode, **data}
        try:
            return self._send(parse_call, path=self._path(call), data=form, asked=asked)
        except MokugiftError as error:
            error._scrub(self._passcode)
            raise

    # -- query calls (streamed, retried with backoff until the first reward)

    def rewards_in_month(
        self, *, month: int | None = None, year: int | None = None, deadline: float | None = None
    ) -> RewardStream:
        """The rewards of one month (the current month, in UTC, when neither is given).
        `deadline`: seconds for the whole answer, instead of the client's."""
        if (month is None) != (year is None):
            raise ValueError("give both month and year, or neither")
        path = self._path("rewards_in_month")
        if month is not None and year is not None:
            path += f"/{int(month)}/{int(year)}"
        label = f"rewards_in_month/{self.campaign_id}"
        return self._query(path=path, label=label, deadline=deadline)

    def all_rewards(self, *, deadline: float | None = None) -> RewardStream:
        """Every reward the campaign ever made. A large answer: iterate, never list().
        `deadline`: seconds for the whole answer, instead of the client's."""
        label = f"all_rewards/{self.campaign_id}"
        return self._query(path=self._path("all_rewards"), label=label, deadline=deadline)

    def _query(self, *, path: str, label: str, deadline: float | None = None) -> RewardStream:
        call = _Call(kind="query", label=label)
        return RewardStream(
            call=call,
            opener=lambda within: self._open(call, method="GET", path=path, deadline=within),
            tries=self.query_tries,
            backoff=self.query_backoff,
            sleep=self._sleep,
            secret=self._passcode,
            deadline=self.deadline if deadline is None else deadline,
        )

    # -- the request

    def _path(self, call: str) -> str:
        return f"{call}/{quote(self.campaign_id, safe='')}"

    def _open(
        self,
        call: _Call,
        *,
        method: str,
        path: str,
        deadline: _Deadline,
        data: dict[str, str] | None = None,
    ) -> tuple[Iterator[bytes], Callable[[], None]]:
        return http_open(
            call,
            method=method,
            url=self.base_url + path,
            timeout=self.timeout,
            deadline=deadline,
            data=data,
        )

    def _send(
        self, call: _Call, *, path: str, data: dict[str, str], asked: int
    ) -> CreateResult | MultiResult | Summary | None:
        """A create call: the whole answer, parsed, within the deadline and the bounds."""
        deadline = _Deadline(self.deadline)
        deadline.start()
        try:
            return self._send_within(call, path=path, data=data, asked=asked, deadline=deadline)
        except TransportError as error:
            failure = error
        finally:
            deadline.stop()
        raise deadline.instead_of(failure, call)

    def _send_within(
        self, call: _Call, *, path: str, data: dict[str, str], asked: int, deadline: _Deadline
    ) -> CreateResult | MultiResult | Summary | None:
        chunks, close = self._open(call, method="POST", path=path, data=data, deadline=deadline)
        try:
            parser = _ResultParser(
                call,
                asked=asked,
                max_bytes=ANSWER_ENVELOPE_BYTES + asked * self.answer_bytes_per_reward,
            )
            while True:
                if deadline.passed():
                    raise deadline.error(call, reached_server=True)
                chunk = next(chunks, None)  # a failure to read is http_open's TransportError
                if chunk is None:
                    break
                parser.feed(chunk)
            parser.close()
            return parser.outcome
        finally:
            close()


def _calls_of(mode: str) -> tuple[str, str, str]:
    try:
        return _CALLS[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}: one of {', '.join(_CALLS)}") from None
