"""The notices' task: a door into notices/services.py `notices_deliver`.

It takes the kind and primary keys only (0 for none: a message carries no None), re-reads
its rows and returns quietly when they are gone. A duplicate delivery tells twice, which is
harmless; a lost one tells nobody, which never touches a send.
"""

from __future__ import annotations

from celery import shared_task

from notices import services


@shared_task(name="notices.deliver")
def notices_deliver(kind: str, batch_pk: int = 0, campaign_pk: int = 0) -> None:
    services.notices_deliver(kind=kind, batch_pk=batch_pk or None, campaign_pk=campaign_pk or None)
