"""What a phone-sized photo of each format costs before it can be searchable: the decode and
metadata of the upload check, the thumbnail and the screen-sized preview (issue 28's stage 1, less
the whole-image CLIP vector, which bench/pipeline_seconds.py times).

    .venv/bin/python -m bench.formats_bench --runs 3

Each photo is 4032x3024 (a 12 MP phone photo), made by the format's own encoder from the same
generated scene with noise (so that it does not compress to nothing): JPEG (Pillow), HEIC
(pillow-heif), AVIF (Pillow), JPEG XL (pillow-jxl-plugin), PNG, and a 6000x4000 camera RAW (a
Bayer DNG, demosaiced by LibRaw: no embedded preview). Medians of --runs, in seconds.
"""

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def photo(width: int, height: int):
    from PIL import Image as PILImage

    from tests import images

    pixels = np.asarray(images.scene(width, height, seed=1), dtype=np.int16)
    noise = np.random.default_rng(1).integers(-12, 13, size=pixels.shape)
    return PILImage.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def files() -> dict[str, bytes]:
    import pillow_heif
    import pillow_jxl  # noqa: F401

    from tests import images

    pillow_heif.register_heif_opener()
    picture = photo(4032, 3024)
    exif = images.camera_exif().tobytes()
    made = {}
    for name, fmt, options in (
        ("JPEG", "JPEG", {"quality": 90}),
        ("HEIC", "HEIF", {"quality": 80}),
        ("AVIF", "AVIF", {"quality": 70}),
        ("JPEG XL", "JXL", {"quality": 85}),
        ("PNG", "PNG", {}),
    ):
        made[name] = images.encode(picture, fmt, exif=exif, **options)
    made["RAW (DNG, 24 MP)"] = images.dng(6000, 4000, seed=1)
    return made


def timed(function, runs: int) -> float:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.conf import settings
    from PIL import Image as PILImage

    from gallery.imaging import open_rgb
    from gallery.validation import validate_image_bytes

    def thumbnail(data: bytes, side: int) -> None:
        picture = open_rgb(io.BytesIO(data), at_least=side)
        picture.thumbnail((side, side), PILImage.Resampling.LANCZOS)
        picture.save(io.BytesIO(), "JPEG", quality=85)

    print(f"{'format':<18} {'MB':>6} {'check':>7} {'thumb':>7} {'preview':>8} {'total':>7}")
    for name, data in files().items():
        check = timed(lambda data=data: validate_image_bytes(data), arguments.runs)
        small = timed(lambda data=data: thumbnail(data, settings.THUMBNAIL_SIZE), arguments.runs)
        large = timed(lambda data=data: thumbnail(data, settings.PREVIEW_SIZE), arguments.runs)
        total = check + small + large
        print(f"{name:<18} {len(data) / 1e6:>6.1f} {check:>7.2f} {small:>7.2f} {large:>8.2f} {total:>7.2f}")


if __name__ == "__main__":
    main()
