"""manage.py retag: remake the model's tags of every processed photo from its stored vectors, after
the tag vocabulary (TAG_VOCABULARY), prompt or threshold changed. A person's tags stay as they are.
A new CLIP model needs `manage.py reprocess` instead: its vectors, and so its tags, are made anew."""

from django.core.management.base import BaseCommand

from gallery.models import Image
from search.tagging import retag
from search.vision.registry import get_clip


class Command(BaseCommand):
    help = "Remake the model's tags of every processed photo from its stored vectors."

    def handle(self, *args, **options):
        images = Image.objects.filter(status=Image.Status.READY).order_by("pk")
        made = retag(images, get_clip())
        self.stdout.write(f"Tagged {images.count()} photo(s): {made} tag(s) from the model.")
