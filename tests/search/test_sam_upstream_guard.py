"""A guard on the segment_anything code that search/vision/fast_sam.py and search/vision/fast_sam_model.py mirror.

Our generator and decoder re-implement these functions for speed, on segment_anything's public
pieces. If an upgrade changes one of them, this test fails and names what to re-check: read the
upstream diff, carry any fix over (as `search.vision.fast_sam.nms` carries the device fix for NMS
categories), run tests/search/test_fast_sam.py and test_fast_sam_model.py (equivalence with the
stock modules), then update the hash here.
"""

import hashlib
import inspect
from importlib.metadata import version

import pytest
from segment_anything.automatic_mask_generator import SamAutomaticMaskGenerator
from segment_anything.modeling.image_encoder import Attention as EncoderAttention
from segment_anything.modeling.image_encoder import add_decomposed_rel_pos
from segment_anything.modeling.mask_decoder import MaskDecoder
from segment_anything.modeling.sam import Sam
from segment_anything.modeling.transformer import Attention, TwoWayAttentionBlock, TwoWayTransformer
from segment_anything.predictor import SamPredictor

# upstream function -> (first 16 hex of the sha256 of its source, what of ours mirrors it)
MIRRORED = {
    SamAutomaticMaskGenerator.generate: ("205c04b1e59dd134", "FastMaskGenerator.generate (record format)"),
    SamAutomaticMaskGenerator._generate_masks: (
        "af2034116e8789df",
        "FastMaskGenerator._generate_masks (crops, crop NMS)",
    ),
    SamAutomaticMaskGenerator._process_crop: ("2b40d46c424cf8dc", "FastMaskGenerator._process_crop"),
    SamAutomaticMaskGenerator._process_batch: (
        "bb1fc4569ea6845d",
        "FastMaskGenerator._process_batch (filters, their order)",
    ),
    SamAutomaticMaskGenerator.postprocess_small_regions: (
        "a9d1079f707cf147",
        "FastMaskGenerator._remove_small_regions",
    ),
    Sam.postprocess_masks: ("e8aa54dc739e83a3", "FastMaskGenerator._upsample"),
    SamPredictor.set_image: ("fa743a0fd8d1b98d", "FastMaskGenerator._encode (preparing a batch)"),
    SamPredictor.set_torch_image: ("96c192fb816f1ce5", "FastMaskGenerator._encode / _process_crop (predictor state)"),
    MaskDecoder.forward: ("c630d69d8b489165", "PromptDecoder (multimask slice 1..3)"),
    MaskDecoder.predict_masks: (
        "c04d95644ea986a0",
        "PromptDecoder.__call__ (tokens, upscaling, hypernetworks, IoU head)",
    ),
    TwoWayTransformer.forward: ("f538b8135789d45c", "PromptDecoder.__call__ (layer loop, final attention)"),
    TwoWayAttentionBlock.forward: ("0fc8df50e058e598", "PromptDecoder.__call__ (first layer without PE, later layers)"),
    Attention.forward: (
        "2d06fe4b0ba6f578",
        "PromptDecoder._token_to_image / _image_to_token_* (re-associated attention)",
    ),
    EncoderAttention.forward: ("9fbbc40563c6aa1b", "ChunkedAttention.forward"),
    add_decomposed_rel_pos: ("ed6b3de2008c1676", "ChunkedAttention.forward (relative positions per row block)"),
}


def source_hash(function) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


@pytest.mark.parametrize("function", list(MIRRORED), ids=lambda function: function.__qualname__)
def test_the_upstream_code_we_mirror_is_unchanged(function):
    pinned, ours = MIRRORED[function]
    assert source_hash(function) == pinned, (
        f"segment_anything {version('segment-anything')} changed {function.__qualname__}, which {ours} mirrors. "
        "Re-check ours against the upstream diff (keep its bug fixes), run tests/search/test_fast_sam.py and "
        "test_fast_sam_model.py, then update the hash in this file."
    )


def test_nms_categories_follow_the_boxes_device():
    import torch

    from search.vision.fast_sam import nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float64)
    assert nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]
    if torch.cuda.is_available():  # the case segment_anything 1.0 gets wrong (CPU categories)
        assert nms(boxes.cuda(), torch.tensor([0.9, 0.8, 0.7]), 0.5).cpu().tolist() == [0, 2]
