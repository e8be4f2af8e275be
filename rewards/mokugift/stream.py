"""A query answer (rewards_in_month, all_rewards) read as it arrives: RewardStream, retried
with backoff until its first reward has been handed out, within its deadline as a whole."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator

from rewards.mokugift.errors import ApiError, DeadlineExceeded, MokugiftError, TransportError
from rewards.mokugift.http import _Deadline
from rewards.mokugift.parser import _Call, _ResultParser
from rewards.mokugift.results import RewardRecord, Summary

QUERY_TRIES = 3
QUERY_BACKOFF = 0.5  # seconds before the second try; doubled for each further one


class RewardStream:
    """The rewards of a query call, one RewardRecord at a time, parsed as the bytes arrive.

    A context manager: closing it closes the HTTP response. `summary` is set once the stream
    is exhausted. The request is made on entering the `with` block or at the first `next()`;
    until the answer's status has been read, a transport failure or error 110 is retried with
    backoff. After that a failure is raised as it comes (the caller has rewards already).
    `deadline`: seconds from the first request for the whole answer, retries included, to
    have been read (None: none).
    """

    def __init__(
        self,
        *,
        call: _Call,
        opener: Callable[[_Deadline], tuple[Iterator[bytes], Callable[[], None] | None]],
        tries: int = QUERY_TRIES,
        backoff: float = QUERY_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
        secret: str = "",
        deadline: float | None = None,
    ):
        self.summary: Summary | None = None
        self._call = call
        self._opener = opener
        self._tries = max(1, tries)
        self._backoff = backoff
        self._sleep = sleep
        self._secret = secret
        self._deadline = _Deadline(deadline)
        self._parser: _ResultParser | None = None
        self._chunks: Iterator[bytes] | None = None
        self._closer: Callable[[], None] | None = None
        self._finished = False
        self._closed = False

    def __enter__(self) -> RewardStream:
        self._ensure_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> RewardStream:
        return self

    def __next__(self) -> RewardRecord:
        if self._closed and self._parser is not None:
            raise StopIteration  # exhausted, failed or closed by the caller
        self._ensure_open()
        try:
            return self._next()
        except MokugiftError as error:
            failure = error
        self.close()
        failure = self._deadline.instead_of(failure, self._call)
        if self._secret:
            failure._scrub(self._secret)
        raise failure

    def close(self) -> None:
        """Close the answer. Closed before its end (perhaps by another thread than the one
        reading it), its socket is shut down too, so that a read waiting on it ends now."""
        self._closed = True
        if not self._finished:
            self._deadline.cut()
        self._deadline.stop()
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def _next(self) -> RewardRecord:
        parser = self._parser
        assert parser is not None  # made by _ensure_open
        while not parser.pending:
            if self._finished:
                self.close()
                raise StopIteration
            chunk = self._read()
            if chunk is None:
                parser.close()
                self._finished = True
                assert isinstance(parser.outcome, Summary)  # what a query call's parser makes
                self.summary = parser.outcome
            else:
                parser.feed(chunk)
        reward = parser.pending.popleft()
        assert isinstance(reward, RewardRecord)  # a query call's parser reads no other
        return reward

    def _read(self) -> bytes | None:
        assert self._chunks is not None  # set by _open_once
        if self._deadline.passed():
            raise self._deadline.error(self._call, reached_server=True)
        # http_open's chunks fail as a TransportError; a local file's, as they do.
        return next(self._chunks, None)

    def _ensure_open(self) -> None:
        if self._parser is not None:
            return
        if self._closed:
            raise ValueError("this RewardStream is closed")
        self._deadline.start()
        attempt = 0
        while True:
            failure = None
            try:
                self._open_once()
                return
            except (TransportError, ApiError) as error:
                failure = error
            self._drop_response()
            failure = self._deadline.instead_of(failure, self._call)
            if self._secret:
                failure._scrub(self._secret)
            attempt += 1
            again = (
                isinstance(failure, TransportError)
                and failure.retryable
                and not isinstance(failure, DeadlineExceeded)
            ) or (isinstance(failure, ApiError) and failure.internal)
            if not again or attempt >= self._tries:
                self._closed = True
                self._deadline.stop()
                raise failure
            # Exponential backoff with jitter: 0.5-1.5 x backoff x 2^(tries so far - 1).
            self._sleep(self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))

    def _open_once(self) -> None:
        self._chunks, self._closer = self._opener(self._deadline)
        parser = _ResultParser(self._call)
        # Read until the status is known: a Failed answer (perhaps 110, worth another try) is
        # raised here, before any reward has been handed out.
        while parser.status != "Success" and not parser.done:
            chunk = self._read()
            if chunk is None:
                parser.close()
                break
            parser.feed(chunk)
        self._parser = parser

    def _drop_response(self) -> None:
        self._parser = None
        self._chunks = None
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()


def query_body_stream(*, chunks: Iterable[bytes], label: str = "all_rewards") -> RewardStream:
    """A RewardStream over the chunks of a query answer (for tests and local files)."""
    call = _Call(kind="query", label=label)
    iterator = iter(chunks)
    return RewardStream(call=call, opener=lambda _deadline: (iterator, None), tries=1)
