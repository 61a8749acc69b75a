"""FastMaskGenerator returns the stock SamAutomaticMaskGenerator's masks for the same settings."""

import numpy as np
import pytest
import torch
from segment_anything import SamAutomaticMaskGenerator

from search.vision.fast_sam import FastMaskGenerator
from search.vision.fast_sam_model import ChunkedAttention
from search.vision.runtime import seeded_random_init
from search.vision.sam import load_sam_model, sam_builders
from tests import images

GRID = 4


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@pytest.fixture(scope="module")
def sam():
    """Ours: built by our loader (chunked encoder attention)."""
    return load_sam_model(model_type="tiny", checkpoint="")


@pytest.fixture(scope="module")
def stock_sam(sam):
    """The same weights in segment_anything's own modules."""
    with seeded_random_init():
        model = sam_builders()["tiny"]().eval()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), sam.state_dict().values(), strict=True))
    assert not any(isinstance(block.attn, ChunkedAttention) for block in model.image_encoder.blocks)
    return model


def thresholds_letting_some_through(sam, picture: np.ndarray) -> dict:
    """The median predicted IoU as the threshold: about half the masks pass, half are dropped."""
    probe = SamAutomaticMaskGenerator(
        sam, points_per_side=GRID, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0
    )
    records = probe.generate(picture)
    predicted = sorted(record["predicted_iou"] for record in records)
    stability = sorted(record["stability_score"] for record in records)
    return {"pred_iou_thresh": predicted[len(predicted) // 2], "stability_score_thresh": stability[len(stability) // 4]}


@pytest.mark.parametrize(
    "seed, min_mask_region_area, size",
    [
        (0, 0, (160, 120)),
        (1, 0, (160, 120)),
        (0, 30, (160, 120)),
        (1, 30, (160, 120)),
        (2, 0, (1024, 768)),  # SAM's input has the original size: one resize fewer on our side
    ],
)
def test_fast_generator_matches_the_stock_one(sam, stock_sam, seed, min_mask_region_area, size):
    picture = np.asarray(images.scene(*size, seed=seed))
    settings = dict(
        points_per_side=GRID,
        box_nms_thresh=0.7,
        min_mask_region_area=min_mask_region_area,
        **thresholds_letting_some_through(stock_sam, picture),
    )
    stock = SamAutomaticMaskGenerator(stock_sam, points_per_batch=64, **settings).generate(picture)
    fast = FastMaskGenerator(sam, points_per_batch=256, **settings).generate(picture)
    assert 0 < len(stock) < GRID * GRID * 3, "thresholds should keep some masks and drop others"
    assert len(fast) == len(stock)
    for ours, theirs in zip(sorted(fast, key=lambda r: r["bbox"]), sorted(stock, key=lambda r: r["bbox"]), strict=True):
        assert mask_iou(ours["segmentation"], theirs["segmentation"]) >= 0.99
        assert ours["area"] == theirs["area"]
        assert ours["predicted_iou"] == pytest.approx(theirs["predicted_iou"], abs=1e-4)
        assert ours["stability_score"] == pytest.approx(theirs["stability_score"], abs=1e-4)


def test_fast_generator_with_nothing_passing_returns_no_masks(sam):
    picture = np.asarray(images.scene(96, 64))
    assert (
        FastMaskGenerator(sam, points_per_side=2, pred_iou_thresh=0.9999, stability_score_thresh=0.99).generate(picture)
        == []
    )


@pytest.mark.parametrize("original_size", [(768, 1024), (120, 160), (1024, 1024)])
def test_upsampling_gives_exactly_sams_postprocess_masks(sam, original_size):
    generator = FastMaskGenerator(sam)
    low_res = torch.randn(4, 256, 256, generator=torch.Generator().manual_seed(8))
    input_size = generator.predictor.transform.get_preprocess_shape(*original_size, 1024)
    expected = sam.postprocess_masks(low_res[:, None], input_size, original_size)[:, 0]
    assert torch.equal(generator._upsample(low_res, input_size, original_size), expected)


def test_a_batch_of_images_gives_each_image_its_own_masks(sam):
    """One encoder call for several images of different sizes: the same masks as one image at a time."""
    pictures = [np.asarray(images.scene(160, 120, seed=seed)) for seed in (0, 1)] + [
        np.asarray(images.scene(96, 128, seed=2))
    ]
    generator = FastMaskGenerator(sam, points_per_side=GRID, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    batched = generator.generate_batch(pictures)
    for picture, from_batch in zip(pictures, batched, strict=True):
        alone = generator.generate(picture)
        assert len(from_batch) == len(alone) > 0
        for ours, theirs in zip(
            sorted(from_batch, key=lambda r: r["bbox"]), sorted(alone, key=lambda r: r["bbox"]), strict=True
        ):
            assert ours["segmentation"].shape == picture.shape[:2]
            assert mask_iou(ours["segmentation"], theirs["segmentation"]) >= 0.99
            assert ours["predicted_iou"] == pytest.approx(theirs["predicted_iou"], abs=1e-4)
