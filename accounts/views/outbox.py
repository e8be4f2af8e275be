"""The outbox of a developer's machine: the mails `make run` sent, readable without a mail
server (accounts.mail.OutboxBackend keeps them). Its URL exists only with DJANGO_DEBUG on, and
it opens without signing in: a newcomer following an invitation is not signed in yet."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.mail import outbox_messages


@login_not_required
def outbox(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/outbox.html", {"messages_sent": outbox_messages()})
