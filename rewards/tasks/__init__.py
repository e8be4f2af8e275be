"""Celery tasks of the rewards app. Celery's autodiscovery imports this module."""

from rewards.tasks import (
    sending,  # noqa: F401  (registers the sending tasks)
    sync,  # noqa: F401  (registers the mirror sync tasks)
)
