"""Held-out quality in one process, in seconds: the scenes of bench/heldout.py through the colour
proposer and a demo CLIP checkpoint, ranked in memory the way search.ranking ranks (best region per
image, the whole image winning near-ties, the demo profile's thresholds).

tests/search/test_heldout_quality.py measures the same through upload -> worker -> index -> API and
is the figure of record; this is the loop for trying a training recipe or a threshold quickly.

    .venv/bin/python bench/heldout_offline.py [--split tuning] [--cast 1] [--weights path.pt] [--scenes 28]
"""

import argparse
import io
import os
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def load_demo_clip(weights: Path):
    """The demo CLIP with `weights`, loaded by the pipeline's own loader."""
    from django.test.utils import override_settings

    from search.vision.clip import load_clip
    from search.vision.training.demo_clip import DEMO_MODEL

    with override_settings(CLIP_MODEL=DEMO_MODEL, CLIP_PRETRAINED="", CLIP_CHECKPOINT=str(weights)):
        return load_clip()


def demo_proposer(kind: str):
    """The demo profile's region proposer, or another `kind` (a REGION_PROPOSER value), built by the
    worker's own loader with the demo profile's smallest area."""
    from django.conf import settings
    from django.test.utils import override_settings

    from search.vision.registry import load_proposer

    with override_settings(
        REGION_PROPOSER=kind, REGION_MIN_AREA_FRACTION=settings.MODEL_PROFILES["demo"]["REGION_MIN_AREA_FRACTION"]
    ):
        return load_proposer()


import numpy as np  # noqa: E402


class Library:
    """Every scene's regions (whole image first) and their vectors, as the pipeline would store them."""

    def __init__(
        self, scenes, clip, proposer, *, min_area_fraction: float, nms_iou: float, max_count: int, context: float
    ):
        from PIL import Image as PILImage

        from search.vision.proposers import filter_proposals, with_context

        self.scenes, self.context = scenes, context
        self.pictures, self.boxes, self.kinds, self.owner, vectors = [], [], [], [], []
        for number, scene in enumerate(scenes):
            rgb = PILImage.open(io.BytesIO(scene.jpeg)).convert("RGB")
            self.pictures.append(rgb)
            proposals = filter_proposals(
                proposer.propose(rgb),
                width=rgb.width,
                height=rgb.height,
                min_area_fraction=min_area_fraction,
                nms_iou=nms_iou,
                max_count=max_count,
            )
            crops = [rgb] + [rgb.crop(with_context(p.box, *rgb.size, context)) for p in proposals]
            vectors.append(clip.embed_images(crops))
            self.boxes += [(0, 0, rgb.width, rgb.height)] + [p.box for p in proposals]
            self.kinds += ["global"] + ["object"] * len(proposals)
            self.owner += [number] * len(crops)
        import numpy as np

        self.vectors = np.concatenate(vectors)
        self.owner = np.array(self.owner)
        self.is_global = np.array([k == "global" for k in self.kinds])
        # Objects with a look-alike in their own photo (Region.twin_similarity over the demo profile's
        # REPEATED_REGION_SIMILARITY): "more like this" neither searches with them nor finds them.
        from django.conf import settings

        from search.ingest import twin_similarities

        floor = settings.MODEL_PROFILES["demo"].get("REPEATED_REGION_SIMILARITY")
        twins = np.full(len(self.vectors), np.nan)
        for number in range(len(scenes)):
            rows = np.flatnonzero((self.owner == number) & ~self.is_global)
            twins[rows] = twin_similarities(self.vectors[rows])
        self.repeated = (twins >= floor) if floor is not None else np.zeros(len(self.vectors), bool)

    def rank(
        self, vector, *, exclude: int | None = None, tie_eps: float, handicap: float = 0.0, leave_out=None
    ) -> list[tuple[int, float, tuple]]:
        """(scene number, score, box) best first: one per scene, its whole image (less `handicap`) unless
        an object beats it by tie_eps. `vector` may be several (rows): each region scores its best.
        `leave_out`: a mask of regions that may not be found."""
        scores = (self.vectors @ np.atleast_2d(vector).T).max(axis=1) - handicap * self.is_global
        best: dict[int, dict[str, tuple[float, int]]] = defaultdict(dict)
        for row, (scene, score) in enumerate(zip(self.owner, scores, strict=True)):
            if scene == exclude or (leave_out is not None and leave_out[row]):
                continue
            kind = self.kinds[row]
            if kind not in best[scene] or score > best[scene][kind][0]:
                best[scene][kind] = (float(score), row)
        ranked = []
        for scene, by_kind in best.items():
            score, row = by_kind["global"]
            if "object" in by_kind and by_kind["object"][0] > score + tie_eps:
                score, row = by_kind["object"]
            ranked.append((int(scene), score, self.boxes[row]))
        ranked.sort(key=lambda item: -item[1])
        return ranked


