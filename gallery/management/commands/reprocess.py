from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from gallery.models import Image
from gallery.services import images_reprocess


class Command(BaseCommand):
    help = "Queue images for segmentation and embedding again."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--failed", action="store_true",
                           help="Failed images, and ones stuck pending or processing past the task timeout.")
        group.add_argument("--all", action="store_true", help="Every image (after changing models or SAM settings).")
        group.add_argument("--id", type=int, nargs="+", dest="ids", help="These image ids.")

    def handle(self, *args, failed: bool, all: bool, ids: list[int] | None, **options):
        if failed:
            # A worker killed mid-task (timeout, OOM killer) leaves its image in processing for good, and
            # a task that never reached the broker (broker down at upload) leaves it pending.
            stuck_since = timezone.now() - timedelta(seconds=settings.Q_TIMEOUT)
            queryset = Image.objects.filter(
                Q(status=Image.Status.FAILED)
                | Q(status=Image.Status.PROCESSING, processing_started_at__lt=stuck_since)
                | Q(status=Image.Status.PENDING, updated_at__lt=stuck_since)
            )
        elif all:
            queryset = Image.objects.all()
        else:
            queryset = Image.objects.filter(pk__in=ids)
            missing = set(ids) - set(queryset.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"No images with ids {sorted(missing)}.")
        count = images_reprocess(queryset=queryset)
        self.stdout.write(f"Queued {count} image(s).")
