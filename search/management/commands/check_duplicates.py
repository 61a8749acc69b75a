"""manage.py check_duplicates: run the near-duplicate pixel check (crops the hash misses) now, for
every processed photo the search index holds that has not had it. run_worker's sweep does the same a
few photos a round; this works through an old library's backlog at full speed. --again forgets the
earlier verdicts first (after changing NEAR_DUPLICATE_CHECKED or its thresholds)."""

from django.core.management.base import BaseCommand, CommandError

from gallery.models import Image
from search.duplicates import pixel_checks_backfill
from search.index import IndexUnavailable, get_index
from search.models import PixelCheck, PixelVerdict


class Command(BaseCommand):
    help = "Run the near-duplicate pixel check now for every processed photo that has not had it."

    def add_arguments(self, parser):
        parser.add_argument(
            "--again", action="store_true", help="Forget every earlier verdict and check all photos anew."
        )

    def handle(self, *args, again: bool = False, **options):
        try:
            get_index().current()
        except IndexUnavailable as error:
            raise CommandError(f"{error} The pixel check finds a photo's likely copies through it.") from None
        if again:
            forgotten, _ = PixelVerdict.objects.all().delete()
            PixelCheck.objects.all().delete()
            self.stdout.write(f"Forgot {forgotten} verdict(s).")
        checked = 0
        while done := pixel_checks_backfill(limit=50):
            checked += done
            self.stdout.write(f"Pixel-checked {checked} photo(s)…")
        waiting = Image.objects.filter(status=Image.Status.READY, pixel_check__isnull=True).count()
        same = PixelVerdict.objects.filter(same=True).count()
        self.stdout.write(
            f"Pixel-checked {checked} photo(s); {same} pair(s) found to be one picture in all."
            + (f" {waiting} photo(s) wait for the index to take them in." if waiting else "")
        )
