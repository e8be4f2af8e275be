"""EMAIL_URL to Django 6.1's MAILERS (mokudash/settings.py reads it before Django is set up)."""

from __future__ import annotations

from typing import Any


def mailers_from_url(url: str) -> dict[str, Any]:
    """Django 6.1's MAILERS entry for an EMAIL_URL (django-environ's email_url format:
    smtp://host:25, smtp+tls://user:password@host:587, smtp+ssl://..., consolemail://)."""
    import environ

    config = environ.Env.email_url_config(url)
    options: dict[str, Any] = {}
    for setting, option in (
        ("EMAIL_HOST", "host"),
        ("EMAIL_PORT", "port"),
        ("EMAIL_HOST_USER", "username"),
        ("EMAIL_HOST_PASSWORD", "password"),
        ("EMAIL_USE_TLS", "use_tls"),
        ("EMAIL_USE_SSL", "use_ssl"),
    ):
        if config.get(setting) not in (None, ""):
            options[option] = config[setting]
    backend = config["EMAIL_BACKEND"]
    if backend.endswith("smtp.EmailBackend"):
        options.setdefault("timeout", 30)
    else:
        options = {}
    return {"BACKEND": backend, "OPTIONS": options}