class Tally:
    def __init__(self, label: str, threshold: float):
        self.label, self.threshold = label, threshold
        self.top1, self.precisions, self.ious, self.shown, self.shown_right = [], [], [], 0, 0
        self.scored: list[tuple[float, bool]] = []  # every ranked image's score, and whether it is right

    def add(self, ranked, relevant: set[int], true_boxes: dict[int, list], page: int = 50):
        from bench.heldout import average_precision
        from search.vision.proposers import box_iou

        names = [scene for scene, _, _ in ranked[:page]]
        self.top1.append(bool(names) and names[0] in relevant)
        self.precisions.append(average_precision(names, relevant, page))
        if names and names[0] in relevant:
            self.ious.append(max(box_iou(ranked[0][2], true) for true in true_boxes[names[0]]))
        self.scored += [(score, scene in relevant) for scene, score, _ in ranked]
        shown = [scene for scene, score, _ in ranked if score >= self.threshold]
        self.shown += len(shown)
        self.shown_right += sum(scene in relevant for scene in shown)

    def at(self, threshold: float) -> str:
        """Precision and recall of what `threshold` shows (recall: of the right images ranked)."""
        shown = [right for score, right in self.scored if score >= threshold]
        total_right = sum(right for _, right in self.scored)
        return f"{threshold:.2f}: {sum(shown) / max(1, len(shown)):.0%} right, {sum(shown) / max(1, total_right):.0%} of right shown"

    def line(self) -> str:

        iou = np.mean([i >= 0.5 for i in self.ious]) if self.ious else 0.0
        precision = self.shown_right / self.shown if self.shown else float("nan")
        # The lowest threshold whose shown results are >= 80% right, and how many it shows per query.
        scored = sorted(self.scored, reverse=True)
        right = np.cumsum([r for _, r in scored])
        ok = [i for i in range(len(scored)) if right[i] / (i + 1) >= 0.8]
        calibrated = (
            f"; 80% right from {scored[ok[-1]][0]:.2f} ({(ok[-1] + 1) / len(self.top1):.1f} shown)" if ok else ""
        )
        return (
            f"[{self.label:11s}] n={len(self.top1):3d} R@1={np.mean(self.top1):.2f} mAP={np.mean(self.precisions):.2f} "
            f"IoU>=0.5 {iou:.0%}; at {self.threshold:.2f}: {self.shown / len(self.top1):.1f} shown, {precision:.0%} right"
            + calibrated
        )


def source_first(ranked: list[tuple[int, float, tuple]], part, pictures) -> list[tuple[int, float, tuple]]:
    """search.ranking.source_first on this library: the best SOURCE_CHECKED scenes holding `part`
    pixel for pixel come first, boxed where it lies."""
    from django.conf import settings

    from search.vision.pixels import locate

    found = []
    for number, score, _box in ranked[: settings.SOURCE_CHECKED]:
        where = locate(part, pictures[number])
        if where is not None:
            found.append((number, score, tuple(where)))
    pinned = {number for number, _, _ in found}
    return found + [item for item in ranked if item[0] not in pinned]


