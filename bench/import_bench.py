"""A photo library imported in place with the default models (random weights), on this machine:
how long until every photo is searchable, each stage's photos a minute, memory over the import,
and the database and index sizes it leaves.

    .venv/bin/python -m bench.import_bench --photos 10000 --objects 20   # the issue's size (hours)
    .venv/bin/python -m bench.import_bench --photos 400 --objects 10

The library is generated: phone and camera photos in the mix a phone library has (12 MP JPEG,
HEIC and AVIF from phones, 8 MP and 3 MP JPEGs, PNG screenshots, a few 24 MP camera RAW DNGs),
each with the camera's EXIF and a date over five years. It is registered as a Library and read in
place (`library_scan`: every file checked like an upload and queued), then a worker's tasks run
in this process, as `run_worker` runs them: the first stage for every photo (searchable), then the
second (SAM objects) for the first --objects photos only: at ~8 s a photo here, 10,000 photos are
~22 hours of SAM, so its rate is measured on a sample. The index is built from the database at the
end (`rebuild_index`), as the indexer would have kept it. It runs against a throwaway SQLite
database and folders, so it touches nothing of yours.
"""

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (share of the library, format, size, extension)
MIX = [
    (0.45, "JPEG", (4032, 3024), "jpg"),  # a phone's 12 MP JPEG
    (0.15, "HEIF", (4032, 3024), "heic"),  # an iPhone's HEIC
    (0.05, "AVIF", (4032, 3024), "avif"),
    (0.15, "JPEG", (3264, 2448), "jpg"),  # 8 MP
    (0.10, "JPEG", (2048, 1536), "jpg"),  # 3 MP, sent through a messenger
    (0.09, "PNG", (1179, 2556), "png"),  # a phone screenshot
    (0.01, "DNG", (6000, 4000), "dng"),  # a camera's 24 MP RAW
]


def library_folder(folder: Path, count: int, seed: int = 0) -> dict[str, int]:
    """Write `count` photos into `folder` in MIX's proportions; how many of each format."""
    import pillow_heif
    from PIL import Image as PILImage

    from tests import images

    pillow_heif.register_heif_opener()
    rng = np.random.default_rng(seed)
    bases: dict[tuple[int, int], list[np.ndarray]] = {}
    made: dict[str, int] = {}
    shares = np.array([share for share, *_ in MIX])
    for number in range(count):
        _, fmt, (width, height), extension = MIX[rng.choice(len(MIX), p=shares / shares.sum())]
        if (width, height) not in bases:  # a few scenes per size, with noise (so none compresses to nothing)
            bases[(width, height)] = [
                np.clip(
                    np.asarray(images.scene(width, height, seed=s), dtype=np.int16)
                    + rng.integers(-12, 13, size=(height, width, 3)),
                    0,
                    255,
                ).astype(np.uint8)
                for s in range(3)
            ]
        pixels = bases[(width, height)][number % 3].copy()
        # A patch of its own makes every photo's bytes differ (no two are duplicates).
        x, y = int(rng.integers(0, width - 64)), int(rng.integers(0, height - 64))
        pixels[y : y + 64, x : x + 64] = rng.integers(0, 256, size=3)
        day = int(rng.integers(0, 5 * 365))
        taken = time.strftime("%Y:%m:%d %H:%M:%S", time.gmtime(1_577_836_800 + day * 86_400 + number))
        exif = images.camera_exif()
        exif.get_ifd(0x8769).update({0x9003: taken, 0x9011: "+01:00"})
        path = folder / f"{number // 1000:02d}" / f"IMG_{number:05d}.{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "DNG":
            path.write_bytes(images.dng(width, height, seed=number))
        else:
            options = {"quality": 90 if fmt == "JPEG" else 80}
            if fmt == "PNG":
                options = {"compress_level": 1}
            picture = PILImage.fromarray(pixels)
            path.write_bytes(images.encode(picture, fmt, exif=exif.tobytes(), **options))
        made[extension] = made.get(extension, 0) + 1
    return made


class MemoryWatch:
    """Samples this process's resident memory every `every` seconds, in MB, with the time."""

    def __init__(self, every: float = 2.0):
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.every = every

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.every):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.samples.append((time.monotonic() - start, int(line.split()[1]) / 1024))

    def __enter__(self) -> "MemoryWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> list[float]:
        return [mb for at, mb in self.samples if start <= at <= end]


