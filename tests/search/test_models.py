"""Model loading goes through open_clip's and segment_anything's own factories, and fails with a fix."""

import platform
import subprocess
import sys
import time

import numpy as np
import pytest

from search.vision.clip import load_clip
from search.vision.fast_sam_model import ChunkedAttention
from search.vision.identity import clip_model_id, current_model, embedding_dim
from search.vision.proposers import ColourProposer, Proposal, box_iou, filter_proposals
from search.vision.registry import get_clip, get_proposer, reset_models
from search.vision.runtime import ModelUnavailable, keep_freed_memory
from search.vision.sam import SamProposer, load_sam_model
from tests import images


def test_the_tiny_clip_is_built_by_open_clip_and_gives_unit_vectors():
    clip = load_clip()
    assert clip.name == clip_model_id() == "imgsearch-tiny/random"
    vectors = clip.embed_images([images.scene(seed=s) for s in range(3)])
    texts = clip.embed_texts(["a red circle", "a blue square"])
    assert vectors.shape == (3, 64) and texts.shape == (2, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["imgsearch-tiny", "imgsearch-demo", "ViT-B-32", "ViT-L-14", "RN50", "ViT-H-14-quickgelu"]
)
def test_the_model_dimension_read_without_torch_is_open_clips(name):
    import open_clip

    from search.vision.clip import register_model_configs

    register_model_configs()
    assert embedding_dim(name) == open_clip.get_model_config(name)["embed_dim"]


def test_every_profile_names_a_model_whose_dimension_is_known(settings):
    assert current_model() == (clip_model_id(), 64)  # the tiny test model
    for profile in settings.MODEL_PROFILES.values():
        assert embedding_dim(profile["CLIP_MODEL"]) in (64, 128, 512)
    assert embedding_dim("no-such-model") is None
    settings.CLIP_MODEL = "no-such-model"
    with pytest.raises(ValueError, match="not a model open_clip knows"):
        current_model()


def test_models_load_once_per_process():
    reset_models()
    assert get_clip() is get_clip()
    assert get_proposer() is get_proposer()


def test_clip_batches_larger_than_the_batch_size_keep_their_order(settings):
    clip = load_clip()
    scenes = [images.scene(seed=s) for s in range(5)]
    settings.CLIP_BATCH_SIZE = 2
    assert np.allclose(clip.embed_images(scenes), np.concatenate([clip.embed_images([s]) for s in scenes]), atol=1e-5)


def test_an_unknown_clip_tag_names_the_known_ones(settings):
    settings.CLIP_MODEL, settings.CLIP_PRETRAINED = "ViT-B-32", "no-such-tag"
    with pytest.raises(ModelUnavailable, match="laion2b_s34b_b79k"):
        load_clip()


def test_missing_clip_weights_fail_in_well_under_a_second_offline(settings, tmp_path):
    settings.CLIP_MODEL, settings.CLIP_PRETRAINED = "ViT-B-32", "laion2b_s34b_b79k"
    settings.MODEL_CACHE_DIR = tmp_path
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable, match="fetch_models"):
        load_clip()
    assert time.perf_counter() - started < 5  # the hub's own retries take ~50 s here


def test_a_missing_clip_checkpoint_file_is_named(settings, tmp_path):
    settings.CLIP_CHECKPOINT = str(tmp_path / "clip.bin")
    with pytest.raises(ModelUnavailable, match="does not exist"):
        load_clip()


def test_a_local_clip_checkpoint_is_loaded(settings, tmp_path):
    import torch

    reference = load_clip()
    path = tmp_path / "tiny.pt"
    torch.save(reference.model.state_dict(), path)
    settings.CLIP_CHECKPOINT = str(path)
    loaded = load_clip()
    scene = [images.scene(seed=4)]
    assert np.allclose(loaded.embed_images(scene), reference.embed_images(scene), atol=1e-5)
    assert loaded.name == "imgsearch-tiny/tiny.pt"


def test_sam_is_built_through_segment_anythings_registry():
    from segment_anything.modeling import Sam

    model = load_sam_model(model_type="tiny", checkpoint="")
    assert isinstance(model, Sam) and model.image_encoder.img_size == 1024


