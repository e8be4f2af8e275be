"""The client's errors, one hierarchy under MokugiftError, and the API document's error table.

Every error says `outcome_unknown` (a create call may or may not have made its rewards) and
`retryable` (the same request may succeed later). TransportError: no API answer; its
`reached_server` is False only when nothing can have been made. ProtocolError: an answer that
is not the API's XML. ApiError: status Failed with a code. RecipientRefused: the client's own
refusal, before any request.
"""

from __future__ import annotations

from urllib.parse import quote, quote_plus

# The error table of the document. A code outside it is still an API error.
ERROR_DESCRIPTIONS = {
    100: "Incorrect HTTP Method",
    101: "Invalid campaign ID",
    102: "Incorrect Passcode",
    103: "Campaign disabled",
    104: "Campaign is expired (by date or budget)",
    105: "Lack of moku-coins",
    110: "Internal error",
    111: "Missing recipient email/ID",
    112: "Invalid email",
    113: "Invalid parameters",
    114: "Over max. number of rewards",
}
NO_COINS = 105
INTERNAL_ERROR = 110
# A create call with no recipient (MokugiftClient.check_campaign) is answered 111 only once the
# campaign ID and passcode are accepted and the campaign is enabled and not expired, and with
# one of these when they are not: Mokugift checks the campaign before the recipient.
MISSING_RECIPIENT = 111
CAMPAIGN_REFUSALS = frozenset({101, 102, 103, 104})


class MokugiftError(Exception):
    """Base of every error of the client.

    outcome_unknown: a create call may or may not have made its reward(s): reconcile with a
    query before sending again. retryable: the same request may succeed later.
    """

    outcome_unknown: bool = False
    retryable: bool = False

    def _scrub(self, secret: str) -> None:
        """Remove a secret from every message this error carries (args and text attributes)."""
        forms = {secret, quote_plus(secret), quote(secret, safe="")}
        forms.discard("")

        def clean(value: object) -> object:
            if isinstance(value, str):
                for form in forms:
                    value = value.replace(form, "[passcode]")
            return value

        self.args = tuple(clean(arg) for arg in self.args)
        for name, value in list(vars(self).items()):
            if isinstance(value, str):
                setattr(self, name, clean(value))


class ApiError(MokugiftError):
    """Mokugift answered status Failed with an error code (100-114)."""

    def __init__(
        self,
        code: int,
        description: str = "",
        *,
        call: str = "",
        create: bool = False,
        transaction_id: str | None = None,
    ):
        self.code = code
        self.description = description or ERROR_DESCRIPTIONS.get(code, "")
        self.call = call
        self.transaction_id = transaction_id
        self.retryable = code in (INTERNAL_ERROR, NO_COINS)
        # 110 on a create call: the server failed somewhere, maybe after making the reward.
        self.outcome_unknown = create and code == INTERNAL_ERROR
        where = f" on {call}" if call else ""
        unknown = " (outcome unknown)" if self.outcome_unknown else ""
        super().__init__(f"Mokugift error {code}{where}: {self.description}{unknown}")

    @property
    def no_coins(self) -> bool:
        """105: the account is out of moku-coins; the same call may succeed once topped up."""
        return self.code == NO_COINS

    @property
    def internal(self) -> bool:
        return self.code == INTERNAL_ERROR


class TransportError(MokugiftError):
    """No API answer: a timeout, a refused or reset connection, an HTTP status other than 200.

    reached_server is False only when the request certainly never reached Mokugift (connection
    refused, connect timeout, name resolution): then nothing was made, even by a create call.
    """

    retryable = True

    def __init__(self, message: str, *, reached_server: bool, create: bool = False):
        self.reached_server = reached_server
        self.outcome_unknown = create and reached_server
        super().__init__(message)


class ProtocolError(TransportError):
    """An answer that is not the API's XML (malformed, truncated, wrong root, a missing
    element, a DTD or entity, more rewards or bytes than a create call can be answered with).
    It came from the server, so for a create call the outcome is unknown."""

    retryable = False

    def __init__(self, message: str, *, create: bool = False):
        unknown = " (outcome unknown)" if create else ""
        super().__init__(message + unknown, reached_server=True, create=create)


class DeadlineExceeded(TransportError):
    """The call was not over by its deadline: a server answering too slowly (perhaps a byte at
    a time, which no read timeout catches) was cut off. For a create call that reached the
    server the outcome is unknown."""

    def __init__(self, message: str, *, seconds: float, reached_server: bool, create: bool):
        self.seconds = seconds
        super().__init__(message, reached_server=reached_server, create=create)


class RecipientRefused(MokugiftError, ValueError):
    """A recipient the client will not send (raised before any request is made)."""

    def __init__(self, reason: str, *, index: int | None = None):
        self.reason = reason
        self.index = index
        at = f"recipient {index + 1}: " if index is not None else ""
        super().__init__(f"{at}{reason}")
