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
    from search import demo

    rng = np.random.default_rng(seed)
    pictures, origin, kind = [], [], []
    photos = None if split == "generator" else heldout.photographs(
        heldout.TUNING_PHOTOGRAPHS if split == "tuning" else heldout.EVALUATION_PHOTOGRAPHS)
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
            sibling = PILImage.open(io.BytesIO(heldout.scene(number, again, photos, objects_rng=other).jpeg)).convert("RGB")
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


def pair_figures(vectors: np.ndarray, hashes: np.ndarray, origin: np.ndarray, kind: list[str], *,
                 similarity: float, hash_bits: int) -> dict:
    from search.duplicates import hash_distances

    cos = vectors @ vectors.T
    bits = hash_distances(hashes, hashes)
    upper = np.triu(np.ones_like(cos, dtype=bool), k=1)
    truth = (origin[:, None] == origin[None, :]) & upper
    called = (cos >= similarity) & (bits <= hash_bits) & upper
    sibling = np.array([k == "sibling" for k in kind])
    next_to_sibling = (sibling[:, None] | sibling[None, :]) & upper & (np.abs(origin[:, None] + 1 + origin[None, :]) == 0)
    figures = {"precision": (called & truth).sum() / max(1, called.sum()), "recall": (called & truth).sum() / truth.sum(),
               "siblings called": int((called & next_to_sibling).sum()), "siblings": int(next_to_sibling.sum())}
    for name in ("re-encode", "rescale", "crop"):
        rows = np.array([k.startswith(name) for k in kind])
        pairs = truth & (rows[:, None] | rows[None, :]) & (np.array([k == "original" for k in kind])[:, None] | np.array([k == "original" for k in kind])[None, :])
        figures[f"recall {name}"] = (called & pairs).sum() / max(1, pairs.sum())
    return figures


def time_hash_pass(count: int) -> None:
    """duplicate_groups' first pass (every pair within NEAR_DUPLICATE_HASH_BITS) on `count` random hashes."""
    import time

    from django.conf import settings

    from search.duplicates import hash_neighbours

    hashes = np.random.default_rng(0).integers(-2**63, 2**63 - 1, count, dtype=np.int64)
    started = time.perf_counter()
    first, _ = hash_neighbours(hashes, settings.NEAR_DUPLICATE_HASH_BITS)
    print(f"{count} photos: every pair within {settings.NEAR_DUPLICATE_HASH_BITS} bits in "
          f"{time.perf_counter() - started:.2f} s ({len(first)} pairs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("tuning", "evaluation", "generator"), default="tuning")
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--grid", action="store_true", help="Print the figures over a grid of both thresholds.")
    parser.add_argument("--pairs-timing", type=int, default=0, metavar="N",
                        help="Only time the hash pass of duplicate_groups over N random hashes.")
    args = parser.parse_args()

    import django

    django.setup()
    if args.pairs_timing:
        time_hash_pass(args.pairs_timing)
        return
    from django.conf import settings

    from bench.heldout_offline import load_demo_clip
    from search import demo
    from search.duplicates import perceptual_hash

    pictures, origin, kind = collection(args.split, args.scenes)
    clip = load_demo_clip(demo.DEMO_WEIGHTS)
    vectors = np.concatenate([clip.embed_images(pictures[i:i + 32]) for i in range(0, len(pictures), 32)])
    hashes = np.array([perceptual_hash(p) for p in pictures], dtype=np.uint64)
    profile = settings.MODEL_PROFILES["demo"]
    chosen = (profile["NEAR_DUPLICATE_SIMILARITY"], settings.NEAR_DUPLICATE_HASH_BITS)
    grid = [(s, h) for s in (0.0, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97) for h in (6, 8, 10, 12, 14, 16, 20)] if args.grid else [chosen]
    print(f"{args.split}: {args.scenes} originals, {len(pictures)} pictures")
    for similarity, bits in grid:
        f = pair_figures(vectors, hashes, origin, kind, similarity=similarity, hash_bits=bits)
        print(f"{args.split} similarity>={similarity:.2f} hash<={bits:2d}: precision {f['precision']:.1%} recall {f['recall']:.1%} "
              f"(re-encode {f['recall re-encode']:.0%}, rescale {f['recall rescale']:.0%}, crop {f['recall crop']:.0%}); "
              f"siblings called duplicates {f['siblings called']}/{f['siblings']}"
              + ("  <- chosen" if (similarity, bits) == chosen else ""))


if __name__ == "__main__":
    main()
