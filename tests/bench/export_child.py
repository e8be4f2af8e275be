"""One export of bench_mirror.py, in a process of its own (its peak RSS is the export's):

    python tests/bench/export_child.py command|page|page-empty|none copy|python CAMPAIGN_PK OUTPUT

`command`: `manage.py export_rewards --campaign PK --output OUTPUT`, as an operator runs it.
`page`: the rewards page's download (Django's test client, the whole stack from the URL on,
the response streamed to OUTPUT piece by piece, as a server hands it to the socket), by the
manager bench_mirror.py made; `page-empty`: the same for a month without rewards, the page's
floor of the peak RSS; `none`: Django started and one query, a process's floor. `python`
forces the csv module's path (the figures before COPY), `copy` is what PostgreSQL gets by
default. Prints the seconds it took, its CPU seconds, its database backend's, and its own
peak RSS in MiB.
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
    started, cpu_started = time.perf_counter(), time.process_time()
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
        params = {"campaign": campaign_pk}
        if door == "page-empty":
            # The same stack for a month without rewards: the floor of the page's peak RSS.
            params["month"] = "2025-01"
        response = web.get(reverse("rewards:list_csv"), params)
        assert response.status_code == 200 and response.streaming, response.status_code
        with open(output, "wb") as out:
            for piece in response.streaming_content:
                out.write(piece)
        response.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    # And the CPU time of this process's PostgreSQL backend (same machine), which did the
    # other half of the work: on a shared machine CPU seconds are steadier than the clock.
    from django.db import connection

    server_cpu = backend_cpu(connection.connection.info.backend_pid)
    print(f"{seconds:.3f} {cpu:.3f} {server_cpu:.3f} {peak_rss_mib():.1f}")


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM, of its address space since exec). Not ru_maxrss:
    that keeps the high-water mark of the address space before exec, which for a child of
    subprocess (vfork) is its parent's, the bench's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def backend_cpu(pid: int) -> float:
    """User and system CPU seconds of a process (a PostgreSQL backend), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
