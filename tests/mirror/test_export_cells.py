"""Every file we write neutralises a cell a spreadsheet would run as a formula (CSV injection):
the batch results, the rewards of a filter and the monthly report, through their real pages."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse

from tests.mirror.helpers import mirror_add, send_add

WHEN = dt.datetime(2026, 5, 10, 12, tzinfo=dt.UTC)
# Written out here, not imported from rewards.services.export: dropping one there must fail.
STARTS = ["=", "+", "-", "@", "\t", "\r"]


def _rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def evil(campaign, marketer):
    """A name and a recipient that begin with `start`, in the mirror and in the ledger (one
    row Mokugift lists, one it does not, for the report's ledger table)."""

    def make(start: str) -> dict:
        name, recipient = f"{start}SUM(1+1)", f"{start}cmd@example.com"
        reward = mirror_add(campaign, WHEN, recipient_email=recipient)
        reward.send = send_add(
            campaign,
            remote_id=reward.remote_id,
            sent_at=WHEN,
            by=marketer,
            name=name,
            recipient=recipient,
        )
        reward.save()
        send_add(
            campaign,
            remote_id="never-listed",
            sent_at=WHEN,
            by=marketer,
            name=name,
            recipient=recipient,
            batch=reward.send.batch,
        )
        return {"name": name, "recipient": recipient, "batch": reward.send.batch}

    return make


@pytest.mark.parametrize("start", STARTS, ids=repr)
def test_the_batch_results_csv_neutralises_a_cell_starting_with_it(client, marketer, evil, start):
    made = evil(start)
    client.force_login(marketer)
    rows = _rows(client.get(reverse("rewards:batch_results_csv", args=[made["batch"].pk])))
    assert rows[0][1:3] == ["recipient", "name"]
    for row in rows[1:]:
        assert row[1:3] == ["'" + made["recipient"], "'" + made["name"]]
    assert len(rows) == 3


@pytest.mark.parametrize("start", STARTS, ids=repr)
def test_the_rewards_csv_neutralises_a_cell_starting_with_it(client, manager, evil, start):
    made = evil(start)
    client.force_login(manager)
    rows = _rows(client.get(reverse("rewards:list_csv")))
    assert (rows[0][3], rows[0][5]) == ("recipient_email", "name")
    assert len(rows) == 2
    assert (rows[1][3], rows[1][5]) == ("'" + made["recipient"], "'" + made["name"])


@pytest.mark.parametrize("start", STARTS, ids=repr)
def test_the_report_csv_neutralises_a_cell_starting_with_it(client, manager, evil, start):
    made = evil(start)
    client.force_login(manager)
    response = client.get(reverse("rewards:report_csv"), {"year": 2026, "table": "ledger"})
    rows = _rows(response)
    assert rows[0][4:] == ["recipient", "name", "reward_id"]
    assert len(rows) == 2
    assert rows[1][4:] == ["'" + made["recipient"], "'" + made["name"], "never-listed"]