def evaluate(
    library: Library,
    clip,
    *,
    text_threshold: float,
    image_threshold: float,
    similar_threshold: float,
    tie_eps: float,
    handicap: float,
    thresholds: tuple[float, ...] = (),
) -> list[str]:
    import numpy as np

    from search.vision.proposers import box_iou, with_context
    from search.vision.training import demo

    scenes = library.scenes
    where: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for number, scene in enumerate(scenes):
        for s in scene.shapes:
            where[(s.colour, s.shape)][number].append(s.box)
    lines = []
    text = Tally("text", text_threshold)
    classes = sorted(where)
    for klass, vector in zip(classes, clip.embed_texts([demo.caption(*k) for k in classes]), strict=True):
        text.add(library.rank(vector, tie_eps=tie_eps, handicap=handicap), set(where[klass]), where[klass])
    crop, region, box = (
        Tally("object crop", image_threshold),
        Tally("region", image_threshold),
        Tally("drawn box", image_threshold),
    )
    region_found = Tally("region+", image_threshold)  # only the objects with a region (others cannot start one)
    own_first, found = [], []
    for number, scene in enumerate(scenes):
        picture = library.pictures[number]
        # The API test uploads each crop as a PNG: lossless, so the crop itself is the same query.
        crops = [picture.crop(placed.box) for placed in scene.shapes]
        crop_vectors = clip.embed_images(crops)
        # A drawn box is cut out of the stored photo as a region is, with its context.
        box_vectors = clip.embed_images(
            [picture.crop(with_context(placed.box, *picture.size, library.context)) for placed in scene.shapes]
        )
        start = len(own_first)
        rows = np.flatnonzero((library.owner == number) & ~library.is_global)
        for placed, vector, box_vector in zip(scene.shapes, crop_vectors, box_vectors, strict=True):
            klass = (placed.colour, placed.shape)
            relevant, boxes = set(where[klass]), where[klass]
            ranked = source_first(
                library.rank(vector, tie_eps=tie_eps, handicap=handicap),
                crops[len(own_first) - start],
                library.pictures,
            )
            crop.add(ranked, relevant, boxes)
            own_first.append(bool(ranked) and ranked[0][0] == number)
            ious = [box_iou(library.boxes[r], placed.box) for r in rows]
            found.append(bool(ious) and max(ious) >= 0.5)
            others = relevant - {number}
            if not others:
                continue
            box.add(library.rank(box_vector, exclude=number, tie_eps=tie_eps, handicap=handicap), others, boxes)
            if found[-1]:
                best_row = rows[int(np.argmax(ious))]
                ranked = library.rank(library.vectors[best_row], exclude=number, tie_eps=tie_eps, handicap=handicap)
                region.add(ranked, others, boxes)
                region_found.add(ranked, others, boxes)
            else:
                region.add([], others, boxes)
    # "More like this": each scene's whole-image vector, or (by_objects) it and its objects' vectors.
    similar = {False: Tally("more like", similar_threshold), True: Tally("more like+o", similar_threshold)}
    p5 = {False: [], True: []}
    for number, scene in enumerate(scenes):
        mine = {(s.colour, s.shape) for s in scene.shapes}
        relevant = {
            n for n, other in enumerate(scenes) if n != number and mine & {(s.colour, s.shape) for s in other.shapes}
        }
        boxes = {n: [(0, 0, 10**6, 10**6)] for n in relevant}  # any box: "more like this" is about the photo
        for by_objects in (False, True):
            if by_objects:
                rows = (library.owner == number) & ~library.repeated
                ranked = library.rank(
                    library.vectors[rows], exclude=number, tie_eps=tie_eps, leave_out=library.repeated
                )
            else:
                rows = (library.owner == number) & library.is_global
                ranked = library.rank(library.vectors[rows], exclude=number, tie_eps=tie_eps)
            similar[by_objects].add(ranked, relevant, boxes)
            p5[by_objects].append(np.mean([n in relevant for n, _, _ in ranked[:5]]))
    tallies = (text, crop, region, region_found, box, similar[False], similar[True])
    lines += [t.line() for t in tallies]
    for t in tallies:
        lines.append(f"[{t.label:11s}] " + "; ".join(t.at(threshold) for threshold in thresholds))
    lines.append(
        f"[own scene  ] crop finds its own scene first {np.mean(own_first):.0%}; objects found {np.mean(found):.0%}; "
        f"regions/image {(~library.is_global).sum() / len(scenes):.1f} (true {np.mean([len(s.shapes) for s in scenes]):.1f})"
    )
    lines.append(
        f"[more like  ] P@5={np.mean(p5[False]):.2f} (whole image); {np.mean(p5[True]):.2f} (whole image and its objects)"
    )
    return lines


