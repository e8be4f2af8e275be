"""The README's production steps, run for real with DJANGO_DEBUG=false: migrate, collectstatic
into a temporary STATIC_ROOT, gunicorn on a free port, then the login page and the static files
it names must answer 200.

    .venv/bin/python tests/production_check.py

CI runs it (.ci/run), and `make test` runs it too (tests/test_production_steps.py). It needs no
service: the database is a throwaway SQLite file, the secrets are made afresh, and everything
it writes goes to a temporary folder that is removed at the end. The site is served over plain
HTTP here, so the HTTPS redirect is off (in production a TLS proxy sits in front).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent
# The variables that say something about mokudash: the check starts from none of them.
OURS = ("DJANGO_", "FIELD_ENCRYPTION_KEYS", "DATABASE_", "REDIS_URL", "SANDBOX_", "MOKUGIFT_")
LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(?P<port>\d+)")
STYLESHEET = re.compile(r'<link rel="stylesheet" href="(?P<href>/static/[^"]+)"')
# A vendored file, served under its hashed name too (its source map comment once broke
# collectstatic).
VENDORED = "vendor/chart-4.6.1.umd.min.js"
TIMEOUT = 120


class CheckFailed(Exception):
    pass


def production_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    env.update(
        DJANGO_ENV_FILE=os.devnull,
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_STATIC_ROOT=str(workdir / "static"),
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        CELERY_FILESYSTEM_BROKER_DIR=str(workdir / "broker"),
        PYTHONWARNINGS="ignore",
    )
    return env


def _manage(*args: str, env: dict[str, str]) -> str:
    command = [sys.executable, "manage.py", *args]
    result = subprocess.run(
        command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    if result.returncode != 0:
        raise CheckFailed(
            f"`manage.py {' '.join(args)}` exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """gunicorn as the README starts it, on a free port; returns it and its base URL."""
    command = [
        *(sys.executable, "-m", "gunicorn", "mokudash.wsgi"),
        *("--bind", "127.0.0.1:0", "--workers", "1", "--no-control-socket"),
    ]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_text())
        if found:
            return process, f"http://127.0.0.1:{found['port']}"
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise CheckFailed("gunicorn did not start:\n" + log.read_text()[-3000:])


def _get(url: str, log: Path) -> requests.Response:
    response = requests.get(url, timeout=(5, 30), allow_redirects=False)
    if response.status_code != 200:
        raise CheckFailed(
            f"GET {url} answered {response.status_code}, not 200. gunicorn's log:\n"
            + log.read_text()[-3000:]
        )
    return response


def production_check(workdir: Path) -> list[str]:
    """Run the steps in `workdir`; returns the URLs that answered 200, or raises CheckFailed."""
    env = production_env(workdir)
    _manage("migrate", "--noinput", "-v0", env=env)
    _manage("collectstatic", "--noinput", "-v0", env=env)
    manifest = workdir / "static" / "staticfiles.json"
    if not manifest.exists():
        raise CheckFailed("collectstatic wrote no manifest (staticfiles.json)")
    vendored = json.loads(manifest.read_text())["paths"].get(VENDORED)
    if vendored is None:
        raise CheckFailed(f"the manifest has no {VENDORED}")
    log = workdir / "gunicorn.log"
    process, base = _serve(env, log)
    try:
        login = _get(base + "/accounts/login/", log)
        stylesheets = [base + found["href"] for found in STYLESHEET.finditer(login.text)]
        if not stylesheets:
            raise CheckFailed("the login page names no stylesheet under /static/")
        # The hashed names, as the manifest gives them: WhiteNoise must serve each.
        for stylesheet in stylesheets:
            _get(stylesheet, log)
        _get(f"{base}/static/{vendored}", log)
        # Our own 404 page (with its stylesheet under the manifest), and the icon browsers ask
        # for by themselves.
        missing = requests.get(base + "/no-such-page/", timeout=(5, 30))
        if missing.status_code != 404 or "Page not found" not in missing.text:
            raise CheckFailed(
                f"GET /no-such-page/ answered {missing.status_code} without our 404 page:\n"
                + missing.text[:2000]
            )
        icon = requests.get(base + "/favicon.ico", timeout=(5, 30), allow_redirects=False)
        if icon.status_code != 302:
            raise CheckFailed(f"GET /favicon.ico answered {icon.status_code}, not 302")
        _get(base + icon.headers["Location"], log)
        return [base + "/accounts/login/", *stylesheets, f"{base}/static/{vendored}"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mokudash-production-") as folder:
        try:
            served = production_check(Path(folder))
        except CheckFailed as failure:
            print(f"production steps: FAILED\n{failure}", file=sys.stderr)
            return 1
    print("production steps: migrate, collectstatic and gunicorn with DJANGO_DEBUG=false; 200 for")
    for url in served:
        print(f"  {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
