"""The README's production steps work: tests/production_check.py runs them for real (migrate,
collectstatic with the manifest storage, gunicorn with DJANGO_DEBUG=false) in a temporary
folder. CI also runs the script on its own (.ci/run)."""

from __future__ import annotations

import re

from tests.production_check import production_check


def test_with_debug_off_collectstatic_succeeds_and_the_login_page_and_its_files_are_served(
    tmp_path,
):
    login, *stylesheets, chart = production_check(tmp_path)
    assert login.endswith("/accounts/login/")
    # Under the hashed names the manifest gives: WhiteNoise serves what collectstatic wrote,
    # the UI kit's stylesheet and ours.
    kit = r"/static/vendor/tabler-1\.6\.1\.min\.[0-9a-f]{12}\.css$"
    ours = r"/static/css/app\.[0-9a-f]{12}\.css$"
    assert any(re.search(kit, href) for href in stylesheets)
    assert any(re.search(ours, href) for href in stylesheets)
    assert re.search(r"/static/vendor/chart-4\.6\.1\.umd\.min\.[0-9a-f]{12}\.js$", chart)