def composed_queries(scenes) -> list[tuple[tuple[str, str], str, int, tuple]]:
    """Issue 14's composed query on the held-out scenes: for each class (colour, shape) some scene holds,
    the words "a <colour> shape" and a photo of that shape in another colour (an object crop from a
    scene holding one): (class, words, scene number of the photo, its box). Only a scene that holds
    the class answers the pair; the words alone also find the colour's other shapes, the photo alone
    the shape's other colours."""
    found = []
    classes = sorted({(s.colour, s.shape) for scene in scenes for s in scene.shapes})
    for colour, shape in classes:
        other = next(
            (
                (number, s.box)
                for number, scene in enumerate(scenes)
                for s in scene.shapes
                if s.shape == shape and s.colour != colour
            ),
            None,
        )
        if other is not None:
            found.append(((colour, shape), f"a {colour} shape", *other))
    return found


def evaluate_composed(
    library: Library, clip, *, tie_eps: float, handicap: float, image_weight: float = 1.0
) -> list[str]:
    where: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for number, scene in enumerate(library.scenes):
        for s in scene.shapes:
            where[(s.colour, s.shape)][number].append(s.box)
    from django.conf import settings

    profile = settings.MODEL_PROFILES["demo"]
    tallies = {kind: Tally(kind, 0.0) for kind in ("words", "photo", "both")}
    both_ranked: list[tuple[list, set]] = []
    for klass, words, number, box in composed_queries(library.scenes):
        text_vector = clip.embed_texts([words])[0]
        photo_vector = clip.embed_images([library.pictures[number].crop(box)])[0]
        both = (text_vector + image_weight * photo_vector) / (1 + image_weight)
        relevant = set(where[klass])
        for kind, vector in (("words", text_vector), ("photo", photo_vector), ("both", both)):
            ranked = library.rank(vector, tie_eps=tie_eps, handicap=handicap)
            tallies[kind].add(ranked, relevant, where[klass])
            if kind == "both":
                both_ranked.append((ranked, relevant))
    lines = [
        f"[composed {kind:5s}] n={len(t.top1)} R@1={np.mean(t.top1):.2f} mAP={np.mean(t.precisions):.2f}"
        for kind, t in tallies.items()
    ]
    # What words + a photo show: within a margin of the query's best, over a floor (COMPOSED_MARGIN).
    floor = profile.get("MIN_COMPOSED_SIMILARITY") or 0.0
    for margin in (0.005, 0.01, 0.02, 0.03):
        shown = right = empty_right = 0
        for ranked, relevant in both_ranked:
            best = ranked[0][1] if ranked else 0.0
            kept = [scene for scene, score, _ in ranked if score >= max(floor, best - margin)]
            shown, right = shown + len(kept), right + sum(scene in relevant for scene in kept)
            empty_right += not kept and bool(ranked) and ranked[0][0] in relevant
        mark = "  <- demo profile" if margin == profile.get("COMPOSED_MARGIN") else ""
        lines.append(
            f"[composed both] within {margin} of the best, over {floor}: {shown / len(both_ranked):.1f} shown, "
            f"{right / max(1, shown):.0%} right, {empty_right} empty though the first is right{mark}"
        )
    return lines


