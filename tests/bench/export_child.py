"""One export of bench_mirror.py, in a process of its own (its peak RSS is the export's):

    python tests/bench/export_child.py command|page|none copy|python CAMPAIGN_PK OUTPUT

`command`: `manage.py export_rewards --campaign PK --output OUTPUT`, as an operator runs it.
`page`: the rewards page's download (Django's test client, the whole stack from the URL on,
the response streamed to OUTPUT piece by piece, as a server hands it to the socket), by the
manager bench_mirror.py made. `none`: Django started and one query, the floor of the peak
RSS. `python` forces the csv module's path (the figures before COPY),
`copy` is what PostgreSQL gets by default. Prints the seconds it took.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    door, via, campaign_pk, output = sys.argv[1:5]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mokudash.settings")
    import django

    django.setup()
    from rewards.services import export

    # The door calls export.rewards_csv by its module: the bench chooses the path there.
    export.rewards_csv = functools.partial(export.rewards_csv, via=via)  # type: ignore[assignment]
    started = time.perf_counter()
    if door == "none":
        # The floor of the peak RSS: Django started, connected, one query.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    elif door == "command":
        from django.core.management import call_command

        call_command("export_rewards", "--campaign", campaign_pk, "--output", output)
    else:
        from django.contrib.auth.models import User
        from django.test import Client
        from django.urls import reverse

        web = Client()
        web.force_login(
            User.objects.get(username="bench-manager"),
            backend="allauth.account.auth_backends.AuthenticationBackend",
        )
        response = web.get(reverse("rewards:list_csv"), {"campaign": campaign_pk})
        assert response.status_code == 200 and response.streaming, response.status_code
        with open(output, "wb") as out:
            for piece in response.streaming_content:
                out.write(piece)
        response.close()
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
