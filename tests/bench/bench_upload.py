"""Upload benchmark: a 50,000-row XLSX (and the same rows as CSV) from the upload's POST to the
preview page, as a marketer's browser would ask for them.

    DATABASE_URL=postgres://... .venv/bin/python tests/bench/bench_upload.py [--rows 50000]
        [--file some.xlsx] [--runs 3]

(a migrated database: `manage.py migrate` first.)

The workbook is written by openpyxl unless --file gives one (for example one LibreOffice made:
`soffice --headless --convert-to xlsx big.csv`). Everything the bench writes to the database
is rolled back at the end; the uploads go to a temporary folder. Printed: the median of
--runs of the POST (the one parse: reading, the rules, the recently rewarded lookup, the
kept JSON), of the preview's GET, and of the reading alone (recipient_files), and the CPU time
this process spent from the POST to the preview (PostgreSQL's own time not counted), with the
load average: this machine is shared, and the wall-clock times grow with its load.

A script, not a test: it is not collected by pytest (the name does not start with test_).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mokudash.settings")


def workbook(rows: int) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Recipients")
    sheet.append(["email", "name", "member", "city"])
    for n in range(rows):
        sheet.append([f"person{n}@example.com", f"Zoë Müller {n}", 100_000 + n, "Genève"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_bytes(rows: int) -> bytes:
    lines = ["email;name;member;city"] + [
        f"person{n}@example.com;Zoë Müller {n};{100_000 + n};Genève" for n in range(rows)
    ]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import transaction
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from campaigns import roles
    from campaigns.services import campaign_create
    from rewards.services.recipient_files import table_read

    setup_test_environment()
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.UPLOADS_DIR = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    files = {
        "xlsx": args.file.read_bytes() if args.file else workbook(args.rows),
        "csv (Windows-1252, ;)": csv_bytes(args.rows),
    }
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with transaction.atomic():
        marketer = get_user_model().objects.create_user(username="bench-marketer")
        marketer.groups.add(Group.objects.get(name=roles.MARKETING))
        campaign = campaign_create(
            actor=None, name="Bench", campaign_id="bench-1", environment="sandbox", passcode="p"
        )
        client = Client()
        client.force_login(marketer)
        for kind, data in files.items():
            posts, gets, reads, cpus = [], [], [], []
            for _ in range(args.runs):
                started = time.monotonic()
                table = table_read(data=data)
                count = sum(1 for _ in table.rows)
                reads.append(time.monotonic() - started)

                started, cpu = time.monotonic(), time.process_time()
                response = client.post(
                    reverse("rewards:send_upload"),
                    {
                        "bulk-campaign": campaign.pk,
                        "bulk-mode": "email",
                        "bulk-file": SimpleUploadedFile(f"bench.{kind[:4]}", data),
                    },
                )
                posts.append(time.monotonic() - started)
                assert response.status_code == 302, response.content[:500]
                started = time.monotonic()
                page = client.get(response["Location"])
                gets.append(time.monotonic() - started)
                cpus.append(time.process_time() - cpu)
                assert b'data-testid="passed-rows">' in page.content
            post, get = statistics.median(posts), statistics.median(gets)
            print(
                f"{kind:24} {len(data) / 1e6:5.1f} MB {count - 1:,} rows: "
                f"read {statistics.median(reads):.2f} s, upload {post:.2f} s, "
                f"preview {get:.2f} s, upload to preview {post + get:.2f} s "
                f"(this process's CPU: {statistics.median(cpus):.2f} s)"
            )
        transaction.set_rollback(True)


if __name__ == "__main__":
    main()
