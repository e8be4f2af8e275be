"""The batch calls over the API: the same services and rules as the pages."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.models import Approval
from rewards.models import Batch, Send
from tests.api.conftest import one, only

pytestmark = pytest.mark.django_db


def test_a_marketer_sends_one_reward_and_reads_the_batch_back(api_as, marketer, spring):
    api = api_as(marketer)
    answer = api.post("/batches", one())
    assert answer.status_code == 201, answer.content
    batch = answer.json()
    assert batch["state"] == "sending"
    assert batch["campaign"] == "spring-1"
    assert batch["counts"]["waiting"] == 1
    assert batch["total"] == 1
    stored = Batch.objects.get(pk=batch["id"])
    assert stored.source == Batch.Source.API
    assert stored.created_by == marketer
    read = api.get(f"/batches/{batch['id']}").json()
    assert read["id"] == batch["id"]
    rows = api.get(f"/batches/{batch['id']}/rows").json()
    assert [(r["row"], r["recipient"], r["name"], r["state"]) for r in rows["rows"]] == [
        (1, "ann@example.com", "Ann", "waiting")
    ]
    assert rows["next_cursor"] is None


def test_every_bad_row_is_named_and_nothing_is_written(api_as, marketer, spring):
    body = one()
    body["recipients"] = [
        {"recipient": "ok@example.com"},
        {"recipient": "not-an-address"},
        {"recipient": "OK@example.com"},
    ]
    answer = api_as(marketer).post("/batches", body)
    assert answer.status_code == 422
    assert answer["Content-Type"] == "application/problem+json"
    problem = answer.json()
    fields = [error["field"] for error in problem["errors"]]
    assert fields == ["recipients[1].recipient", "recipients[2].recipient"]
    assert "not a valid email address" in problem["errors"][0]["message"]
    assert "recipients[0]" in problem["errors"][1]["message"]
    assert problem["detail"].startswith("recipients[1].recipient:")
    assert not Batch.objects.exists() and not Send.objects.exists()


def test_a_body_that_is_not_the_schema_is_a_problem_naming_the_field(api_as, marketer, spring):
    answer = api_as(marketer).post("/batches", {"campaign": "spring-1", "mode": "fax"})
    assert answer.status_code == 422
    fields = {error["field"] for error in answer.json()["errors"]}
    assert fields == {"mode", "recipients"}
    broken = api_as(marketer).post("/batches", b"{not json")
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["message"] == "The body is not valid JSON."


def test_a_scheduled_batch_waits_and_a_time_without_offset_is_refused(api_as, marketer, spring):
    api = api_as(marketer)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    answer = api.post("/batches", one(send_at=later.isoformat()))
    assert answer.status_code == 201
    assert answer.json()["state"] == "scheduled"
    assert dt.datetime.fromisoformat(answer.json()["send_at"]) == later
    naive = api.post("/batches", one(send_at="2030-01-01T09:00:00"))
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "send_at"


@pytest.mark.parametrize("send_at", ["9999-12-31T23:59:59-23:59", "2999-01-01T00:00:00+00:00"])
def test_a_batch_is_scheduled_at_most_a_year_ahead(api_as, marketer, spring, send_at):
    # As the schedule page says; the first time was a 500 (in UTC it is after the year 9999).
    answer = api_as(marketer).post("/batches", one(send_at=send_at))
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"field": "send_at", "message": "At most a year ahead."}]
    assert not Batch.objects.exists()


def test_the_budget_refuses_a_batch_that_does_not_fit(api_as, marketer, spring):
    spring.monthly_budget = 1
    spring.save()
    api = api_as(marketer)
    assert api.post("/batches", one()).status_code == 201
    refused = api.post("/batches", one("bob@example.com"))
    assert refused.status_code == 422
    assert "1 of 1 used this month" in refused.json()["detail"]
    assert Batch.objects.count() == 1


def test_an_approval_waits_for_a_manager_and_not_for_its_sender(api_as, marketer, manager, spring):
    spring.approval = Approval.ALWAYS
    spring.save()
    created = api_as(marketer).post("/batches", one()).json()
    assert created["state"] == "approval"
    assert created["approval"]["needed"] is True
    own = api_as(marketer).post(f"/batches/{created['id']}/approve")
    assert own.status_code == 403
    approved = api_as(manager).post(f"/batches/{created['id']}/approve")
    assert approved.status_code == 200, approved.content
    assert approved.json()["state"] == "sending"
    assert approved.json()["approval"]["decided_by"] == manager.username
    again = api_as(manager).post(f"/batches/{created['id']}/approve")
    assert again.status_code == 409


def test_a_manager_declines_saying_why(api_as, marketer, manager, spring):
    spring.approval = Approval.ALWAYS
    spring.save()
    created = api_as(marketer).post("/batches", one()).json()
    unsaid = api_as(manager).post(f"/batches/{created['id']}/decline", {})
    assert unsaid.status_code == 422
    assert unsaid.json()["errors"][0]["field"] == "reason"
    declined = api_as(manager).post(f"/batches/{created['id']}/decline", {"reason": "Too many"})
    assert declined.json()["state"] == "declined"
    assert declined.json()["approval"]["decline_reason"] == "Too many"


def test_a_manager_cannot_send_and_a_marketer_cannot_approve(api_as, marketer, manager, spring):
    assert api_as(manager).post("/batches", one()).status_code == 403
    spring.approval = Approval.ALWAYS
    spring.save()
    created = api_as(marketer).post("/batches", one()).json()
    other = api_as(marketer)
    assert other.post(f"/batches/{created['id']}/decline", {"reason": "x"}).status_code == 403


def test_cancel_withdraws_and_only_its_creator_or_an_admin_may(
    api_as, marketer, admin_user, django_user_model, spring
):
    from tests.conftest import _user

    colleague = _user(django_user_model, "carl-colleague", "Marketing")
    created = api_as(marketer).post("/batches", one()).json()
    assert api_as(colleague).post(f"/batches/{created['id']}/cancel").status_code == 403
    cancelled = api_as(admin_user).post(f"/batches/{created['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["counts"]["cancelled"] == 1


def test_rows_come_in_cursor_pages_and_filter_by_state(api_as, marketer, spring):
    body = one()
    body["recipients"] = [{"recipient": f"r{i}@example.com"} for i in range(7)]
    api = api_as(marketer)
    created = api.post("/batches", body).json()
    Send.objects.filter(batch_id=created["id"], row_number__in=[2, 5]).update(state="failed")
    seen, cursor = [], ""
    while True:
        page = api.get(f"/batches/{created['id']}/rows", {"limit": 3, "cursor": cursor}).json()
        seen += [row["row"] for row in page["rows"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    failed = api.get(f"/batches/{created['id']}/rows", {"state": "failed"}).json()
    assert [row["row"] for row in failed["rows"]] == [2, 5]
    assert api.get(f"/batches/{created['id']}/rows", {"state": "odd"}).status_code == 422
    assert api.get(f"/batches/{created['id']}/rows", {"cursor": "x"}).status_code == 422


def test_another_campaigns_batch_and_campaign_are_not_found(
    api_as, marketer, admin_user, spring, autumn
):
    only(marketer, spring)
    theirs = api_as(admin_user).post("/batches", one(campaign="autumn-1")).json()
    api = api_as(marketer)
    assert api.get(f"/batches/{theirs['id']}").status_code == 404
    assert api.post(f"/batches/{theirs['id']}/cancel").status_code == 404
    refused = api.post("/batches", one(campaign="autumn-1"))
    assert refused.status_code == 404
    assert refused.json()["errors"][0]["field"] == "campaign"
    assert [c["campaign"] for c in api.get("/campaigns").json()] == ["spring-1"]
    assert api.get("/campaigns/autumn-1").status_code == 404


def test_no_answer_holds_a_passcode(api_as, admin_user, spring):
    api = api_as(admin_user)
    answers = [api.get("/campaigns"), api.get("/campaigns/spring-1"), api.post("/batches", one())]
    for answer in answers:
        assert answer.status_code in (200, 201)
        assert b'"p"' not in answer.content and b"passcode" not in answer.content


def test_the_results_csv_is_the_batch_pages_file(api_as, marketer, client, spring):
    created = api_as(marketer).post("/batches", one()).json()
    api_file = b"".join(
        api_as(marketer).get(f"/batches/{created['id']}/results.csv").streaming_content
    )
    client.force_login(marketer)
    page = client.get(f"/rewards/batches/{created['id']}/results.csv")
    assert api_file == b"".join(page.streaming_content)
    assert b"ann@example.com" in api_file


NUL = "\x00"


def test_a_nul_character_in_a_body_is_a_problem_naming_each_field(api_as, marketer, spring):
    # PostgreSQL's text cannot hold U+0000: the campaign's look-up with one was a 500.
    body = one(name=f"A{NUL}nn")
    body["campaign"] = f"spring-1{NUL}"
    answer = api_as(marketer).post("/batches", body)
    assert answer.status_code == 422
    assert answer["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert [error["field"] for error in problem["errors"]] == ["campaign", "recipients[0].name"]
    assert "U+0000" in problem["errors"][0]["message"]
    assert problem["detail"].startswith("campaign: ")
    assert not Batch.objects.exists()
    reason = api_as(marketer).post("/batches/1/decline", {"reason": f"no{NUL}"})
    assert reason.status_code == 422
    assert reason.json()["errors"][0]["field"] == "reason"


def test_a_nul_character_in_a_batchs_query_is_a_problem_naming_it(api_as, marketer, spring):
    api = api_as(marketer)
    batch = api.post("/batches", one()).json()
    # The results' state went, unchecked, into the export's audit record: a 500.
    for path in (f"/batches/{batch['id']}/results.csv", f"/batches/{batch['id']}/rows"):
        answer = api.get(path, {"state": NUL})
        assert answer.status_code == 422, path
        assert answer.json()["errors"][0]["field"] == "state"
