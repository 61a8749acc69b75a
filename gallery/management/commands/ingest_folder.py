from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from gallery.services import image_create, image_set_visibility


class Command(BaseCommand):
    help = "Upload every file in a folder (recursively) for a user, as the web form would."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--user", required=True, help="Username that will own the images.")
        parser.add_argument("--public", action="store_true", help="Make the new images public.")

    def handle(self, *args, path: Path, user: str, public: bool, **options):
        try:
            owner = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {user!r}; create it first (manage.py createsuperuser).") from None
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder.")
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        rejected = []
        for file_path in tqdm(files, desc="Ingesting", unit="file", disable=None):
            with file_path.open("rb") as handle:
                outcome = image_create(owner=owner, upload=File(handle, name=file_path.name))
            counts[outcome.outcome] += 1
            if outcome.outcome == "rejected":
                rejected.append(f"{file_path}: {outcome.message}")
            elif outcome.outcome == "accepted" and public:
                image_set_visibility(image=outcome.image, is_public=True)
        for line in rejected:
            self.stderr.write(f"rejected {line}")
        self.stdout.write(
            f"{counts['accepted']} queued, {counts['duplicate']} duplicates skipped, {counts['rejected']} rejected."
        )