def test_a_missing_sam_checkpoint_says_what_to_run(tmp_path):
    with pytest.raises(ModelUnavailable, match="fetch_models"):
        load_sam_model(model_type="vit_b", checkpoint=str(tmp_path / "sam_vit_b_01ec64.pth"))


def test_an_unknown_sam_type_lists_the_choices():
    with pytest.raises(ModelUnavailable, match="vit_b"):
        load_sam_model(model_type="vit_x", checkpoint="")


def test_a_corrupt_sam_checkpoint_is_reported(tmp_path):
    path = tmp_path / "sam_vit_b_01ec64.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        load_sam_model(model_type="vit_b", checkpoint=str(path))


OPEN_THRESHOLDS = dict(
    points_per_side=2,
    points_per_batch=4,
    pred_iou_thresh=0.0,
    stability_score_thresh=0.0,
    box_nms_thresh=1.0,
    min_mask_region_area=0,
    max_side=64,
)


def test_the_sam_proposer_returns_boxes_inside_the_image():
    proposer = SamProposer(load_sam_model(model_type="tiny", checkpoint=""), **OPEN_THRESHOLDS)
    image = images.scene(200, 100)
    proposals = proposer.propose(image)
    assert proposals  # with every threshold open, each prompt yields a mask
    for proposal in proposals:
        x1, y1, x2, y2 = proposal.box
        assert 0 <= x1 < x2 <= 200 and 0 <= y1 < y2 <= 100
        assert 0 < proposal.area_fraction <= 1


def test_sam_clean_up_of_small_regions_runs_with_opencv():
    proposer = SamProposer(
        load_sam_model(model_type="tiny", checkpoint=""),
        points_per_side=2,
        points_per_batch=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        box_nms_thresh=0.7,
        min_mask_region_area=20,
        max_side=64,
    )
    assert isinstance(proposer.propose(images.scene(64, 48)), list)


def test_filtering_keeps_the_best_distinct_objects():
    proposals = [
        Proposal(box=(0, 0, 100, 100), area_fraction=0.95, score=0.99),  # the whole image
        Proposal(box=(10, 10, 40, 40), area_fraction=0.08, score=0.9),
        Proposal(box=(11, 11, 40, 40), area_fraction=0.08, score=0.8),  # the same object again
        Proposal(box=(60, 60, 62, 62), area_fraction=0.0004, score=0.95),  # too small
        Proposal(box=(50, 50, 90, 90), area_fraction=0.1, score=0.7),
        Proposal(box=(5, 60, 30, 95), area_fraction=0.05, score=0.6),
    ]
    kept = filter_proposals(proposals, width=100, height=100, min_area_fraction=0.005, nms_iou=0.8, max_count=2)
    assert [p.box for p in kept] == [(10, 10, 40, 40), (50, 50, 90, 90)]


def test_the_colour_proposer_finds_flat_shapes():
    boxes = sorted(p.box for p in ColourProposer().propose(images.scene(160, 120)))
    assert (20, 20, 53, 60) in boxes and (80, 60, 140, 100) in boxes


def reference_colour_proposals(proposer: ColourProposer, image) -> list[tuple]:
    """The colour proposer's rule written one flat area at a time, in Python: slow (seconds on a
    textured photo), and the definition the vectorised one must keep."""
    import math

    width, height = image.size
    scale, small, components, _ = proposer.flat_areas(image)  # the same areas; what is compared is the rest
    pixels = np.asarray(small, dtype=np.float32)
    rows, cols = components.shape
    found = []
    for index in range(1, int(components.max()) + 1):
        ys, xs = np.nonzero(components == index)
        size = len(xs)
        if size < proposer.min_area_fraction * components.size:
            continue
        # Grown by the one-pixel edge band the area lost.
        x, y = max(0, int(xs.min()) - 1), max(0, int(ys.min()) - 1)
        w, h = min(cols, int(xs.max()) + 2) - x, min(rows, int(ys.max()) + 2) - y
        y0, y1 = max(0, y - proposer.RING), min(rows, y + h + proposer.RING)
        x0, x1 = max(0, x - proposer.RING), min(cols, x + w + proposer.RING)
        inside = components[y0:y1, x0:x1] == index
        window = pixels[y0:y1, x0:x1]
        contrast = (
            0.0 if inside.all() else float(np.linalg.norm(window[inside].mean(axis=0) - window[~inside].mean(axis=0)))
        )
        compact = size / (w * h) >= proposer.MIN_FILL and max(w, h) / max(1, min(w, h)) <= proposer.MAX_ASPECT
        one_colour = pixels[ys, xs].std(axis=0).max() <= proposer.MAX_SPREAD
        is_small = size < proposer.SMALL_FRACTION * components.size
        at_edge = x == 0 or y == 0 or x + w == cols or y + h == rows
        if (
            contrast >= (proposer.SMALL_MIN_CONTRAST if is_small else proposer.MIN_CONTRAST)
            and compact
            and one_colour
            and not (is_small and at_edge)
        ):
            box = (
                max(0, math.floor(x / scale)),
                max(0, math.floor(y / scale)),
                min(width, math.ceil((x + w) / scale)),
                min(height, math.ceil((y + h) / scale)),
            )
            found.append((box, size / components.size, min(1.0, contrast / 255.0)))
    return sorted(found)


