"""One manage.py command of bench_mirror.py, in a process of its own (its peak RSS is the
command's):

    python tests/bench/manage_child.py COMMAND [ARGS...]

Runs the command as `manage.py COMMAND ARGS...` would (call_command, in this process), then
prints on its last line the seconds the command took (Django already started) and this
process's own peak RSS in MiB (VmHWM, export_child.peak_rss_mib). The command's own output
comes before.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.export_child import peak_rss_mib  # noqa: E402  (the path above first)


def main() -> None:
    command, *args = sys.argv[1:]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mokudash.settings")
    import django

    django.setup()
    from django.core.management import call_command

    started = time.perf_counter()
    call_command(command, *args)
    seconds = time.perf_counter() - started
    sys.stdout.flush()
    print(f"{seconds:.3f} {peak_rss_mib():.1f}")


if __name__ == "__main__":
    main()