def size_of(path: Path) -> float:
    """MB of the files under `path`."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--objects", type=int, default=10, help="photos whose objects are found (a sample)")
    parser.add_argument("--models", choices=["full-random", "tiny"], default="full-random")
    parser.add_argument("--folder", type=Path, help="a library made by an earlier run (its Pictures), read again")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="imgsearch-import-"))
    folder = args.folder or work / "Pictures"
    profile = (
        {"IMGSEARCH_MODEL_PROFILE": "full", "CLIP_PRETRAINED": "", "SAM_CHECKPOINT": "random"}
        if args.models == "full-random"
        else {"IMGSEARCH_MODEL_PROFILE": "tiny"}
    )
    os.environ.update(profile)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
            "DATABASE_URL": f"sqlite:////{(work / 'bench.sqlite3').as_posix().lstrip('/')}",
            "MEDIA_ROOT": str(work / "media"),
            "INDEX_DIR": str(work / "index"),
            "LOG_LEVEL": "WARNING",
        }
    )
    started = time.perf_counter()
    if args.folder is None:
        made = library_folder(folder, args.photos)
        print(
            f"library: {args.photos} photos, {size_of(folder):.0f} MB {made} (made in {time.perf_counter() - started:.0f} s)"
        )
    else:
        args.photos = sum(1 for path in folder.rglob("*") if path.is_file())
        print(f"library: {args.photos} photos, {size_of(folder):.0f} MB, made by an earlier run ({folder})")

    import django

    django.setup()
    import torch
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from gallery.libraries import library_scan
    from gallery.models import Image, Library, Region
    from search.ingest import image_process, objects_find
    from search.vision.registry import get_clip, get_proposer

    call_command("migrate", verbosity=0)
    owner = get_user_model().objects.create_user("bench")
    library = Library.objects.create(owner=owner, path=str(folder))
    get_clip(), get_proposer()  # loaded once per worker, before its first task

    with MemoryWatch() as memory:
        began = time.monotonic()
        scan = library_scan(library)
        scanned = time.monotonic()
        ids = list(Image.objects.order_by("pk").values_list("pk", flat=True))
        for image_id in ids:  # each task takes up to 8 waiting photos; the others then find theirs done
            image_process(image_id=image_id)
        searchable = time.monotonic()
        sample = ids[: args.objects]
        for image_id in sample:
            assert objects_find(image_id=image_id) == "found", Image.objects.get(pk=image_id).error
        refined = time.monotonic()

    assert Image.objects.filter(status="ready").count() == len(ids), list(
        Image.objects.exclude(status="ready").values_list("original_name", "error")[:5]
    )
    call_command("rebuild_index", verbosity=0)
    first_half = memory.between(scanned - began, (scanned + searchable) / 2 - began)
    second_half = memory.between((scanned + searchable) / 2 - began, searchable - began)
    scan_s, stage1_s, stage2_s = scanned - began, searchable - scanned, refined - searchable
    per_photo = (scan_s + stage1_s) / len(ids)
    print(
        f"models={args.models} threads={torch.get_num_threads()} scan: {scan}; {scan_s:.0f} s "
        f"({scan_s / len(ids):.3f} s a photo: read, check, metadata)"
    )
    print(
        f"searchable: all {len(ids)} in {scan_s + stage1_s:.0f} s from the scan's start: "
        f"{per_photo:.3f} s a photo (scan {scan_s / len(ids):.3f} + first stage {stage1_s / len(ids):.3f}), "
        f"{len(ids) / (scan_s + stage1_s) * 60:.0f} photos a minute"
    )
    print(
        f"objects (a sample of {len(sample)}): {stage2_s / len(sample):.2f} s a photo, "
        f"{len(sample) / stage2_s * 60:.1f} photos a minute -> {args.photos} photos in "
        f"{stage2_s / len(sample) * args.photos / 3600:.1f} h; "
        f"{Region.objects.filter(kind='object').count() / len(sample):.1f} object regions a photo"
    )
    print(
        f"memory (resident): first half of the first stage median {np.median(first_half):.0f} MB, "
        f"second half median {np.median(second_half):.0f} MB, peak over the import "
        f"{max(mb for _, mb in memory.samples):.0f} MB (ru_maxrss "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)"
    )
    print(
        f"database: {(work / 'bench.sqlite3').stat().st_size / 2**20:.1f} MB; index: {size_of(work / 'index'):.1f} MB; "
        f"thumbnails and previews: {size_of(work / 'media'):.0f} MB; the library itself: {size_of(folder):.0f} MB "
        f"(read in place, not copied)"
    )


if __name__ == "__main__":
    main()
