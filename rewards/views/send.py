"""Sending: one reward from a form, or many from an upload (CSV or XLSX) with a preview first."""

from __future__ import annotations

import io
import uuid

from django.contrib import messages
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from campaigns.selectors import campaigns_visible_to
from rewards.forms import MODE_HELP, BulkUploadForm, ConfirmForm, ReadChoiceForm, SingleSendForm
from rewards.models import Batch
from rewards.models.ledger import Mode
from rewards.services.controls import budget_state
from rewards.services.csv_import import (
    Columns,
    column_choices,
    column_letter,
    csv_template,
    template_rows,
)
from rewards.services.export import Column, csv_pieces, xlsx_write
from rewards.services.sending import RecipientRow, batch_create
from rewards.services.uploads import (
    ReadChoice,
    upload_create,
    upload_delete,
    upload_flag_recent,
    upload_read,
    upload_reread,
)
from rewards.views import send_rewards_required

# How much of an upload the preview shows; every problem is in the problems CSV as well.
PREVIEW_ROWS = 20
PREVIEW_PROBLEMS = 1_000


def _campaigns(request):
    """The campaigns this person may send on: the enabled ones of those they may see."""
    return campaigns_visible_to(user=request.user).filter(enabled=True)


def _send_page(request, *, single=None, bulk=None, status=200):
    campaigns = _campaigns(request)
    return render(
        request,
        "rewards/send.html",
        {
            "single": single or SingleSendForm(prefix="one", campaigns=campaigns),
            "bulk": bulk or BulkUploadForm(prefix="bulk", campaigns=campaigns),
            "has_campaigns": campaigns.exists(),
            # The budgets of the campaigns that have one, used and left this month.
            "budgets": [
                (campaign, budget_state(campaign=campaign, person=request.user))
                for campaign in campaigns
                if campaign.monthly_budget is not None
                or campaign.monthly_budget_per_person is not None
            ],
            "modes": [(value, label, MODE_HELP[value]) for value, label in Mode.choices],
        },
        status=status,
    )


@send_rewards_required
def send(request):
    return _send_page(request)


@require_POST
@send_rewards_required
def send_one(request):
    form = SingleSendForm(request.POST, prefix="one", campaigns=_campaigns(request))
    if not form.is_valid():
        return _send_page(request, single=form)
    data = form.cleaned_data
    try:
        batch = batch_create(
            campaign=data["campaign"],
            mode=data["mode"],
            rows=[RecipientRow(row_number=1, recipient=data["recipient"], name=data["name"])],
            created_by=request.user,
            source=Batch.Source.SINGLE,
            idempotency_key=data["idempotency_key"],
            send_at=data["send_at"],
        )
    except ValidationError as error:
        form.add_error(None, error)
        return _send_page(request, single=form)
    row = batch.sends.first()
    asked = (data["campaign"].pk, data["mode"], data["recipient"])
    if row is None or (batch.campaign_id, batch.mode, row.recipient) != asked:
        # The key found a batch for someone else: a form sent once, brought back with the
        # browser's Back button and changed. Nothing new was sent; ask again with a fresh key.
        again = request.POST.copy()
        again["one-idempotency_key"] = uuid.uuid4().hex
        form = SingleSendForm(again, prefix="one", campaigns=_campaigns(request))
        form.is_valid()
        form.add_error(
            None,
            f"This form was already used to send a reward to {row.recipient if row else '…'}. "
            "Nothing was sent this time: check the details and press Send again.",
        )
        return _send_page(request, single=form)
    return redirect("rewards:batch_detail", pk=batch.pk)


@csrf_exempt
@require_POST
@send_rewards_required
def send_upload(request):
    # Rows pasted past DATA_UPLOAD_MAX_MEMORY_SIZE make Django refuse the whole form, with a
    # bare "Bad Request (400)", as soon as anything reads it; the CSRF middleware reads it
    # first. So the token is checked in here, once the form could be read (Django's pattern
    # for a view that must touch the body first): a form too big to read is only shown again,
    # with the limit, and nothing else happens.
    try:
        request.POST  # noqa: B018 (reading it is the check)
    except RequestDataTooBig:
        return _send_page(
            request,
            bulk=BulkUploadForm.too_big(prefix="bulk", campaigns=_campaigns(request)),
            status=413,
        )
    return _send_upload(request)


