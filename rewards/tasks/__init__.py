"""Celery tasks of the rewards app. Celery's autodiscovery imports this module."""