@pytest.mark.parametrize("kind", ["scene", "noise", "noisy scene"])
def test_the_vectorised_colour_proposer_finds_what_the_component_loop_found(kind):
    from PIL import Image as PILImage

    from search.vision.training import demo

    rng = np.random.default_rng(3)
    if kind == "noise":  # texture alone: edges nearly everywhere, specks between them, none an object
        picture = PILImage.fromarray((rng.random((480, 640, 3)) * 255).astype(np.uint8))
    else:
        picture = demo.scene(640, 480, rng, count=4)[0]
        if kind == "noisy scene":  # shapes among texture specks: thousands of flat areas
            noisy = np.asarray(picture, dtype=np.float32) + rng.normal(0, 10, size=(480, 640, 3))
            picture = PILImage.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    expected = reference_colour_proposals(ColourProposer(), picture)
    found = sorted((p.box, p.area_fraction, p.score) for p in ColourProposer().propose(picture))
    assert found or kind == "noise"  # noise has no compact, contrasted component; the others do
    # Plain booleans: pytest's diff of two long lists of boxes takes minutes to print.
    same_boxes = [f[0] for f in found] == [e[0] for e in expected]
    assert same_boxes, f"{len(found)} boxes found, {len(expected)} expected"
    assert np.allclose([f[1:] for f in found], [e[1:] for e in expected], atol=1e-6)
    # Dropping specks early keeps exactly the larger ones.
    big = sorted((p.box, p.area_fraction) for p in ColourProposer(min_area_fraction=0.005).propose(picture))
    same_big = [b[0] for b in big] == [e[0] for e in expected if e[1] >= 0.005]
    assert same_big, f"{len(big)} boxes kept, {sum(e[1] >= 0.005 for e in expected)} expected"


def test_web_and_api_modules_do_not_import_torch_or_faiss():
    code = (
        "import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'; django.setup(); "
        "import gallery.views, gallery.api, gallery.admin, search.web.views, search.web.api, imgsearch.urls; "
        "heavy = [m for m in ('torch', 'open_clip', 'segment_anything', 'faiss') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_random_weight_models_are_identical_in_every_load():
    # The worker stores vectors and the web process embeds queries, each with its own load.
    first, second = load_clip(), load_clip()
    scene = [images.scene(seed=5)]
    assert np.array_equal(first.embed_images(scene), second.embed_images(scene))
    a = load_sam_model(model_type="tiny", checkpoint="")
    b = load_sam_model(model_type="tiny", checkpoint="")
    assert all((pa == pb).all() for pa, pb in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keeping_freed_memory_is_accepted_by_glibc():
    assert keep_freed_memory() is True


def test_int8_models_are_opt_in_and_stay_close_to_float(settings):
    import torch

    settings.MODEL_INT8 = False
    reference = load_clip()
    sam = load_sam_model(model_type="tiny", checkpoint="")
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in sam.modules())
    settings.MODEL_INT8 = True
    quantized = load_clip()
    quantized_sam = load_sam_model(model_type="tiny", checkpoint="")
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantized_sam.image_encoder.modules())
    # The mask decoder stays float (PromptDecoder reads its weights); the encoder keeps its chunked attention.
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantized_sam.mask_decoder.modules())
    assert all(type(block.attn) is ChunkedAttention for block in quantized_sam.image_encoder.blocks)
    assert SamProposer(quantized_sam, **OPEN_THRESHOLDS).propose(images.scene(200, 100))  # one mask per prompt
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantized.model.modules())
    scenes = [images.scene(seed=s) for s in range(3)]
    cosine = (quantized.embed_images(scenes) * reference.embed_images(scenes)).sum(axis=1)
    assert cosine.min() > 0.95, cosine