@csrf_protect
def _send_upload(request):
    form = BulkUploadForm(request.POST, request.FILES, prefix="bulk", campaigns=_campaigns(request))
    if not form.is_valid():
        return _send_page(request, bulk=form)
    data, filename = form.data_bytes()
    campaign, mode = form.cleaned_data["campaign"], form.cleaned_data["mode"]
    # Parsed once, here: a file that cannot be read at all is said at once, on the form, and
    # the preview and the confirmation read what this parse found.
    # Kept as this person's, not this session's: it survives logging in again.
    token, result = upload_create(
        data=data, mode=mode, campaign_pk=campaign.pk, filename=filename, owner_pk=request.user.pk
    )
    if not token:
        form.add_error(None, f"{filename}: {result.error}")
        return _send_page(request, bulk=form)
    return redirect("rewards:send_preview", token=token)


def _upload(request, token: str):
    """The upload this person made, as its parse found it, or None when it is gone.

    Someone else's upload is a 404, as if it did not exist: its rows are not theirs to see or
    send, and "not yours" would tell them that the token is real."""
    upload = upload_read(token=token)
    if upload is None:
        return None
    if upload.owner_pk != request.user.pk:
        raise Http404("No such upload.")
    # Gone as well when its campaign was disabled or taken from this person since.
    campaign = _campaigns(request).filter(pk=upload.campaign_pk).first()
    if campaign is None:
        return None
    meta = {"mode": upload.mode, "filename": upload.filename, "upload": upload}
    return campaign, meta, upload_flag_recent(upload=upload, campaign=campaign)


@send_rewards_required
def send_preview(request, token: str):
    # A second click on "Send" finds the batch the first one made.
    done = Batch.objects.filter(idempotency_key=token).first()
    if done is not None:
        if done.created_by_id != request.user.pk:
            raise Http404("No such upload.")
        return redirect("rewards:batch_detail", pk=done.pk)
    upload = _upload(request, token)
    if upload is None:
        messages.warning(
            request,
            "That upload is no longer here (it expired, or its campaign was disabled or is "
            "no longer one of yours). "
            "Upload the file again.",
        )
        return redirect("rewards:send")
    campaign, meta, result = upload
    # Not `request.POST or None`: a confirmation without the box ticked posts no field at all.
    form = ConfirmForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and not result.needs_columns and form.is_valid():
        return _confirm(request, token, campaign, meta, result, form.cleaned_data)
    recent = {r.row_number for r in result.recently_rewarded}
    columns = result.columns if result.columns and result.columns.chosen else result.suggested
    choices = column_choices(sample=result.sample)
    return render(
        request,
        "rewards/send_preview.html",
        {
            "token": token,
            "campaign": campaign,
            "mode_label": Mode(meta["mode"]).label,
            "filename": meta["filename"],
            "result": result,
            "form": form,
            "first_rows": [(row, row.row_number in recent) for row in result.rows[:PREVIEW_ROWS]],
            "problems": result.problems[:PREVIEW_PROBLEMS],
            "more_problems": max(0, len(result.problems) - PREVIEW_PROBLEMS),
            "to_send": len(result.rows) - len(recent),
            "to_send_anyway": len(result.rows),
            "recent_count": len(recent),
            "left_out_count": len(result.left_out_rows),
            "budget": budget_state(campaign=campaign, person=request.user),
            "choice": ReadChoiceForm(result=result),
            "sample_letters": [column_letter(i) for i, _label in choices],
            "column_choices": choices,
            "columns": columns,
            "recipient_letter": column_letter(result.columns.recipient) if result.columns else "",
        },
    )


