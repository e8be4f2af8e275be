"""mokudash settings: one file, read from the environment (see .env.example and the README)."""

from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# Real environment variables win over the .env file: read_env only fills in what is unset (a
# variable set to "" stays "", which counts as missing below). DJANGO_ENV_FILE names another
# file, or /dev/null for none.
environ.Env.read_env(env.str("DJANGO_ENV_FILE", default=str(BASE_DIR / ".env")))

# DJANGO_DEBUG says "a developer's machine": throwaway secrets allowed, plain HTTP, the sandbox
# on, demo accounts, static files served from the source folders. It does not show Django's
# own debug pages (a traceback and the settings instead of our 404, 403 and 500 pages): a
# newcomer running `make run` sees the same pages as production. DJANGO_DEBUG_PAGES=true (on a
# developer's machine only) brings the debug pages back; a failure's traceback is in the log
# either way.
DEVELOPMENT = env.bool("DJANGO_DEBUG", default=False)
DEBUG = DEVELOPMENT and env.bool("DJANGO_DEBUG_PAGES", default=False)

_HOW_TO_MAKE_A_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
_HOW_TO_MAKE_A_KEY = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def _required(name: str, how: str, debug_default: str) -> str:
    """Production must name its secrets; a developer's machine may run on a throwaway one."""
    value = env.str(name, default="").strip(" ,")
    if value:
        return value
    if DEVELOPMENT:
        return debug_default
    raise ImproperlyConfigured(
        f"{name} is not set, and DJANGO_DEBUG is off. Make one with:\n    {how}\n"
        f"and put it in the environment or in .env (see .env.example)."
    )


SECRET_KEY = _required(
    "DJANGO_SECRET_KEY", _HOW_TO_MAKE_A_SECRET, "debug-only-insecure-key-" + "x" * 40
)
# Newest key first. A debug run without keys gets a fixed throwaway key: never use it for
# anything real, because anyone who reads this file can decrypt with it.
FIELD_ENCRYPTION_KEYS = [
    k.strip()
    for k in _required(
        "FIELD_ENCRYPTION_KEYS",
        _HOW_TO_MAKE_A_KEY,
        "ZGVidWctb25seS1pbnNlY3VyZS1maWVsZC1rZXktMDA=",
    ).split(",")
    if k.strip()
]
# A mistyped key stops start-up here, not the first save of a passcode hours later.
for _number, _key in enumerate(FIELD_ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS: key number {_number} is not a Fernet key (32 url-safe "
            f"base64-encoded bytes; keys are separated by commas, newest first). Make one "
            f"with:\n    {_HOW_TO_MAKE_A_KEY}"
        ) from None

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # Its widget templates, which templates/django/forms/ overrides to give every widget the
    # UI kit's classes (FORM_RENDERER below).
    "django.forms",
    "axes",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "accounts",
    "audit",
    "notices",
    "campaigns",
    "rewards",
    "api",
    "webhooks",
    # Its templates and static files: the API's docs page, served from here (no CDN).
    "ninja",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # The request's address, for the audit events its services record.
    "audit.middleware.request_address_kept",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in person's own time zone for the times a page shows (accounts.Profile).
    "accounts.middleware.person_time_zone",
    # Django's, telling htmx to load the login page rather than swap it into a fragment.
    "accounts.middleware.LoginRequiredMiddleware",
    "accounts.middleware.session_renewal",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "mokudash.middleware.no_store_when_logged_in",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.mfa_required",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout into its own response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mokudash.urls"
# A form refused for its CSRF token gets our own 403 page (the 500 one is handler500, in urls).
CSRF_FAILURE_VIEW = "mokudash.errors.csrf_failure"
WSGI_APPLICATION = "mokudash.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "rewards.context_processors.approvals",
            ],
        },
    },
]

FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

# --- Database -----------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to the same file: wait for each other's locks,
    # and take the write lock at BEGIN so that two writers never deadlock on an upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that a worker process started by a test sees the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": env.str("SQLITE_TEST_NAME", default=str(VAR_DIR / "test-db.sqlite3"))
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and Celery --------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than any task may run (CELERY_TASK_TIME_LIMIT), or Redis would hand an
        # unacknowledged task to a second worker while the first is still on it.
        "visibility_timeout": 3600,
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # kombu's filesystem transport: a broker that needs no server, for `make run` on a laptop.
    _BROKER_DIR = Path(env.str("CELERY_FILESYSTEM_BROKER_DIR", default=str(VAR_DIR / "broker")))
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "control"):
        (_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)

