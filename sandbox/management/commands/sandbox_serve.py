from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import get_internal_wsgi_application, run


class Command(BaseCommand):
    help = (
        "Serve this Django project (the sandbox under /sandbox/api/ among it) with a threaded "
        "WSGI server and no autoreloader: the sandbox on its own, for tests and benchmarks. "
        "Needs SANDBOX_ENABLED (on by default with DJANGO_DEBUG)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args, **options):
        if not settings.SANDBOX_ENABLED:
            raise CommandError("SANDBOX_ENABLED is off: there would be no sandbox to serve.")
        host, port = options["host"], options["port"]

        # Django passes the port bound, an int (django-stubs says a str: both are taken).
        def on_bind(bound_port: int | str) -> None:
            self.stdout.write(f"sandbox at http://{host}:{bound_port}/sandbox/api/", ending="\n")
            self.stdout.flush()

        run(host, port, get_internal_wsgi_application(), threading=True, on_bind=on_bind)
