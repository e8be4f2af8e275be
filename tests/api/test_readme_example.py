"""The README's Python example of the API, run as written against a live server, a real worker
and the sandbox over HTTP: it sends a reward and prints its result. A README whose example no
longer works fails here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from api.services import api_key_create
from sandbox.models import SandboxReward

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python_example() -> str:
    api = README.read_text().split("## The API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", api, re.S)
    assert len(blocks) == 1, "the README's API section has one Python example"
    return blocks[0]


def test_the_readme_python_example_sends_a_reward_and_prints_its_row_sent(
    sandbox, celery_worker, marketer, tmp_path
):
    sandbox.campaign(campaign_id="demo", passcode="readme-Passcode-1")
    celery_worker()
    key = api_key_create(user=marketer, name="readme", scopes="send,read").secret
    script = tmp_path / "example.py"
    script.write_text(readme_python_example())
    ran = subprocess.run(
        [sys.executable, str(script)],
        env={
            **os.environ,
            "MOKUDASH_URL": sandbox.api_url.split("/sandbox/")[0],
            "MOKUDASH_API_KEY": key,
        },
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("done {") and "'sent': 1" in lines[0], ran.stdout
    row = lines[1].split(" ")
    assert row[:3] == ["1", "ada@example.com", "sent"], ran.stdout
    reward = SandboxReward.objects.get(recipient_email="ada@example.com")
    assert row[3] == reward.url, (row, reward.url)
    assert key not in ran.stdout + ran.stderr