def evaluate_tags(library: Library, clip, probabilities=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8)) -> list[str]:
    """Automatic tags (issue 14): a scene's tags are every label some region of it (the whole picture
    or an object) gets; right when the scene holds that colour x shape. Precision and recall over
    (scene, label) pairs, at each minimum probability."""
    from django.conf import settings
    from django.test.utils import override_settings

    from search.tagging import zero_shot

    profile = settings.MODEL_PROFILES["demo"]
    truth = [{f"{s.colour} {s.shape}" for s in scene.shapes} for scene in library.scenes]
    lines = []
    for probability in probabilities:
        with override_settings(
            TAG_VOCABULARY=profile["TAG_VOCABULARY"], TAG_PROMPT=profile["TAG_PROMPT"], TAG_MIN_PROBABILITY=probability
        ):
            found = zero_shot(library.vectors, clip)
        predicted = [set() for _ in library.scenes]
        for scene, labels in zip(library.owner, found, strict=True):
            predicted[scene] |= {label for label, _ in labels}
        right = sum(len(p & t) for p, t in zip(predicted, truth, strict=True))
        shown = sum(len(p) for p in predicted)
        lines.append(
            f"[tags p>={probability:.1f}] {shown / len(truth):.1f} tags per photo, precision {right / max(1, shown):.0%}, "
            f"recall {right / sum(len(t) for t in truth):.0%}"
            + ("  <- demo profile" if abs(probability - profile["TAG_MIN_PROBABILITY"]) < 1e-9 else "")
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--split",
        choices=("tuning", "evaluation", "fresh", "textures-tuning", "textures", "generator"),
        default="tuning",
    )
    parser.add_argument(
        "--cast",
        type=float,
        default=0.0,
        help="A camera-style colour cast of this strength (bench.heldout.camera_cast).",
    )
    parser.add_argument(
        "--weights", type=Path, default=None, help="A demo CLIP checkpoint (default: the committed one)."
    )
    parser.add_argument("--scenes", type=int, default=28)
    parser.add_argument(
        "--proposer",
        choices=("colour", "colour+objectness"),
        default=None,
        help="REGION_PROPOSER (default: the demo profile's).",
    )
    parser.add_argument("--tie-eps", type=float, default=None)
    parser.add_argument(
        "--context", type=float, default=None, help="REGION_CROP_CONTEXT (default: the demo profile's)."
    )
    parser.add_argument(
        "--handicap", type=float, default=None, help="WHOLE_IMAGE_HANDICAP (default: the demo profile's)."
    )
    parser.add_argument(
        "--thresholds", type=float, nargs="*", default=(), help="Also print precision and recall at these."
    )
    parser.add_argument("--composed", action="store_true", help="Only the composed-query figures (issue 14).")
    parser.add_argument("--tags", action="store_true", help="Only the automatic-tag figures (issue 14).")
    parser.add_argument("--image-weight", type=float, default=1.0, help="The photo's weight in composed queries.")
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np
    from django.conf import settings

    from bench import heldout
    from search.vision.training import demo, demo_clip

    profile = settings.MODEL_PROFILES["demo"]
    clip = load_demo_clip(args.weights or demo_clip.DEMO_WEIGHTS)
    rng = np.random.default_rng(7013)
    if args.split == "generator":
        scenes = []
        for number in range(args.scenes):
            picture, shapes = demo.scene(640, 480, rng, count=int(rng.integers(2, 4)))
            buffer = io.BytesIO()
            picture.save(buffer, "PNG")
            scenes.append(heldout.HeldOutScene(name=f"{number}", jpeg=buffer.getvalue(), shapes=shapes, photograph=""))
    else:
        photos = heldout.photographs(heldout.SPLITS[args.split])
        scenes = [heldout.scene(number, rng, photos, cast=args.cast) for number in range(args.scenes)]
    library = Library(
        scenes,
        clip,
        demo_proposer(args.proposer or profile["REGION_PROPOSER"]),
        min_area_fraction=profile["REGION_MIN_AREA_FRACTION"],
        nms_iou=settings.REGION_NMS_IOU,
        max_count=settings.REGION_MAX_PER_IMAGE,
        context=profile.get("REGION_CROP_CONTEXT", 0.0) if args.context is None else args.context,
    )
    tie_eps = settings.SCORE_TIE_EPS if args.tie_eps is None else args.tie_eps
    handicap = profile.get("WHOLE_IMAGE_HANDICAP", 0.0) if args.handicap is None else args.handicap
    if args.tags:
        for line in evaluate_tags(library, clip):
            print(f"{args.split} {line}")
        return
    if args.composed:
        for line in evaluate_composed(
            library, clip, tie_eps=tie_eps, handicap=handicap, image_weight=args.image_weight
        ):
            print(f"{args.split} {line}")
        return
    for line in evaluate(
        library,
        clip,
        text_threshold=profile["MIN_SIMILARITY"],
        image_threshold=profile["MIN_IMAGE_SIMILARITY"],
        similar_threshold=profile["MIN_SIMILAR_SIMILARITY"],
        tie_eps=tie_eps,
        handicap=handicap,
        thresholds=tuple(args.thresholds),
    ):
        print(f"{args.split} {line}")


if __name__ == "__main__":
    main()
