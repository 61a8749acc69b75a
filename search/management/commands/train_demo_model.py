from pathlib import Path

from django.core.management.base import BaseCommand

from search.vision.training.demo_clip import DEMO_WEIGHTS, train_demo_model


class Command(BaseCommand):
    help = "Train the small demo CLIP (imgsearch-demo) on generated coloured shapes; writes float16 weights."

    def add_arguments(self, parser):
        parser.add_argument(
            "--steps", type=int, default=6000, help="Training steps: more train a better model, and take longer."
        )
        parser.add_argument("--batch-size", type=int, default=32, help="Distinct classes per batch (at most 32).")
        parser.add_argument("--output", type=Path, default=DEMO_WEIGHTS, help="Where to write the weights.")

    def handle(self, *args, steps: int, batch_size: int, output: Path, **options):
        report = train_demo_model(steps=steps, batch_size=batch_size, output=output, log=self.stdout.write)
        self.stdout.write(
            f"Trained {report.steps} steps in {report.seconds:.0f} s; final loss {report.final_loss:.3f}; "
            f"zero-shot accuracy over {32} colour x shape classes: {report.zero_shot_accuracy:.1%} on demo-scene shapes, "
            f"{report.varied_accuracy:.1%} on varied crops. Saved {output}."
        )
