from pathlib import Path

from django.core.management.base import BaseCommand

from search.vision.objectness import OBJECTNESS_WEIGHTS
from search.vision.training.objectness import train_objectness


class Command(BaseCommand):
    help = (
        "Train the demo profile's objectness network (search/vision/objectness.py) on generated scenes; "
        "writes float16 weights."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--steps", type=int, default=8000, help="Training steps: more train a better network, and take longer."
        )
        parser.add_argument(
            "--scenes", type=int, default=6000, help="Generated scenes to draw the training crops from."
        )
        parser.add_argument("--output", type=Path, default=OBJECTNESS_WEIGHTS, help="Where to write the weights.")

    def handle(self, *args, steps: int, scenes: int, output: Path, **options):
        report = train_objectness(steps=steps, scenes=scenes, output=output, log=self.stdout.write)
        self.stdout.write(
            f"Trained {report.steps} steps in {report.seconds:.0f} s; final loss {report.final_loss:.3f}. Saved {output}."
        )