def test_bf16_autocast_is_opt_in_and_stays_close_to_float(settings):
    settings.MODEL_BF16 = False
    clip = load_clip()
    scenes = [images.scene(seed=s) for s in range(3)]
    reference = clip.embed_images(scenes)
    proposer = SamProposer(load_sam_model(model_type="tiny", checkpoint=""), **OPEN_THRESHOLDS)
    picture = images.scene(200, 100, seed=4)
    float_boxes = [p.box for p in proposer.propose(picture)]
    settings.MODEL_BF16 = True  # applies at call time, to models already loaded
    vectors = clip.embed_images(scenes)
    assert vectors.dtype == np.float32
    assert not np.array_equal(vectors, reference), "autocast should have changed the arithmetic"
    assert (vectors * reference).sum(axis=1).min() > 0.99
    bf16_boxes = [p.box for p in proposer.propose(picture)]
    assert len(bf16_boxes) == len(float_boxes) > 0
    close = sum(box_iou(a, b) >= 0.9 for a, b in zip(sorted(bf16_boxes), sorted(float_boxes), strict=True))
    assert close >= 0.8 * len(float_boxes), (bf16_boxes, float_boxes)


@pytest.mark.parametrize("profile", ["tiny", "demo"])
def test_the_text_tower_cut_at_the_end_token_gives_open_clips_vectors(settings, profile):
    import open_clip
    import torch

    from search.vision.clip import encode_text_prefix

    for name, value in settings.MODEL_PROFILES[profile].items():
        setattr(settings, name, value)
    clip = load_clip()
    assert type(clip.model) is open_clip.CLIP  # else the shortcut is not taken and this proves nothing
    texts = ["a red circle", "", "a very long query " * 20, "ünïcödé ☀ and a green square on the left"]
    with torch.inference_mode():
        tokens = clip.tokenizer(texts)
        full = clip.model.encode_text(tokens).numpy()
        cut = encode_text_prefix(clip.model, tokens).numpy()
        alone = np.concatenate([encode_text_prefix(clip.model, clip.tokenizer([text])).numpy() for text in texts])
    assert np.allclose(cut, full, atol=1e-5) and np.allclose(alone, full, atol=1e-5)
    assert int(clip.tokenizer(["a red circle"]).argmax()) < 10  # the cut is real: a few of the positions


def test_int8_clip_embeds_text_too(settings):
    # open_clip's encode_text asks a Linear layer for its weight dtype, which int8 layers do not have.
    settings.MODEL_INT8 = False
    reference = load_clip().embed_texts(["a red circle", "two green squares"])
    settings.MODEL_INT8 = True
    quantized = load_clip().embed_texts(["a red circle", "two green squares"])
    cosine = (quantized * reference).sum(axis=1)
    assert cosine.min() > 0.95, cosine


KEEPS_FREED = """
import os, sys, django
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
django.setup()
import numpy as np
from search.vision.registry import get_clip, get_proposer
get_clip() if sys.argv[1] == "web" else get_proposer()

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

before = rss_mb()
block = np.ones(200 * 2**20, dtype=np.uint8)  # 200 MB, touched
del block
print(rss_mb() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_only_the_worker_keeps_freed_memory_web_processes_give_it_back():
    def kept_mb(role: str) -> float:
        result = subprocess.run([sys.executable, "-c", KEEPS_FREED, role], capture_output=True, text=True, check=True)
        return float(result.stdout.strip().splitlines()[-1])

    assert kept_mb("web") < 50  # CLIP alone (a web process): the 200 MB went back to the system
    assert kept_mb("worker") > 150  # the segmenter loaded: glibc keeps it for the next image
