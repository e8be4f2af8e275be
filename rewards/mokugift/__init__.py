"""The Mokugift API v1.0 client. Callers import from here, which re-exports every public name.

    client = MokugiftClient.for_campaign(campaign)
    check = client.check_campaign()   # accepted? makes nothing (a create with no recipient)
    result = client.create_reward(mode="link", recipient="sally@chan.com", name="Sally Chan")
    multi = client.create_rewards(mode="email", recipients=[Recipient("a@b.com", "A B")])
    with client.rewards_in_month(month=5, year=2026) as stream:
        for reward in stream: ...
        stream.summary

Errors form one hierarchy (MokugiftError); every instance says `outcome_unknown` (a create call
that may or may not have made its rewards: reconcile before trying again) and `retryable`.
The client never retries a create call; the caller decides, with the ledger in hand. Query
calls are retried here, with backoff, until their first reward has been handed out.

Every call has a deadline as a whole (MOKUGIFT_CALL_DEADLINE), besides its connect and read
timeouts, which only bound each wait on the network: past it the call's socket is shut down
wherever the answer stands (see http._Deadline). A create answer holds at most as many rewards
as were asked for, in a bounded number of bytes (MOKUGIFT_MAX_ANSWER_BYTES_PER_REWARD).

The protocol is in shared/mokugift-api.md. The modules, by subject; each imports only those
above it, and only `http` touches the network:

    errors          MokugiftError and its subclasses; the document's error table
    results         what the calls return: CreateResult, MultiResult, RewardRecord, Summary
    recipient_list  Recipient, and the recipient_list of a multi call, written and read back
    parser          the answers' parser: bytes in as they arrive, results or errors out
    http            the process's session, a request and its answer's chunks, each call's
                    deadline: the only module that touches the network
    stream          RewardStream: a query answer read as it arrives, retried until it starts
    client          MokugiftClient: each call, what it sends and what its answer means
"""

from rewards.mokugift.client import ANSWER_ENVELOPE_BYTES, ClientOptions, MokugiftClient
from rewards.mokugift.errors import (
    CAMPAIGN_REFUSALS,
    ERROR_DESCRIPTIONS,
    INTERNAL_ERROR,
    MISSING_RECIPIENT,
    NO_COINS,
    ApiError,
    DeadlineExceeded,
    MokugiftError,
    ProtocolError,
    RecipientRefused,
    TransportError,
)
from rewards.mokugift.http import STREAM_CHUNK_BYTES, session_get
from rewards.mokugift.parser import create_body_parse
from rewards.mokugift.recipient_list import (
    MAX_RECIPIENTS_PER_CALL,
    Recipient,
    recipient_list_build,
)
from rewards.mokugift.results import (
    CampaignCheck,
    CreatedReward,
    CreateResult,
    MultiResult,
    RewardRecord,
    Summary,
    UnsentReward,
)
from rewards.mokugift.stream import QUERY_BACKOFF, QUERY_TRIES, RewardStream, query_body_stream

__all__ = [
    "ANSWER_ENVELOPE_BYTES",
    "CAMPAIGN_REFUSALS",
    "ERROR_DESCRIPTIONS",
    "INTERNAL_ERROR",
    "MAX_RECIPIENTS_PER_CALL",
    "MISSING_RECIPIENT",
    "NO_COINS",
    "QUERY_BACKOFF",
    "QUERY_TRIES",
    "STREAM_CHUNK_BYTES",
    "ApiError",
    "CampaignCheck",
    "ClientOptions",
    "CreateResult",
    "CreatedReward",
    "DeadlineExceeded",
    "MokugiftClient",
    "MokugiftError",
    "MultiResult",
    "ProtocolError",
    "Recipient",
    "RecipientRefused",
    "RewardRecord",
    "RewardStream",
    "Summary",
    "TransportError",
    "UnsentReward",
    "create_body_parse",
    "query_body_stream",
    "recipient_list_build",
    "session_get",
]
