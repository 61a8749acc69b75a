from django.core.management.base import BaseCommand, CommandError

from gallery.models import Image
from gallery.services import images_reprocess


class Command(BaseCommand):
    help = "Queue images for segmentation and embedding again."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument(
            "--failed",
            action="store_true",
            help="Failed images (`run_worker` already recovers pending and processing ones).",
        )
        group.add_argument("--all", action="store_true", help="Every image (after changing models or SAM settings).")
        group.add_argument("--id", type=int, nargs="+", dest="ids", help="These image ids.")

    def handle(self, *args, failed: bool, all: bool, ids: list[int] | None, **options):
        if failed:
            queryset = Image.objects.filter(status=Image.Status.FAILED)
        elif all:
            queryset = Image.objects.all()
        else:
            queryset = Image.objects.filter(pk__in=ids)
            missing = set(ids) - set(queryset.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"No images with ids {sorted(missing)}.")
        count = images_reprocess(queryset=queryset)
        self.stdout.write(f"Queued {count} image(s).")