# The database, not the broker, is the source of truth: a task is acknowledged only when it
# has finished, a worker takes one task at a time, and a lost worker's task goes back.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 900
CELERY_TASK_SOFT_TIME_LIMIT = 840
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Sending, reconciliation and the sync each have a queue, so that a dedicated worker
# (`-Q sending`) serves one kind of work, and a backlog of one kind never waits in front of
# another. A worker started without -Q consumes every queue listed here. "celery" is the
# default, for anything not routed (and messages queued by an older version).
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [
    Queue(name, routing_key=name) for name in ("sending", "reconcile", "sync", "celery")
]
CELERY_TASK_ROUTES = {
    "rewards.batch_send_chunk": {"queue": "sending"},
    "rewards.sends_sweep": {"queue": "sending"},
    "rewards.campaign_sending_resume": {"queue": "sending"},
    "rewards.campaign_reconcile": {"queue": "reconcile"},
    "rewards.sync_campaign_month": {"queue": "sync"},
    "rewards.sync_campaign_all": {"queue": "sync"},
    "rewards.sync_recent": {"queue": "sync"},
    "rewards.sync_everything": {"queue": "sync"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {}

# --- Mokugift -----------------------------------------------------------------------------
# The port of `make run`'s web server. Not PORT: honcho gives each process of the Procfile a
# PORT of its own, so the worker would look for the sandbox on the wrong port.
WEB_PORT = env.int("WEB_PORT", default=8000)
MOKUGIFT_LIVE_URL = env.str("MOKUGIFT_LIVE_URL", default="http://www.mokugift.com/api/")
MOKUGIFT_SANDBOX_URL = env.str(
    "MOKUGIFT_SANDBOX_URL", default=f"http://127.0.0.1:{WEB_PORT}/sandbox/api/"
)
# Seconds to open a connection, and to wait for an answer once the request is sent.
MOKUGIFT_CONNECT_TIMEOUT = env.float("MOKUGIFT_CONNECT_TIMEOUT", default=5.0)
MOKUGIFT_READ_TIMEOUT = env.float("MOKUGIFT_READ_TIMEOUT", default=60.0)
# Seconds for a call as a whole, its answer read to the end. The timeouts above bound each
# wait on the network only: a server sending a byte every few seconds never trips them.
MOKUGIFT_CALL_DEADLINE = env.float("MOKUGIFT_CALL_DEADLINE", default=120.0)
if MOKUGIFT_CALL_DEADLINE <= 0:
    raise ImproperlyConfigured(
        f"MOKUGIFT_CALL_DEADLINE is {MOKUGIFT_CALL_DEADLINE:g}: it must be a number of seconds "
        "above 0."
    )
# Bytes a create call's answer may take for each reward asked for (plus 64 KiB for the rest):
# an answer that goes on past it (an endless list of rewards) is a protocol error, read in
# bounded memory. A reward of the API takes a few hundred bytes.
MOKUGIFT_MAX_ANSWER_BYTES_PER_REWARD = env.int("MOKUGIFT_MAX_ANSWER_BYTES_PER_REWARD", default=4096)

# --- Sending (rewards/services/sending.py) ------------------------------------------------
# Rows per multi call (the API allows 1,000). 250 is the balance: a 10,000-row batch is 40
# calls, so the fixed cost of a call (and of a ledger write) is spread thin, while one lost
# answer leaves at most 250 rows *unknown*, which one query of the month reconciles.
MOKUGIFT_CHUNK_SIZE = env.int("MOKUGIFT_CHUNK_SIZE", default=250)
if not 1 <= MOKUGIFT_CHUNK_SIZE <= 1000:
    # Above 1,000 the client refuses every multi call: every row of every batch would fail.
    raise ImproperlyConfigured(
        f"MOKUGIFT_CHUNK_SIZE is {MOKUGIFT_CHUNK_SIZE}: it must be 1 to 1,000 "
        "(Mokugift takes at most 1,000 rewards in one call)."
    )
# Chunks of one batch in flight at once (one task chain each), so several workers share it.
MOKUGIFT_SEND_PARALLELISM = env.int("MOKUGIFT_SEND_PARALLELISM", default=4)
# Attempts of a row (110, transport failures before the server, unknown-then-absent) before
# it is failed; the wait between them doubles from the base, with jitter, up to the cap.
MOKUGIFT_MAX_ATTEMPTS = env.int("MOKUGIFT_MAX_ATTEMPTS", default=6)
MOKUGIFT_RETRY_BACKOFF = env.float("MOKUGIFT_RETRY_BACKOFF", default=2.0)
MOKUGIFT_RETRY_BACKOFF_MAX = env.float("MOKUGIFT_RETRY_BACKOFF_MAX", default=300.0)
# Reconciliation: a reward dated up to this many seconds before the attempt still counts
# (Mokugift's dates have second precision, and its clock is not ours).
MOKUGIFT_CLOCK_SKEW = env.float("MOKUGIFT_CLOCK_SKEW", default=60.0)
# The first reconciliation pass comes this many seconds after a row goes unknown, and its
# follow-up passes as often. It decides nothing by itself: see the horizon below.
MOKUGIFT_RECONCILE_SETTLE = env.float("MOKUGIFT_RECONCILE_SETTLE", default=3.0)
# The commit horizon: a bound on how long Mokugift may take to commit a create request it has
# received. A row whose outcome is unknown is proven absent only by a query that began at least
# this long after its attempt started; until then it stays unknown, however often it is looked
# for. Too short pays twice when Mokugift is slow; too long only delays a retry.
MOKUGIFT_COMMIT_HORIZON = env.float("MOKUGIFT_COMMIT_HORIZON", default=900.0)
# After a row is proven absent, reconciliation still looks for a late reward for this long
# (a horizon broken by Mokugift must not go unseen), at most once per interval per campaign.
MOKUGIFT_LATE_WATCH = env.float("MOKUGIFT_LATE_WATCH", default=86400.0)
MOKUGIFT_LATE_WATCH_INTERVAL = env.float("MOKUGIFT_LATE_WATCH_INTERVAL", default=600.0)
# The sweep: a row in *sending* longer than a call's deadline (MOKUGIFT_CALL_DEADLINE) plus
# this margin belonged to a worker that died; it goes to *unknown* and is reconciled.
MOKUGIFT_SWEEP_MARGIN = env.float("MOKUGIFT_SWEEP_MARGIN", default=30.0)
# A campaign whose endpoint misbehaves (timeouts, answers past the deadline or not the API's
# XML, 5xx) waits this many seconds before its next call, twice as long after each further
# failure in a row, up to the cap; the other campaigns keep sending.
MOKUGIFT_CAMPAIGN_BACKOFF = env.float("MOKUGIFT_CAMPAIGN_BACKOFF", default=15.0)
MOKUGIFT_CAMPAIGN_BACKOFF_MAX = env.float("MOKUGIFT_CAMPAIGN_BACKOFF_MAX", default=900.0)
MOKUGIFT_SWEEP_INTERVAL = env.float("MOKUGIFT_SWEEP_INTERVAL", default=30.0)
CELERY_BEAT_SCHEDULE["rewards-sends-sweep"] = {
    "task": "rewards.sends_sweep",
    "schedule": MOKUGIFT_SWEEP_INTERVAL,
    # A sweep that waited longer than its interval is replaced by the next one.
    "options": {"expires": MOKUGIFT_SWEEP_INTERVAL},
}
# --- The mirror (rewards/services/sync.py) ------------------------------------------------
# Rows per upsert batch of a sync: memory stays flat, round trips stay few.
MIRROR_SYNC_BATCH_SIZE = env.int("MIRROR_SYNC_BATCH_SIZE", default=20000)
# A reward's last_seen_at is refreshed when it is older than this (seconds): a sync every few
# minutes then does not rewrite every row it reads.
MIRROR_LAST_SEEN_RESOLUTION = env.int("MIRROR_LAST_SEEN_RESOLUTION", default=3600)
# The current and previous month of every enabled campaign, every N minutes (0: off)...
MIRROR_SYNC_RECENT_MINUTES = env.int("MIRROR_SYNC_RECENT_MINUTES", default=5)
# ...and everything (all_rewards) once a night at this hour of TIME_ZONE (-1: off).
MIRROR_SYNC_NIGHTLY_HOUR = env.int("MIRROR_SYNC_NIGHTLY_HOUR", default=3)
# A sync's bounds: seconds for it as a whole (below the task's soft time limit, so that the run
# ends failed with its reason), and rewards read from one answer (an endless answer ends there).
MIRROR_SYNC_DEADLINE = env.float("MIRROR_SYNC_DEADLINE", default=600.0)
MIRROR_SYNC_MAX_ROWS = env.int("MIRROR_SYNC_MAX_ROWS", default=2_000_000)
if MIRROR_SYNC_RECENT_MINUTES > 0:
    CELERY_BEAT_SCHEDULE["rewards-sync-recent"] = {
        "task": "rewards.sync_recent",
        "schedule": MIRROR_SYNC_RECENT_MINUTES * 60.0,
        "options": {"expires": MIRROR_SYNC_RECENT_MINUTES * 60.0},
    }
if MIRROR_SYNC_NIGHTLY_HOUR >= 0:
    from celery.schedules import crontab

    CELERY_BEAT_SCHEDULE["rewards-sync-everything"] = {
        "task": "rewards.sync_everything",
        "schedule": crontab(minute=17, hour=MIRROR_SYNC_NIGHTLY_HOUR),
    }
# --- Our own API (api/) and webhooks (webhooks/) ---
# Requests per minute per API key; more gets 429 with Retry-After (counted in the cache).
API_RATE_LIMIT_PER_MINUTE = env.int("API_RATE_LIMIT_PER_MINUTE", default=600)
# The largest request body the API reads: 50,000 recipients of long addresses and names.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=20 * 1024 * 1024)
# How long an Idempotency-Key's first answer is kept and replayed (Stripe keeps 24 hours).
API_IDEMPOTENCY_HOURS = env.int("API_IDEMPOTENCY_HOURS", default=48)
# A webhook endpoint on a loopback, private, link-local or metadata address is refused unless
# this is on: a way into the network behind the server otherwise. On by default only in
# development (`make run`, the tests), whose receivers run on this machine.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=DEVELOPMENT)
# (connect, read) seconds for one delivery; redirects are never followed.
WEBHOOK_TIMEOUT = (
    env.float("WEBHOOK_CONNECT_TIMEOUT", default=3.0),
    env.float("WEBHOOK_READ_TIMEOUT", default=10.0),
)
# Retries with exponential backoff, for a day at most (the Standard Webhooks advice).
WEBHOOK_RETRY_FOR_SECONDS = env.int("WEBHOOK_RETRY_FOR_SECONDS", default=24 * 3600)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=5.0)
# After a secret is rotated, deliveries are signed with the old one too for this long.
WEBHOOK_SECRET_OVERLAP_HOURS = env.int("WEBHOOK_SECRET_OVERLAP_HOURS", default=24)
# Idempotency keys past API_IDEMPOTENCY_HOURS are deleted every hour.
CELERY_BEAT_SCHEDULE["api-idempotency-purge"] = {
    "task": "api.idempotency_purge",
    "schedule": 3600.0,
    "options": {"expires": 3600.0},
}
# Deliveries whose task was lost (a broker down, a worker killed) are queued again by this.
CELERY_BEAT_SCHEDULE["webhooks-sweep"] = {
    "task": "webhooks.sweep",
    "schedule": 60.0,
    "options": {"expires": 60.0},
}

# A CSV upload waits here between its preview and the confirm button. With several web
# servers, a folder they all share (or sticky sessions).
UPLOADS_DIR = Path(env.str("UPLOADS_DIR", default=str(VAR_DIR / "uploads")))
# The sandbox is for development and tests; production leaves it off unless asked.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEVELOPMENT)

# --- People -------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # allauth's: a person signs in with their username or their email address.
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "account_login"
# Accounts are django-allauth's (accounts/ holds what is ours around it). No one signs up:
# people are invited from the Team page (accounts.adapter.AccountAdapter closes sign-up).
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# An address must be confirmed from its own mailbox before it counts: a changed address gets
# no password reset until its owner clicked the mail, so whoever took over a session cannot
# send the resets to themselves. Invited people have confirmed theirs by following the
# invitation.
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_CHANGE_EMAIL = True
# ...and allauth's reset form would mail an address not yet confirmed: ours does not.
ACCOUNT_FORMS = {"reset_password": "accounts.forms.ResetPasswordForm"}
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[mokudash] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEVELOPMENT else "https"
# Re-authentication (password or two-factor code) before the gravest acts: adding a campaign
# or replacing its passcode, changing someone's role or access, inviting.
ACCOUNT_REAUTHENTICATION_TIMEOUT = 600
# django-axes keeps the lock-out: it counts failures per username and address in the database,
# across every web process; allauth's rate limits live in the cache, which `make run` keeps in
# each process's memory. allauth's own login_failed limit is off, so that one rule (and one
# message) applies; its other limits (password reset mails, and so on) stay.
ACCOUNT_RATE_LIMITS = {"login_failed": False}
AXES_USERNAME_CALLABLE = "mokudash.client_ip.login_name"
# Two-factor sign-in: TOTP (with a QR code) and recovery codes. Required for the roles listed
# (a superuser counts as Admin): accounts.middleware.mfa_required sends such a person to set it
# up before any other page opens.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "mokudash"
MFA_REQUIRED_ROLES = env.list("MFA_REQUIRED_ROLES", default=["Admin"])
# A session ends after this many minutes without a request (every request renews it).
SESSION_IDLE_MINUTES = env.int("SESSION_IDLE_MINUTES", default=120)
# accounts.middleware.session_renewal renews it at most once a minute.
SESSION_COOKIE_AGE = SESSION_IDLE_MINUTES * 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Each person's sessions (allauth.usersessions) are recorded at sign-in; following each
# request would cost a write per request.
USERSESSIONS_TRACK_ACTIVITY = False
MFA_ADAPTER = "accounts.adapter.MFAAdapter"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Proxies in front of the server, each appending the address that called it to
# X-Forwarded-For (nginx's $proxy_add_x_forwarded_for, most load balancers). 0: none, and a
# request's address is REMOTE_ADDR. Lock-outs count by the address this gives.
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(
        f"DJANGO_TRUSTED_PROXY_COUNT is {TRUSTED_PROXY_COUNT}: the number of proxies in front "
        "of the server, 0 or more."
    )
AXES_CLIENT_IP_CALLABLE = "mokudash.client_ip.client_ip"

# Where people reach the dashboard, for the links in mails sent outside a request (an
# invitation from `user_invite`). A page's mails use the address the request came to.
SITE_URL = env.str("SITE_URL", default=f"http://localhost:{WEB_PORT}")

# --- Mail ---------------------------------------------------------------------------------
# EMAIL_URL names the mail server: smtp://host:25, smtp+tls://user:password@host:587 (STARTTLS),
# smtp+ssl://user:password@host:465. Unset on a developer's machine: no server is needed, every
# mail is printed to the log and readable at /dev/outbox/ (accounts/mail.py); unset in
# production: the server on this machine, smtp://localhost:25. Django 6.1's MAILERS replaces
# EMAIL_BACKEND and the other EMAIL_* settings.
from mokudash.mailers import mailers_from_url  # noqa: E402 (reads no setting)

_EMAIL_URL = env.str("EMAIL_URL", default="")
if _EMAIL_URL:
    MAILERS = {"default": mailers_from_url(_EMAIL_URL)}
elif DEVELOPMENT:
    MAILERS = {"default": {"BACKEND": "accounts.mail.OutboxBackend"}}
else:
    MAILERS = {"default": mailers_from_url("smtp://localhost:25")}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="mokudash <mokudash@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Security -----------------------------------------------------------------------------
# On by default in production; a deployment behind plain HTTP (or a test run) turns them off.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEVELOPMENT)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEVELOPMENT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEVELOPMENT else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Scripts only from our own static files: no inline <script>, no onclick=, no javascript: link
# runs, so a value that slipped into a page (a reward URL, a name) cannot become script. Inline
# style stays allowed: progress bars draw their width in a style attribute, and style cannot
# run script.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    # The UI kit draws its check marks, select arrows and menu icon as data: SVG images; an
    # image cannot run script.
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Static files, time, logging ---------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Where `collectstatic` writes, and WhiteNoise serves from (with debug off); a relative path
# is in the project folder.
STATIC_ROOT = BASE_DIR / env.str("DJANGO_STATIC_ROOT", default="staticfiles")
# On a developer's machine WhiteNoise serves static files straight from the source folders
# (found fresh on each request), with Django's debug mode off as with it on.
WHITENOISE_USE_FINDERS = DEVELOPMENT
WHITENOISE_AUTOREFRESH = DEVELOPMENT
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEVELOPMENT and env.bool("DJANGO_MANIFEST_STATIC", default=True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
