"""Near-duplicate detection (issue 14): precision and recall on generated re-encodes, crops and
rescales, against other photos and against "siblings" (the same background with other objects: a
similar photo, not a duplicate).

For each original scene: three variants (a JPEG re-encode, a rescale, a crop; each sometimes
combined with another) and one sibling. A pair is a true near-duplicate when both come from the
same original. The rule under test is search.duplicates': whole-image CLIP similarity at least
NEAR_DUPLICATE_SIMILARITY and perceptual-hash distance at most NEAR_DUPLICATE_HASH_BITS.

    .venv/bin/python bench/near_duplicates.py [--split tuning|evaluation|generator] [--scenes 40] [--grid]
"""

import argparse
import io
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import numpy as np  # noqa: E402
from PIL import Image as PILImage  # noqa: E402


def _jpeg(picture: PILImage.Image, quality: int) -> PILImage.Image:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=quality)
    return PILImage.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def variants(picture: PILImage.Image, rng: np.random.Generator) -> list[tuple[str, PILImage.Image]]:
    """A re-encode, a rescale and a crop of `picture`, each sometimes with a re-encode or rescale on top."""
    width, height = picture.size
    reencoded = _jpeg(picture, int(rng.integers(35, 86)))
    scale = rng.uniform(0.3, 0.8)
    rescaled = picture.resize((max(16, int(width * scale)), max(16, int(height * scale))), PILImage.Resampling.LANCZOS)
    keep = rng.uniform(0.8, 0.95)  # of each side
    cw, ch = int(width * keep), int(height * keep)
    x, y = int(rng.integers(0, width - cw + 1)), int(rng.integers(0, height - ch + 1))
    cropped = picture.crop((x, y, x + cw, y + ch))
    made = [("re-encode", reencoded), ("rescale", rescaled), ("crop", cropped)]
    if rng.random() < 0.5:
        made[1] = ("rescale+jpeg", _jpeg(rescaled, int(rng.integers(50, 90))))
    if rng.random() < 0.5:
        made[2] = ("crop+rescale", cropped.resize((cw // 2, ch // 2), PILImage.Resampling.LANCZOS))
    return made


def collection(split: str, scenes: int, seed: int = 4242):
    """(pictures, origin of each, kind of each): originals, their variants and their siblings."""
    from bench import heldout
    from search.vision.training import demo

    rng = np.random.default_rng(seed)
    pictures, origin, kind = [], [], []
    photos = (
        None
        if split == "generator"
        else heldout.photographs(heldout.TUNING_PHOTOGRAPHS if split == "tuning" else heldout.EVALUATION_PHOTOGRAPHS)
    )
    for number in range(scenes):
        state = rng.bit_generator.state
        if photos is None:
            original, _ = demo.scene(640, 480, rng, count=int(rng.integers(2, 4)))
            sibling_rng = np.random.default_rng(rng.integers(1 << 30))
            sibling, _ = demo.scene(640, 480, sibling_rng, count=int(sibling_rng.integers(2, 4)))
            # The demo generator's background is one texture: a sibling shares it by construction.
        else:
            original = PILImage.open(io.BytesIO(heldout.scene(number, rng, photos).jpeg)).convert("RGB")
            again = np.random.default_rng()
            again.bit_generator.state = state
            other = np.random.default_rng(rng.integers(1 << 30))
            sibling = PILImage.open(io.BytesIO(heldout.scene(number, again, photos, objects_rng=other).jpeg)).convert(
                "RGB"
            )
        pictures.append(original)
        origin.append(number)
        kind.append("original")
        for name, picture in variants(original, rng):
            pictures.append(picture)
            origin.append(number)
            kind.append(name)
        pictures.append(sibling)
        origin.append(-1 - number)  # its own origin: a duplicate of nothing here
        kind.append("sibling")
    return pictures, np.array(origin), kind


def compared_pairs(
    pictures: list, vectors: np.ndarray, hashes: np.ndarray, similarity: float, nearest: int
) -> tuple[np.ndarray, np.ndarray]:
    """What the background check (search.duplicates.compare_with_neighbours) would compare and find:
    each picture against its `nearest` most CLIP-similar others at least `similarity` alike, and its
    `nearest` closest by hash within NEAR_DUPLICATE_CHECK_HASH_BITS. Two
    symmetric boolean matrices: pairs the pixel check found different, and pairs it found the same
    picture (neither: not asked, or the two would not register)."""
    from search.vision.pixels import keypoints, same_picture

    cos = vectors @ vectors.T
    np.fill_diagonal(cos, -np.inf)
    asked = np.zeros(cos.shape, dtype=bool)
    nearest_others = np.argsort(-cos, axis=1)[:, :nearest]
    np.put_along_axis(asked, nearest_others, True, axis=1)
    asked &= cos >= similarity
    from django.conf import settings

    from search.vision.pixels import hash_distances

    bits = hash_distances(hashes, hashes).astype(float)
    np.fill_diagonal(bits, np.inf)
    by_hash = np.zeros(cos.shape, dtype=bool)
    np.put_along_axis(by_hash, np.argsort(bits, axis=1, kind="stable")[:, :nearest], True, axis=1)
    asked |= by_hash & (bits <= settings.NEAR_DUPLICATE_CHECK_HASH_BITS)
    asked |= asked.T
    same = np.zeros(cos.shape, dtype=bool)
    different = np.zeros(cos.shape, dtype=bool)
    points = {}
    for a, b in zip(*np.nonzero(np.triu(asked, k=1)), strict=True):
        for i in (a, b):
            if i not in points:
                points[i] = keypoints(pictures[i])
        verdict = same_picture(points[a], points[b])
        same[a, b] = same[b, a] = verdict is True
        different[a, b] = different[b, a] = verdict is False
    return different, same


def pair_figures(
    vectors: np.ndarray,
    hashes: np.ndarray,
    origin: np.ndarray,
    kind: list[str],
    *,
    similarity: float,
    hash_bits: int,
    compared: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    from search.vision.pixels import hash_distances

    cos = vectors @ vectors.T
    bits = hash_distances(hashes, hashes)
    upper = np.triu(np.ones_like(cos, dtype=bool), k=1)
    truth = (origin[:, None] == origin[None, :]) & upper
    called = (cos >= similarity) & (bits <= hash_bits) & upper
    if compared is not None:  # the pixel check's verdict wins where it gave one
        different, same = compared
        called = (called & ~different) | (same & upper)
    sibling = np.array([k == "sibling" for k in kind])
    next_to_sibling = (
        (sibling[:, None] | sibling[None, :]) & upper & (np.abs(origin[:, None] + 1 + origin[None, :]) == 0)
    )
    figures = {
        "precision": (called & truth).sum() / max(1, called.sum()),
        "recall": (called & truth).sum() / truth.sum(),
        "siblings called": int((called & next_to_sibling).sum()),
        "siblings": int(next_to_sibling.sum()),
    }
    for name in ("re-encode", "rescale", "crop"):
        rows = np.array([k.startswith(name) for k in kind])
        pairs = (
            truth
            & (rows[:, None] | rows[None, :])
            & (np.array([k == "original" for k in kind])[:, None] | np.array([k == "original" for k in kind])[None, :])
        )
        figures[f"recall {name}"] = (called & pairs).sum() / max(1, pairs.sum())
    return figures


def time_hash_pass(count: int) -> None:
    """duplicate_groups' first pass (every pair within NEAR_DUPLICATE_HASH_BITS) on `count` random hashes."""
    import time

    from django.conf import settings

    from search.vision.pixels import hash_neighbours

    hashes = np.random.default_rng(0).integers(-(2**63), 2**63 - 1, count, dtype=np.int64)
    started = time.perf_counter()
    first, _ = hash_neighbours(hashes, settings.NEAR_DUPLICATE_HASH_BITS)
    print(
        f"{count} photos: every pair within {settings.NEAR_DUPLICATE_HASH_BITS} bits in "
        f"{time.perf_counter() - started:.2f} s ({len(first)} pairs)"
    )


def time_pixel_check() -> None:
    """What the pixel checks cost per photo: decoding (whole, or shrunk by libjpeg for what follows),
    keypoints and one comparison (near-duplicates), one locate (a search by a crop)."""
    import time

    from bench import heldout
    from gallery.imaging import open_rgb
    from search.vision.pixels import LOCATE_SIDE, REGISTRATION_SIDE, keypoints, locate, same_picture

    def timed(work, repeat: int = 5) -> tuple[float, object]:
        started = time.perf_counter()
        for _ in range(repeat):
            result = work()
        return (time.perf_counter() - started) / repeat * 1000, result

    rng = np.random.default_rng(0)
    photos = heldout.photographs(heldout.EVALUATION_PHOTOGRAPHS)
    for width, height in ((640, 480), (4032, 3024)):
        picture = PILImage.open(io.BytesIO(heldout.scene(0, rng, photos).jpeg)).convert("RGB").resize((width, height))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        # Each timed call is run at once, in this round of the loop (the names are bound by default).
        whole, decoded = timed(lambda data=data: open_rgb(io.BytesIO(data)))
        for_keypoints, small = timed(lambda data=data: open_rgb(io.BytesIO(data), at_least=REGISTRATION_SIDE))
        find, points = timed(lambda small=small: keypoints(small))
        other = keypoints(variants(decoded, rng)[2][1])
        compare, _ = timed(lambda points=points, other=other: same_picture(points, other))
        for_locate, medium = timed(lambda data=data: open_rgb(io.BytesIO(data), at_least=LOCATE_SIDE))
        part = decoded.crop((width // 3, height // 3, width // 3 + width // 8, height // 3 + height // 8))
        place, box = timed(lambda args=(part, medium, (width, height)): locate(*args))
        print(
            f"{width}x{height} JPEG: decode {whole:.0f} ms (for keypoints {for_keypoints:.0f} ms, for locate "
            f"{for_locate:.0f} ms); keypoints {find:.0f} ms; one comparison {compare:.0f} ms; one locate "
            f"{place:.0f} ms ({'found' if box else 'NOT found'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("tuning", "evaluation", "generator"), default="tuning")
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--grid", action="store_true", help="Print the figures over a grid of both thresholds.")
    parser.add_argument("--no-pixels", action="store_true", help="Leave out the pixel check (hash and CLIP only).")
    parser.add_argument(
        "--check-grid", action="store_true", help="Print the figures over CLIP floors for asking the pixel check."
    )
    parser.add_argument("--check-timing", action="store_true", help="Only time the pixel check's steps.")
    parser.add_argument(
        "--pairs-timing",
        type=int,
        default=0,
        metavar="N",
        help="Only time the hash pass of duplicate_groups over N random hashes.",
    )
    args = parser.parse_args()

    import django

    django.setup()
    if args.pairs_timing:
        time_hash_pass(args.pairs_timing)
        return
    if args.check_timing:
        time_pixel_check()
        return
    from django.conf import settings

    from bench.heldout_offline import load_demo_clip
    from search.vision.pixels import perceptual_hash
    from search.vision.training import demo_clip

    pictures, origin, kind = collection(args.split, args.scenes)
    clip = load_demo_clip(demo_clip.DEMO_WEIGHTS)
    vectors = np.concatenate([clip.embed_images(pictures[i : i + 32]) for i in range(0, len(pictures), 32)])
    hashes = np.array([perceptual_hash(p) for p in pictures], dtype=np.uint64)
    profile = settings.MODEL_PROFILES["demo"]
    chosen = (profile["NEAR_DUPLICATE_SIMILARITY"], settings.NEAR_DUPLICATE_HASH_BITS)
    chosen_check = profile["NEAR_DUPLICATE_CHECK_SIMILARITY"]
    print(f"{args.split}: {args.scenes} originals, {len(pictures)} pictures")
    if args.grid:  # the hash rule alone, over both of its thresholds
        rules = [(s, h, None) for s in (0.0, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97) for h in (6, 8, 10, 12, 14, 16, 20)]
    elif args.no_pixels:
        rules = [(*chosen, None)]
    else:
        rules = [(*chosen, check) for check in ((0.5, 0.6, 0.7, 0.8, 0.9) if args.check_grid else (chosen_check,))]
    verdicts = {}
    for *_, check in rules:
        if check is not None:
            import time

            started = time.perf_counter()
            verdicts[check] = compared_pairs(pictures, vectors, hashes, check, settings.NEAR_DUPLICATE_CHECKED)
            print(
                f"pixel check on the pairs where one is among the other's {settings.NEAR_DUPLICATE_CHECKED} "
                f"nearest and CLIP >= {check:.2f}: "
                f"{time.perf_counter() - started:.1f} s"
            )
    for similarity, bits, check in rules:
        f = pair_figures(
            vectors, hashes, origin, kind, similarity=similarity, hash_bits=bits, compared=verdicts.get(check)
        )
        print(
            f"{args.split} similarity>={similarity:.2f} hash<={bits:2d}"
            + ("" if check is None else f", pixel check >= {check:.2f}")
            + f": precision {f['precision']:.1%} "
            f"recall {f['recall']:.1%} (re-encode {f['recall re-encode']:.0%}, rescale {f['recall rescale']:.0%}, "
            f"crop {f['recall crop']:.0%}); siblings called duplicates {f['siblings called']}/{f['siblings']}"
            + ("  <- chosen" if (similarity, bits) == chosen and check in (None, chosen_check) else "")
        )


if __name__ == "__main__":
    main()
