"""Fixtures of the sending tests: a real Celery worker process, and an isolated broker."""

from tests.worker import celery_worker, isolated_broker  # noqa: F401
