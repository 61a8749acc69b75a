"""`manage.py library`: folders read in place (gallery/libraries.py)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from gallery.libraries import library_scan
from gallery.models import Library


class Command(BaseCommand):
    help = "Register a folder to read in place for a person, scan it now, or list the libraries."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="action", required=True)
        add = commands.add_parser(
            "add", help="Register a folder (read only: nothing in it is ever written or deleted)."
        )
        add.add_argument("path")
        add.add_argument("--user", required=True, help="Whose photos they are.")
        add.add_argument("--include", default="", help="Comma-separated patterns of files to read (*.jpg,*.heic).")
        add.add_argument("--exclude", default="", help="Comma-separated patterns to leave out.")
        add.add_argument("--rescan-minutes", type=int, default=60, help="How often the worker rescans it.")
        scan = commands.add_parser("scan", help="Scan now: new, changed and removed files.")
        scan.add_argument("id", nargs="?", type=int, help="One library (all without).")
        commands.add_parser("list", help="The libraries, with their last scans.")

    def handle(self, *args, action: str, **options):
        if action == "add":
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}.")
            library, created = Library.objects.get_or_create(
                owner=user,
                path=options["path"],
                defaults={
                    "include": options["include"],
                    "exclude": options["exclude"],
                    "rescan_minutes": max(1, options["rescan_minutes"]),
                },
            )
            self.stdout.write(f"Library {library.pk}: {library}{'' if created else ' (already there)'}.")
            self._scan([library])
        elif action == "scan":
            libraries = Library.objects.filter(pk=options["id"]) if options["id"] else Library.objects.order_by("pk")
            if options["id"] and not libraries:
                raise CommandError(f"No library {options['id']}.")
            self._scan(list(libraries))
        else:
            for library in Library.objects.order_by("pk"):
                when = f"{library.scanned_at:%Y-%m-%d %H:%M}" if library.scanned_at else "never"
                self.stdout.write(f"{library.pk}: {library}, scanned {when}: {library.last_scan or '-'}")

    def _scan(self, libraries) -> None:
        for library in libraries:
            try:
                scan = library_scan(library)
            except FileNotFoundError as error:
                raise CommandError(str(error)) from None
            self.stdout.write(f"Library {library.pk}: {scan}.")
            for path, why in scan.rejected:
                self.stdout.write(f"  not read: {path}: {why}")
