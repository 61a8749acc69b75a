import io

import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from tqdm import tqdm

from gallery.services import image_create, image_set_visibility
from search.vision.training import demo


class Command(BaseCommand):
    help = "Create a demo user and upload generated scenes of coloured shapes (use with IMGSEARCH_MODEL_PROFILE=demo)."

    def add_arguments(self, parser):
        parser.add_argument("--user", default="demo", help="Who owns the demo scenes (made if missing).")
        parser.add_argument("--password", default="demo-password", help="That user's password, when the user is made.")
        parser.add_argument("--scenes", type=int, default=40, help="How many generated scenes to upload.")
        parser.add_argument(
            "--seed", type=int, default=7, help="Random seed of the scene generator (same seed, same scenes)."
        )

    def handle(self, *args, user: str, password: str, scenes: int, seed: int, **options):
        User = get_user_model()
        owner, created = User.objects.get_or_create(username=user)
        if created:
            owner.set_password(password)
            owner.save()
            self.stdout.write(f"Created user {user!r} with password {password!r}.")
        rng = np.random.default_rng(seed)
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for number in tqdm(range(scenes), desc="Demo scenes", disable=None):
            picture, shapes = demo.scene(512, 384, rng, count=2 + number % 2)
            buffer = io.BytesIO()
            picture.save(buffer, "JPEG", quality=92)
            name = " and ".join(f"{s.colour} {s.shape}" for s in shapes) + ".jpg"
            outcome = image_create(owner=owner, upload=ContentFile(buffer.getvalue(), name=name))
            counts[outcome.outcome] += 1
            if outcome.outcome == "accepted" and number % 4 == 0:
                image_set_visibility(image=outcome.image, is_public=True)
        self.stdout.write(
            f"{counts['accepted']} scenes queued, {counts['duplicate']} already there. "
            f"Log in as {user!r} and search for “a red circle”."
        )
