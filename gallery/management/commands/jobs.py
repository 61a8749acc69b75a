"""`manage.py jobs`: where processing stands (what the staff jobs page shows), and pause/resume."""

from django.core.management.base import BaseCommand

from gallery.jobs import jobs_summary
from gallery.work_queue import processing_pause, processing_resume


class Command(BaseCommand):
    help = "Show each stage's photos waiting, in progress, done and failed, how fast, and why they failed; pause or resume."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--pause", action="store_true", help="Workers claim no more photos until --resume.")
        group.add_argument("--resume", action="store_true", help="Workers claim photos again; waiting ones are queued.")

    def handle(self, *args, pause: bool, resume: bool, **options):
        if pause:
            processing_pause(by="manage.py jobs")
            self.stdout.write("Processing paused: photos being processed finish, the others wait.")
        if resume:
            requeued = processing_resume().requeued
            self.stdout.write(f"Processing resumed: {len(requeued)} waiting photo(s) queued again.")
        jobs = jobs_summary()
        self.stdout.write(f"{jobs.progress_words()}." + (f" PAUSED ({jobs.paused})." if jobs.paused else ""))
        for label, stage in (("searchable", jobs.searchable), ("objects", jobs.objects)):
            self.stdout.write(
                f"  {label}: {stage.waiting} waiting, {stage.running} in progress, {stage.done} done, "
                f"{stage.failed} failed; {stage.per_minute:.1f}/min over the last 15 minutes; {stage.eta_words()}."
            )
        for sentence, count in jobs.failures:
            self.stdout.write(f"  failed ×{count}: {sentence}")
