"""The eight calls of the Mokugift API v1.0, and the public page of a reward.

No login and no CSRF token: the callers are API clients, and the passcode is the credential.
The order of checks is in sandbox/services.py.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from sandbox import responses
from sandbox.models import Fault, SandboxReward
from sandbox.selectors import sandbox_campaign_get, sandbox_rewards_rows
from sandbox.services import (
    SandboxApiError,
    recipient_parse_single,
    recipients_parse_list,
    sandbox_campaign_check,
    sandbox_fault_pick,
    sandbox_latency_wait,
    sandbox_rewards_create,
)

logger = logging.getLogger(__name__)

# A call may ask for a fault itself, whatever its campaign says (for tests driving raw HTTP).
FAULT_HEADER = "X-Sandbox-Fault"


@dataclass(frozen=True)
class CreateCall:
    multi: bool
    by_id: bool
    emailed: bool
    with_url: bool


CREATE_CALLS = {
    "reward": CreateCall(multi=False, by_id=False, emailed=True, with_url=False),
    "reward_url": CreateCall(multi=False, by_id=False, emailed=False, with_url=True),
    "reward_url2": CreateCall(multi=False, by_id=True, emailed=False, with_url=True),
    "multi_rewards": CreateCall(multi=True, by_id=False, emailed=True, with_url=False),
    "multi_reward_urls": CreateCall(multi=True, by_id=False, emailed=False, with_url=True),
    "multi_reward_urls2": CreateCall(multi=True, by_id=True, emailed=False, with_url=True),
}


def _reward_url(request: HttpRequest, remote_id: str) -> str:
    return request.build_absolute_uri(reverse("sandbox:reward_page", args=[remote_id]))


def _sleep_without_connection(seconds: float) -> None:
    # Hold no database connection while sleeping past the client's timeout.
    if not connection.in_atomic_block:
        connection.close()
    time.sleep(seconds)


@csrf_exempt
@login_not_required
def api_create(request: HttpRequest, call: str, campaign_id: str) -> HttpResponse:
    spec = CREATE_CALLS[call]
    if request.method != "POST":
        return responses.xml_failed(100)
    campaign = sandbox_campaign_get(campaign_id=campaign_id)
    if campaign is None:
        return responses.xml_failed(101)
    sandbox_latency_wait(campaign=campaign)
    try:
        try:
            form = request.POST
        except (RequestDataTooBig, TooManyFieldsSent):
            raise SandboxApiError(113) from None
        sandbox_campaign_check(campaign=campaign, passcode=form.get("passcode", ""))
        if spec.multi:
            recipients = recipients_parse_list(
                recipient_list=form.get("recipient_list"), by_id=spec.by_id
            )
        else:
            recipients = [
                recipient_parse_single(
                    address=form.get("recipient_id" if spec.by_id else "recipient_email"),
                    name=form.get("recipient_name"),
                    by_id=spec.by_id,
                )
            ]
    except SandboxApiError as error:
        return responses.xml_failed(error.code)

    fault = sandbox_fault_pick(campaign=campaign, asked=request.headers.get(FAULT_HEADER))
    if fault != Fault.NONE:
        logger.info("sandbox: fault %s on %s/%s", fault, call, campaign.campaign_id)
    if fault == Fault.HTTP500:
        return responses.http_500()
    if fault == Fault.ERROR110:
        return responses.xml_failed(110)
    if fault == Fault.DROP_BEFORE:
        return responses.connection_drop(request)
    if fault == Fault.COMMIT_LATE:
        # Mokugift is still working on it: nothing is listed until the delay is over.
        _sleep_without_connection(campaign.fault_delay)

    outcome = sandbox_rewards_create(
        campaign=campaign,
        recipients=recipients,
        by_id=spec.by_id,
        emailed=spec.emailed,
        url_for=lambda remote_id: _reward_url(request, remote_id),
    )
    # The rewards are committed by now: what follows is the case that makes blind retries
    # send twice.
    if fault == Fault.DROP_AFTER:
        return responses.connection_drop(request)
    if fault == Fault.TIMEOUT_AFTER:
        _sleep_without_connection(campaign.fault_delay)
    render_created = responses.xml_multi_created if spec.multi else responses.xml_single_created
    return render_created(outcome, by_id=spec.by_id, with_url=spec.with_url)


_MONTH = re.compile(r"0?[1-9]|1[0-2]")
_YEAR = re.compile(r"[0-9]{4}")


def _month_bounds(month: str, year: str) -> tuple[dt.datetime, dt.datetime]:
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not (_MONTH.fullmatch(month) and _YEAR.fullmatch(year)):
        raise SandboxApiError(113)
    m, y = int(month), int(year)
    if y < 1:
        raise SandboxApiError(113)
    start = dt.datetime(y, m, 1, tzinfo=dt.UTC)
    days = calendar.monthrange(y, m)[1]
    return start, start + dt.timedelta(days=days)


@csrf_exempt
@login_not_required
def api_query(request: HttpRequest, call: str, tail: str) -> HttpResponseBase:
    """all_rewards/<campaign_id> and rewards_in_month/<campaign_id>[/<month>/<year>]."""
    if request.method != "GET":
        return responses.xml_failed(100)
    campaign_id, *period = tail.split("/")
    campaign = sandbox_campaign_get(campaign_id=campaign_id)
    if campaign is None:
        return responses.xml_failed(101)
    sandbox_latency_wait(campaign=campaign)
    start = end = None
    try:
        if call == "all_rewards":
            if period:
                raise SandboxApiError(113)
        elif not period:
            now = dt.datetime.now(dt.UTC)
            start, end = _month_bounds(str(now.month), f"{now.year:04d}")
        elif len(period) == 2:
            start, end = _month_bounds(*period)
        else:
            # Only one of month and year, or more than both.
            raise SandboxApiError(113)
    except SandboxApiError as error:
        return responses.xml_failed(error.code)
    return responses.xml_query_stream(sandbox_rewards_rows(campaign=campaign, start=start, end=end))


@login_not_required
def reward_page(request: HttpRequest, remote_id: str) -> HttpResponse:
    reward = get_object_or_404(
        SandboxReward.objects.select_related("campaign"), remote_id=remote_id
    )
    return render(
        request,
        "sandbox/reward.html",
        {"reward": reward, "trees": range(min(reward.tree_count, 100))},
    )