@require_POST
@send_rewards_required
def send_reread(request, token: str):
    """Read the upload's file again: another sheet, another encoding, or the columns a person
    chose. What the new reading finds replaces the old one; nothing is sent."""
    upload = _upload(request, token)
    if upload is None:
        messages.warning(request, "That upload is no longer here. Upload the file again.")
        return redirect("rewards:send")
    _campaign, meta, result = upload
    kept = meta["upload"]
    form = ReadChoiceForm(request.POST, result=result)
    if not form.is_valid():
        messages.error(request, "That choice is not one this file offers.")
        return redirect("rewards:send_preview", token=token)
    data = form.cleaned_data
    what = request.POST.get("what", "")
    choice = kept.choice
    if what == "sheet" and data["sheet"]:
        # Another sheet has its own columns: any chosen before were for the other one.
        choice = ReadChoice(sheet=data["sheet"], encoding=choice.encoding)
    elif what == "encoding" and data["encoding"]:
        choice = ReadChoice(sheet=choice.sheet, encoding=data["encoding"], columns=choice.columns)
    elif what == "columns" and data["recipient"] is not None:
        if data["name"] == data["recipient"]:
            messages.error(request, "The recipient and the name must be two different columns.")
            return redirect("rewards:send_preview", token=token)
        columns = Columns(
            recipient=data["recipient"], name=data["name"], header=data["header"], chosen=True
        )
        choice = ReadChoice(sheet=choice.sheet, encoding=choice.encoding, columns=columns)
    else:
        return redirect("rewards:send_preview", token=token)
    reread = upload_reread(token=token, upload=kept, choice=choice)
    if not reread.ok and not reread.needs_columns:
        messages.error(request, reread.error)
    return redirect("rewards:send_preview", token=token)


def _confirm(request, token, campaign, meta, result, data: dict):
    send_anyway = data["send_anyway"] and bool(result.recently_rewarded)
    rows = result.rows_to_send(send_anyway=send_anyway)
    if not rows:
        messages.error(request, "No row passed: there is nothing to send. Fix the file first.")
        return redirect("rewards:send_preview", token=token)
    # One call writes every row, so nothing is half-sent; the token is the idempotency key,
    # so a second click finds this batch.
    try:
        batch = batch_create(
            campaign=campaign,
            mode=meta["mode"],
            rows=rows,
            created_by=request.user,
            source=Batch.Source.CSV,
            idempotency_key=token,
            left_out=result.left_out(send_anyway=send_anyway),
            sent_anyway=result.sent_anyway(send_anyway=send_anyway),
            send_anyway_by=request.user if send_anyway else None,
            filename=meta["filename"],
            send_at=data["send_at"],
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("rewards:send_preview", token=token)
    upload_delete(token=token)
    return redirect("rewards:batch_detail", pk=batch.pk)


@send_rewards_required
def send_problems_csv(request, token: str):
    upload = _upload(request, token)
    if upload is None:
        raise Http404("That upload is no longer here.")
    _campaign, meta, result = upload
    rows = ([p.row, p.column, p.message] for p in result.problems)
    response = HttpResponse(
        csv_pieces(header=["row", "column", "problem"], rows=rows),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="upload-problems.csv"'
    return response


@send_rewards_required
def send_template(request, mode: str):
    if mode not in Mode.values:
        raise Http404("No such mode.")
    response = HttpResponse(csv_template(mode=mode), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="mokudash-{mode}-template.csv"'
    return response


@send_rewards_required
def send_template_xlsx(request, mode: str):
    if mode not in Mode.values:
        raise Http404("No such mode.")
    header, *rows = template_rows(mode=mode)
    out = io.BytesIO()
    columns = [Column(name, name, 30) for name in header]
    xlsx_write(sheets=[("Recipients", columns, rows)], out=out)
    response = HttpResponse(
        out.getvalue(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response["Content-Disposition"] = f'attachment; filename="mokudash-{mode}-template.xlsx"'
    return response
