"""The `recipient_list` of a multi call: its Recipients written out (recipient_list_build,
which refuses a list the call cannot carry, before any request), and an item read back from an
unsent reward (_address_of). What a list can carry is rewards.recipients' rule, applied here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rewards.mokugift.errors import RecipientRefused
from rewards.recipients import name_refusal, recipient_refusal

MAX_RECIPIENTS_PER_CALL = 1000


@dataclass(frozen=True)
class Recipient:
    """One recipient of a multi call: an email address, or the caller's own ID (link-id)."""

    address: str
    name: str = ""


def recipient_list_build(*, recipients: Sequence[Recipient], by_id: bool = False) -> str:
    """The recipient_list of a multi call, or RecipientRefused (nothing is sent then)."""
    if not recipients:
        raise RecipientRefused("a multi call needs at least one recipient")
    if len(recipients) > MAX_RECIPIENTS_PER_CALL:
        raise RecipientRefused(
            f"{len(recipients)} recipients: at most {MAX_RECIPIENTS_PER_CALL} per call"
        )
    items = []
    for index, recipient in enumerate(recipients):
        address, name = recipient.address.strip(), recipient.name.strip()
        # The preview applies the same rule, so a row it passed is never refused here.
        reason = recipient_refusal(recipient=address, by_id=by_id) or name_refusal(name=name)
        if reason:
            raise RecipientRefused(reason, index=index)
        items.append(f"{name} <{address}>" if name else address)
    return ",".join(items)


def _address_of(item: str) -> str:
    """The address of an item of recipient_list: "Full Name <address>" or a bare address."""
    item = item.strip()
    # No regex: the item comes from the server, and a pattern with blanks on both sides of a
    # lazy group backtracks quadratically on a long run of blanks.
    if item.endswith(">") and "<" in item:
        return item[item.rindex("<") + 1 : -1].strip()
    return item
