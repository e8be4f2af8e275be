"""Production settings: start-up refuses missing secrets, `check --deploy` is clean, no sandbox.

Each test starts `manage.py` in a subprocess with an environment it controls, because settings
are read once per process. The project's .env is read too (real variables win over it; a
variable set to "" stays "" and counts as missing), unless DJANGO_ENV_FILE points elsewhere.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")
# The variables of the process that say something about mokudash; a test starts from none.
OURS = (
    "DJANGO_",
    "FIELD_ENCRYPTION_KEYS",
    "DATABASE_URL",
    "REDIS_URL",
    "SANDBOX_ENABLED",
    "MOKUGIFT_",
)


def production_env(**changes: str) -> dict[str, str]:
    """An environment as production has it; `changes` add to it, a value None removes one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        DJANGO_ALLOWED_HOSTS="rewards.example.com",
        # As in the environment of the test run (PostgreSQL in CI), or the SQLite default.
        DATABASE_URL=os.environ.get("DATABASE_URL", ""),
        PYTHONWARNINGS="ignore",
    )
    if not env["DATABASE_URL"]:
        del env["DATABASE_URL"]
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, MANAGE, *args],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("DJANGO_SECRET_KEY", "secrets.token_urlsafe"),
        ("FIELD_ENCRYPTION_KEYS", "Fernet.generate_key"),
    ],
)
@pytest.mark.parametrize("missing", ["empty", "unset"])
def test_production_refuses_to_start_without_a_secret_and_says_how_to_make_it(name, how, missing):
    if missing == "empty":
        # Set to "": the project's .env (which holds a value in development) must not fill it.
        env = production_env(**{name: ""})
    else:
        env = production_env(**{name: None}, DJANGO_ENV_FILE=os.devnull)
    result = manage("check", env=env)
    assert result.returncode != 0
    assert f"{name} is not set, and DJANGO_DEBUG is off" in result.stderr
    assert how in result.stderr


def test_a_key_that_is_not_a_fernet_key_stops_start_up_naming_the_setting():
    good = Fernet.generate_key().decode()
    result = manage("check", env=production_env(FIELD_ENCRYPTION_KEYS=f"{good},not-a-key"))
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS: key number 2 is not a Fernet key" in result.stderr
    assert "not-a-key" not in result.stderr.split("ImproperlyConfigured")[-1]


def test_a_chunk_larger_than_one_call_may_carry_stops_start_up():
    result = manage("check", env=production_env(MOKUGIFT_CHUNK_SIZE="1001"))
    assert result.returncode != 0
    assert "MOKUGIFT_CHUNK_SIZE is 1001: it must be 1 to 1,000" in result.stderr


def test_celery_acks_late_one_task_at_a_time_in_json_with_a_long_visibility_timeout():
    # The database, not the broker, is the source of truth: a task is acknowledged after it
    # ran (a killed worker's task is delivered again), a worker holds one task at a time, and
    # Redis does not hand a running task to a second worker before any task could end.
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert settings.CELERY_TASK_SERIALIZER == "json"
    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    script = (
        "from django.conf import settings as s; "
        "print(s.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'], s.CELERY_TASK_TIME_LIMIT)"
    )
    result = manage("shell", "-c", script, env=production_env(REDIS_URL="redis://127.0.0.1:6379/0"))
    visibility, limit = (float(x) for x in result.stdout.split()[-2:])
    assert visibility > limit, result.stdout + result.stderr


def test_check_deploy_finds_no_issue_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


SHOW_SANDBOX = (
    "from django.conf import settings; from django.urls import NoReverseMatch, reverse\n"
    "try:\n"
    "    url = reverse('sandbox:api_create', kwargs={'call': 'reward', 'campaign_id': 'c'})\n"
    "except NoReverseMatch:\n"
    "    url = 'no url'\n"
    "print(settings.SANDBOX_ENABLED, settings.DEBUG, url)"
)


def test_production_serves_no_sandbox_unless_asked():
    off = manage("shell", "--no-imports", "-c", SHOW_SANDBOX, env=production_env())
    assert off.returncode == 0, off.stderr
    assert off.stdout.split() == ["False", "False", "no", "url"]

    on = manage(
        "shell", "--no-imports", "-c", SHOW_SANDBOX, env=production_env(SANDBOX_ENABLED="true")
    )
    assert on.returncode == 0, on.stderr
    assert on.stdout.split() == ["True", "False", "/sandbox/api/reward/c"]


def test_a_debug_run_needs_no_secrets():
    env = production_env(
        DJANGO_DEBUG="true",
        DJANGO_SECRET_KEY=None,
        FIELD_ENCRYPTION_KEYS=None,
        DJANGO_ENV_FILE=os.devnull,
    )
    result = manage("check", env=env)
    assert result.returncode == 0, result.stderr


def test_a_negative_trusted_proxy_count_stops_start_up():
    result = manage("check", env=production_env(DJANGO_TRUSTED_PROXY_COUNT="-1"))
    assert result.returncode != 0
    assert "DJANGO_TRUSTED_PROXY_COUNT is -1" in result.stderr


def test_sending_reconciliation_and_the_sync_have_queues_that_a_worker_without_q_serves():
    import rewards.tasks  # noqa: F401  (registers the tasks, as the worker's autodiscovery does)
    from mokudash.celery import app

    def queue_of(task: str) -> str:
        return app.amqp.router.route({}, task)["queue"].name

    # A worker started without -Q consumes every queue of task_queues.
    assert set(app.amqp.queues) == {"sending", "reconcile", "sync", "celery"}
    assert queue_of("rewards.batch_send_chunk") == "sending"
    assert queue_of("rewards.sends_sweep") == "sending"
    assert queue_of("rewards.campaign_reconcile") == "reconcile"
    assert queue_of("rewards.sync_campaign_all") == queue_of("rewards.sync_recent") == "sync"
    ours = [name for name in app.tasks if name.startswith("rewards.")]
    assert len(ours) >= 7
    assert {queue_of(name) for name in ours} <= set(app.amqp.queues)
